package publish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/internal/publish"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const subject = "raw.images"

// broker starts a server with a stream RAW capturing raw.> and connects.
func broker(t *testing.T, opts ...queuetest.ServerOption) *queue.Conn {
	t.Helper()
	srv := queuetest.RunServer(t, opts...)
	conn := queuetest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// stored is one message read back from the stream.
type stored struct {
	data []byte
	meta map[string]string
}

// streamContents reads every message of stream RAW on subject by sequence,
// keyed by Nats-Msg-Id.
func streamContents(t *testing.T, conn *queue.Conn) map[string]stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := conn.JetStream().Stream(ctx, "RAW")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]stored{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		if m.Subject != subject {
			t.Fatalf("message %d on subject %q", seq, m.Subject)
		}
		id := m.Header.Get(nats.MsgIdHdr)
		if _, dup := out[id]; dup {
			t.Fatalf("id %q stored twice", id)
		}
		s := stored{data: m.Data}
		for k, v := range m.Header {
			if name, ok := strings.CutPrefix(k, publish.MetaHeaderPrefix); ok {
				if s.meta == nil {
					s.meta = map[string]string{}
				}
				s.meta[name] = v[0]
			}
		}
		out[id] = s
	}
	return out
}

// checkStream compares the stream's contents with want (id → payload) and,
// when wantMeta is not nil, the metadata headers.
func checkStream(t *testing.T, conn *queue.Conn, want map[string][]byte, wantMeta map[string]map[string]string) {
	t.Helper()
	got := streamContents(t, conn)
	var gotIDs, wantIDs []string
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	for id := range want {
		wantIDs = append(wantIDs, id)
	}
	sort.Strings(gotIDs)
	sort.Strings(wantIDs)
	if !reflect.DeepEqual(gotIDs, wantIDs) {
		t.Fatalf("stream ids\n%q\nwant\n%q", gotIDs, wantIDs)
	}
	for id, data := range want {
		if !bytes.Equal(got[id].data, data) {
			t.Errorf("id %q: stored payload (%d bytes) differs from the input (%d bytes)", id, len(got[id].data), len(data))
		}
		if wantMeta != nil && !reflect.DeepEqual(got[id].meta, wantMeta[id]) {
			t.Errorf("id %q: meta %v, want %v", id, got[id].meta, wantMeta[id])
		}
	}
}

