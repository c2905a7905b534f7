package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/queue"
)

func runConsume(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "consume", "--subject SUBJ [--nats URL] [--out DIR] [--count N] [--timeout D]")
	var nf natsFlags
	nf.register(fs)
	subject := fs.String("subject", "", "tensor subject to read, e.g. tensors.image (required)")
	out := fs.String("out", "", "write each payload to DIR/<n>.safetensors")
	count := fs.Int("count", 0, "stop after this many items (0: no limit)")
	timeout := fs.Duration("timeout", 5*time.Second, "stop when no message arrives for this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *subject == "" {
		fs.Usage()
		return errUsage
	}
	if nf.url == "" {
		nf.url = "nats://127.0.0.1:4222"
	}
	conn, err := queue.Connect(ctx, nf.options("stoker-consume"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	r, err := newTensorReader(ctx, conn, *subject)
	if err != nil {
		return err
	}
	items := 0
	for n := 0; *count == 0 || items < *count; n++ {
		msg, err := r.next(ctx, *timeout)
		if errors.Is(err, errIdle) {
			break
		}
		if err != nil {
			return err
		}
		line, k, err := describeTensors(msg.Data())
		if err != nil {
			return fmt.Errorf("message %d on %s: %w", n, msg.Subject(), err)
		}
		items += k
		fmt.Fprintln(e.stdout, line)
		if *out != "" {
			if err := os.WriteFile(filepath.Join(*out, fmt.Sprintf("%d.safetensors", n)), msg.Data(), 0o644); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(e.stderr, "%d items\n", items)
	return nil
}

var errIdle = errors.New("idle")

// tensorReader reads a subject's stream from the start with an ordered
// consumer, which leaves nothing behind on the server.
type tensorReader struct {
	cons jetstream.Consumer
}

func newTensorReader(ctx context.Context, conn *queue.Conn, subject string) (*tensorReader, error) {
	js := conn.JetStream()
	stream, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("no stream captures %s: %w", subject, err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("read %s from stream %s: %w", subject, stream, err)
	}
	return &tensorReader{cons: cons}, nil
}

func (r *tensorReader) next(ctx context.Context, idle time.Duration) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, idle)
	defer cancel()
	batch, err := r.cons.Fetch(1, jetstream.FetchContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, errIdle
		}
		return nil, err
	}
	for m := range batch.Messages() {
		return m, nil
	}
	if err := batch.Error(); err != nil && ctx.Err() == nil {
		return nil, err
	}
	return nil, errIdle
}

// describeTensors summarises a tensor message on one line and returns its
// item count.
func describeTensors(payload []byte) (string, int, error) {
	ts, md, err := safetensors.Decode(payload)
	if err != nil {
		return "", 0, err
	}
	var ids []string
	if err := json.Unmarshal([]byte(md["ids"]), &ids); err != nil {
		return "", 0, fmt.Errorf("metadata ids: %w", err)
	}
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape))
	}
	return fmt.Sprintf("%s: %d items: %s", md["pipeline"], len(ids), strings.Join(parts, ", ")), len(ids), nil
}
