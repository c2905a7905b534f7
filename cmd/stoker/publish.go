package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/stoker-ml/stoker/internal/publish"
	"github.com/stoker-ml/stoker/queue"
)

// defaultNATSURL is where the embedded server of `stoker serve` listens.
const defaultNATSURL = "nats://127.0.0.1:4222"

// runPublish publishes files, lines, JSON lines, WebDataset shards, Parquet
// rows or TFRecord examples as raw items, one message each.
func runPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "publish", "--subject SUBJ [flags] PATH… (- for stdin)")
	var nf natsFlags
	nf.register(fs)
	subject := fs.String("subject", "", "subject to publish to (required); a stream must capture it")
	lines := fs.Bool("lines", false, "one message per line of text")
	jsonField := fs.String("jsonl", "", "one message per JSON line: the string value of this `field`")
	format := fs.String("format", "", "input format: files, lines, jsonl, tar, parquet, tfrecord (default: from each file's extension; needed for stdin)")
	ext := fs.String("ext", "", "tar (WebDataset): extension of the payload member, e.g. jpg")
	maxMeta := fs.Int("max-meta-bytes", 1024, "tar: other members up to this size become Stoker-Meta-<ext> headers")
	column := fs.String("column", "", "parquet: payload column (binary or string; dotted path for nested, e.g. image.bytes)")
	feature := fs.String("feature", "", "tfrecord: payload bytes feature of each tf.train.Example, e.g. image/encoded")
	idColumn := fs.String("id-column", "", "parquet column, tfrecord feature or jsonl field whose value is the message id")
	headerColumns := fs.String("header-columns", "", "comma-separated parquet columns, tfrecord features or jsonl fields sent as Stoker-Meta-<name> headers")
	idPrefix := fs.String("id-prefix", "", "prefix of every Nats-Msg-Id, to keep datasets apart")
	stdinName := fs.String("stdin-name", "stdin", "id of stdin (-), the prefix of its message ids")
	readers := fs.Int("readers", 2, "inputs read at once")
	maxPending := fs.Int("max-pending", 256, "most messages published but not yet acknowledged")
	noMmap := fs.Bool("no-mmap", false, "read tar and tfrecord files instead of memory-mapping them (mapping is faster, but a file truncated while mapped crashes the process)")
	resume := fs.Bool("resume", false, "skip ids the stream already holds on the subject (reads the stream's ids once, headers only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	paths := fs.Args()
	if *subject == "" || len(paths) == 0 {
		fmt.Fprintln(e.stderr, "stoker publish: --subject and at least one PATH are required")
		fs.Usage()
		return errUsage
	}
	if *lines && *jsonField != "" {
		fmt.Fprintln(e.stderr, "stoker publish: --lines and --jsonl exclude each other")
		return errUsage
	}
	f, err := publish.ParseFormat(*format)
	if err != nil {
		fmt.Fprintf(e.stderr, "stoker publish: --format: %v\n", err)
		return errUsage
	}
	var meta []string
	for _, m := range strings.Split(*headerColumns, ",") {
		if m = strings.TrimSpace(m); m != "" {
			meta = append(meta, m)
		}
	}
	ro := publish.ReadOptions{
		Format:    f,
		Lines:     *lines,
		JSON:      publish.JSONLOptions{Field: *jsonField, IDField: *idColumn, MetaFields: meta},
		Tar:       publish.TarOptions{Ext: *ext, MaxMetaBytes: *maxMeta},
		Parquet:   publish.ParquetOptions{Column: *column, IDColumn: *idColumn, MetaColumns: meta},
		TFRecord:  publish.TFRecordOptions{Feature: *feature, IDFeature: *idColumn, MetaFeatures: meta},
		StdinName: *stdinName,
		NoMmap:    *noMmap,
	}
	if *maxMeta <= 0 {
		ro.Tar.MaxMetaBytes = -1
	}

	co := nf.options("stoker-publish")
	if co.URL == "" {
		co.URL = defaultNATSURL
	}
	co.PublishAsyncMaxPending = *maxPending
	co.MaxReconnects = 10
	co.Logger = e.log
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := queue.Connect(connectCtx, co)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()

	o := publish.Options{
		Subject:    *subject,
		IDPrefix:   *idPrefix,
		Readers:    *readers,
		MaxPending: *maxPending,
		Resume:     *resume,
		Logger:     e.log,
	}
	if isTerminal(e.stderr) {
		o.Progress = e.stderr
		o.TotalBytes = fileArgBytes(paths)
	}
	stats, err := publish.Run(ctx, conn, paths, ro, o)
	// The summary is printed when publishing ran, even partly; not when
	// it could not start (no stream, bad options).
	if err == nil || errors.Is(err, publish.ErrFailed) || errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stdout, stats)
	}
	return err
}

// fileArgBytes is the total size of the paths when all are regular files,
// else 0 (unknown: directories are walked as they are read).
func fileArgBytes(paths []string) int64 {
	var total int64
	for _, p := range paths {
		st, err := os.Stat(p)
		if p == "-" || err != nil || !st.Mode().IsRegular() {
			return 0
		}
		total += st.Size()
	}
	return total
}