func run(t *testing.T, conn *queue.Conn, paths []string, ro publish.ReadOptions, o publish.Options) (publish.Stats, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o.Subject == "" {
		o.Subject = subject
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return publish.Run(ctx, conn, paths, ro, o)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunEachFormat publishes a file of every format, built with a real
// writer of that format, and checks the ids and payloads in the stream.
func TestRunEachFormat(t *testing.T) {
	dir := t.TempDir()
	type format struct {
		name     string
		paths    []string
		ro       publish.ReadOptions
		want     map[string][]byte
		wantMeta map[string]map[string]string
	}
	var cases []format

	{ // files and a directory
		writeFile(t, filepath.Join(dir, "files/a.jpg"), payload(1, 5000))
		writeFile(t, filepath.Join(dir, "files/sub/b.jpg"), payload(2, 7000))
		writeFile(t, filepath.Join(dir, "c.jpg"), payload(3, 10))
		cases = append(cases, format{
			name:  "files and directories",
			paths: []string{filepath.Join(dir, "c.jpg"), filepath.Join(dir, "files")},
			want: map[string][]byte{
				"c.jpg": payload(3, 10), "a.jpg": payload(1, 5000), "sub/b.jpg": payload(2, 7000),
			},
		})
	}
	{ // lines
		writeFile(t, filepath.Join(dir, "t.txt"), []byte("first\n\nthird\n"))
		cases = append(cases, format{
			name: "lines", paths: []string{filepath.Join(dir, "t.txt")}, ro: publish.ReadOptions{Lines: true},
			want: map[string][]byte{"t.txt:0": []byte("first"), "t.txt:2": []byte("third")},
		})
	}
	{ // JSON lines
		writeFile(t, filepath.Join(dir, "d.jsonl"), []byte(`{"text":"héllo","lang":"fr"}`+"\n"+`{"text":"bye"}`+"\n"))
		cases = append(cases, format{
			name: "jsonl", paths: []string{filepath.Join(dir, "d.jsonl")},
			ro:       publish.ReadOptions{JSON: publish.JSONLOptions{Field: "text", MetaFields: []string{"lang"}}},
			want:     map[string][]byte{"d.jsonl:0": []byte("héllo"), "d.jsonl:1": []byte("bye")},
			wantMeta: map[string]map[string]string{"d.jsonl:0": {"lang": "fr"}, "d.jsonl:1": nil},
		})
	}
	{ // WebDataset tar shard
		var buf bytes.Buffer
		writeTar(t, &buf, []member{
			{"s/0001.jpg", payload(10, 150_000)}, {"s/0001.cls", []byte("4")},
			{"s/0002.jpg", payload(11, 120_000)}, {"s/0002.cls", []byte("9")},
		})
		writeFile(t, filepath.Join(dir, "shard-000.tar"), buf.Bytes())
		cases = append(cases, format{
			name: "tar", paths: []string{filepath.Join(dir, "shard-000.tar")},
			ro:       publish.ReadOptions{Tar: publish.TarOptions{Ext: "jpg"}},
			want:     map[string][]byte{"shard-000.tar/s/0001": payload(10, 150_000), "shard-000.tar/s/0002": payload(11, 120_000)},
			wantMeta: map[string]map[string]string{"shard-000.tar/s/0001": {"cls": "4"}, "shard-000.tar/s/0002": {"cls": "9"}},
		})
	}
	{ // Parquet
		rows := parquetRows(7)
		writeParquet(t, filepath.Join(dir, "train.parquet"), rows, 2)
		want := map[string][]byte{}
		meta := map[string]map[string]string{}
		for _, r := range rows {
			if r.Image != nil {
				want[r.Key] = r.Image
				meta[r.Key] = map[string]string{"label": fmt.Sprint(r.Label)}
			}
		}
		cases = append(cases, format{
			name: "parquet", paths: []string{filepath.Join(dir, "train.parquet")},
			ro:   publish.ReadOptions{Parquet: publish.ParquetOptions{Column: "image", IDColumn: "key", MetaColumns: []string{"label"}}},
			want: want, wantMeta: meta,
		})
	}
	{ // TFRecord
		file, _, payloads := tfExamples(t, 4, 3000)
		writeFile(t, filepath.Join(dir, "train.tfrecord"), file)
		want := map[string][]byte{}
		for i, p := range payloads {
			want["train.tfrecord:"+fmt.Sprint(i)] = p
		}
		cases = append(cases, format{
			name: "tfrecord", paths: []string{filepath.Join(dir, "train.tfrecord")},
			ro:   publish.ReadOptions{TFRecord: publish.TFRecordOptions{Feature: "image/encoded"}},
			want: want,
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := broker(t)
			stats, err := run(t, conn, c.paths, c.ro, publish.Options{})
			if err != nil {
				t.Fatalf("Run: %v (%v)", err, stats)
			}
			var bytesWant int64
			for _, d := range c.want {
				bytesWant += int64(len(d))
			}
			if stats.Items != int64(len(c.want)) || stats.Bytes != bytesWant || stats.Failures() != 0 {
				t.Errorf("stats %+v, want %d items of %d bytes, no failures", stats, len(c.want), bytesWant)
			}
			checkStream(t, conn, c.want, c.wantMeta)
		})
	}
}

func TestRunStdinEachFormat(t *testing.T) {
	tfFile, _, tfPayloads := tfExamples(t, 2, 100)
	var tarBuf bytes.Buffer
	writeTar(t, &tarBuf, []member{{"k1.txt", []byte("one")}, {"k2.txt", []byte("two")}})
	pq := filepath.Join(t.TempDir(), "x.parquet")
	rows := parquetRows(3)
	writeParquet(t, pq, rows, 2)
	pqBytes, err := os.ReadFile(pq)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		ro   publish.ReadOptions
		want map[string][]byte
	}{
		{"files", []byte("whole"), publish.ReadOptions{Format: publish.FormatFiles}, map[string][]byte{"in": []byte("whole")}},
		{"lines", []byte("a\nb"), publish.ReadOptions{Lines: true}, map[string][]byte{"in:0": []byte("a"), "in:1": []byte("b")}},
		{"jsonl", []byte(`{"t":"x"}`), publish.ReadOptions{JSON: publish.JSONLOptions{Field: "t"}}, map[string][]byte{"in:0": []byte("x")}},
		{"tar", tarBuf.Bytes(), publish.ReadOptions{Format: publish.FormatTar, Tar: publish.TarOptions{Ext: "txt"}}, map[string][]byte{"in/k1": []byte("one"), "in/k2": []byte("two")}},
		{"tfrecord", tfFile, publish.ReadOptions{Format: publish.FormatTFRecord, TFRecord: publish.TFRecordOptions{Feature: "image/encoded"}}, map[string][]byte{"in:0": tfPayloads[0], "in:1": tfPayloads[1]}},
		{"parquet", pqBytes, publish.ReadOptions{Format: publish.FormatParquet, Parquet: publish.ParquetOptions{Column: "image"}, TempDir: t.TempDir()}, map[string][]byte{"in:0": rows[0].Image, "in:1": rows[1].Image, "in:2": rows[2].Image}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := broker(t)
			c.ro.Stdin = bytes.NewReader(c.in)
			c.ro.StdinName = "in"
			if _, err := run(t, conn, []string{"-"}, c.ro, publish.Options{}); err != nil {
				t.Fatal(err)
			}
			checkStream(t, conn, c.want, nil)
			if c.ro.TempDir != "" {
				if left, _ := os.ReadDir(c.ro.TempDir); len(left) != 0 {
					t.Errorf("spooled stdin left behind: %v", left)
				}
			}
		})
	}
	t.Run("no format", func(t *testing.T) {
		conn := broker(t)
		_, err := run(t, conn, []string{"-"}, publish.ReadOptions{Stdin: strings.NewReader("x")}, publish.Options{})
		if !errors.Is(err, publish.ErrNeedFormat) {
			t.Fatalf("err = %v, want ErrNeedFormat", err)
		}
	})
}

func TestRunRerunIsDeduplicated(t *testing.T) {
	conn := broker(t)
	dir := t.TempDir()
	want := map[string][]byte{}
	for i := range 20 {
		name := fmt.Sprintf("img-%02d.jpg", i)
		want[name] = payload(uint64(i), 2000)
		writeFile(t, filepath.Join(dir, name), want[name])
	}
	first, err := run(t, conn, []string{dir}, publish.ReadOptions{}, publish.Options{})
	if err != nil || first.Items != 20 || first.Duplicates != 0 {
		t.Fatalf("first run: %+v, %v", first, err)
	}
	second, err := run(t, conn, []string{dir}, publish.ReadOptions{}, publish.Options{})
	if err != nil || second.Items != 20 || second.Duplicates != 20 {
		t.Fatalf("second run: %+v, %v; want 20 duplicates", second, err)
	}
	checkStream(t, conn, want, nil)
}

func TestRunResumeSkipsStoredIDs(t *testing.T) {
	conn := broker(t)
	dir := t.TempDir()
	for i := range 30 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%02d.txt", i)), []byte(fmt.Sprint(i)))
	}
	if _, err := run(t, conn, []string{dir}, publish.ReadOptions{}, publish.Options{}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "new.txt"), []byte("new"))
	stats, err := run(t, conn, []string{dir}, publish.ReadOptions{}, publish.Options{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Resumed != 30 || stats.Items != 1 || stats.Duplicates != 0 {
		t.Fatalf("resume: %+v; want 30 resumed, 1 new item", stats)
	}
	if got := streamContents(t, conn); len(got) != 31 || string(got["new.txt"].data) != "new" {
		t.Fatalf("stream holds %d messages, new.txt = %q", len(got), got["new.txt"].data)
	}
	// An id prefix puts the same files under new ids: none is resumed.
	stats, err = run(t, conn, []string{dir}, publish.ReadOptions{}, publish.Options{Resume: true, IDPrefix: "v2/"})
	if err != nil || stats.Resumed != 0 || stats.Items != 31 {
		t.Fatalf("prefixed resume: %+v, %v", stats, err)
	}
}

func TestRunWithoutStreamFailsFast(t *testing.T) {
	conn := broker(t)
	writeFile(t, filepath.Join(t.TempDir(), "x"), []byte("x"))
	_, err := run(t, conn, []string{t.TempDir()}, publish.ReadOptions{}, publish.Options{Subject: "nowhere.images"})
	if !errors.Is(err, publish.ErrNoStream) || !strings.Contains(err.Error(), "nowhere.images") || !strings.Contains(err.Error(), "stoker serve") {
		t.Fatalf("err = %v, want ErrNoStream naming the subject", err)
	}
}

func TestRunCountsFailuresAndPublishesTheRest(t *testing.T) {
	conn := broker(t, func(o *server.Options) { o.MaxPayload = 4096 })
	dir := t.TempDir()
	file, offsets, payloads := tfExamples(t, 4, 1000)
	file[offsets[1]+40] ^= 0xff // corrupt record 1's data
	writeFile(t, filepath.Join(dir, "a.tfrecord"), file)
	writeFile(t, filepath.Join(dir, "big.jpg"), payload(7, 5000)) // over max_payload
	writeFile(t, filepath.Join(dir, "ok.jpg"), []byte("ok"))
	ro := publish.ReadOptions{TFRecord: publish.TFRecordOptions{Feature: "image/encoded"}}
	stats, err := run(t, conn, []string{dir}, ro, publish.Options{})
	if !errors.Is(err, publish.ErrFailed) {
		t.Fatalf("err = %v, want ErrFailed", err)
	}
	if stats.Corrupt != 1 || stats.Failed != 1 || stats.Items != 4 {
		t.Fatalf("stats %+v; want 1 corrupt, 1 failed, 4 items", stats)
	}
	checkStream(t, conn, map[string][]byte{
		"a.tfrecord:0": payloads[0], "a.tfrecord:2": payloads[2], "a.tfrecord:3": payloads[3], "ok.jpg": []byte("ok"),
	}, nil)
}

func TestRunMissingInputFails(t *testing.T) {
	conn := broker(t)
	_, err := run(t, conn, []string{filepath.Join(t.TempDir(), "absent.tar")}, publish.ReadOptions{}, publish.Options{})
	if err == nil || !strings.Contains(err.Error(), "absent.tar") {
		t.Fatalf("err = %v, want one naming absent.tar", err)
	}
}

func TestRunNeedsFormatOption(t *testing.T) {
	conn := broker(t)
	path := filepath.Join(t.TempDir(), "s.tar")
	writeFile(t, path, []byte("x"))
	_, err := run(t, conn, []string{path}, publish.ReadOptions{}, publish.Options{})
	if err == nil || !strings.Contains(err.Error(), "--ext") {
		t.Fatalf("err = %v, want one asking for --ext", err)
	}
}

func TestRunProgressLine(t *testing.T) {
	conn := broker(t)
	path := filepath.Join(t.TempDir(), "t.txt")
	writeFile(t, path, []byte("a\nb\nc\n"))
	var progress bytes.Buffer
	_, err := run(t, conn, []string{path}, publish.ReadOptions{Lines: true}, publish.Options{Progress: &progress, TotalBytes: 6})
	if err != nil {
		t.Fatal(err)
	}
	last := progress.String()
	if i := strings.LastIndex(last, "\r"); i >= 0 {
		last = last[i+1:]
	}
	if !strings.Contains(last, "100%") || !strings.Contains(last, "3 items") || !strings.HasSuffix(last, "\n") {
		t.Fatalf("final progress line %q, want 100%% and 3 items", last)
	}
}

// cancelAfter is a reader that cancels a context once n bytes were read.
type cancelAfter struct {
	r      *bytes.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.r.Size()-int64(c.r.Len()) >= int64(c.n) {
		c.cancel()
	}
	return c.r.Read(p[:min(len(p), 4096)])
}

func TestRunCancelStopsReading(t *testing.T) {
	conn := broker(t)
	const lines = 200_000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := &cancelAfter{r: bytes.NewReader(bytes.Repeat([]byte("line\n"), lines)), n: 50_000, cancel: cancel}
	stats, err := publish.Run(ctx, conn, []string{"-"}, publish.ReadOptions{Lines: true, Stdin: in},
		publish.Options{Subject: subject, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if stats.Items >= lines || stats.InputBytes >= 5*lines {
		t.Fatalf("read or published everything after cancel: %+v", stats)
	}
	// What was acknowledged is what the stream holds.
	if got := len(streamContents(t, conn)); int64(got) != stats.Items {
		t.Fatalf("stream holds %d messages, stats say %d", got, stats.Items)
	}
}

// afterBytes runs f once n bytes have been read.
type afterBytes struct {
	r    *bytes.Reader
	n    int
	f    func()
	done bool
}

func (a *afterBytes) Read(p []byte) (int, error) {
	if !a.done && a.r.Size()-int64(a.r.Len()) >= int64(a.n) {
		a.done = true
		a.f()
	}
	return a.r.Read(p[:min(len(p), 4096)])
}

func TestRunStopsWhenTheStreamDisappears(t *testing.T) {
	srv := queuetest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.ConnOptions{URL: srv.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Publishes in flight when the stream went are never answered:
		// do not wait for them.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		conn.Close(ctx)
	})
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		t.Fatal(err)
	}
	in := &afterBytes{r: bytes.NewReader(bytes.Repeat([]byte("line\n"), 100_000)), n: 20_000, f: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := conn.JetStream().DeleteStream(ctx, "RAW"); err != nil {
			t.Errorf("delete stream: %v", err)
		}
	}}
	stats, err := run(t, conn, []string{"-"}, publish.ReadOptions{Lines: true, Stdin: in}, publish.Options{AckTimeout: time.Second})
	if !errors.Is(err, publish.ErrNoStream) || !strings.Contains(err.Error(), subject) {
		t.Fatalf("err = %v, want ErrNoStream naming %s", err, subject)
	}
	if stats.Items >= 100_000 {
		t.Fatalf("everything published (%+v) without a stream", stats)
	}
}
