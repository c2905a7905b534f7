package publish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/publish"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// BenchmarkPublishTarVsCeiling measures `stoker publish`'s path (publish.Run
// reading a WebDataset tar shard of 150 KB JPEG-sized payloads from disk)
// against the broker's ceiling for the same payloads: a loop that only
// publishes them asynchronously from memory, with the same bound on
// unacknowledged messages (256) and the same headers (Nats-Msg-Id and
// Stoker-Meta-cls), so only reading the shard differs. Each
// iteration runs one round of each, alternating which goes first, against
// the same in-process server (file or memory storage), and the stream is purged
// between rounds outside the measured spans. Reported: items/s of each and
// ratio_pct = publish / ceiling × 100 (the target is ≥ 90).
//
//	go test -run '^$' -bench PublishTarVsCeiling -benchtime 20x -count 5 ./internal/publish/ | tee bench.txt
//	benchstat bench.txt
func BenchmarkPublishTarVsCeiling(b *testing.B) {
	for _, storage := range []string{"file", "memory"} {
		b.Run("storage="+storage, func(b *testing.B) { benchTarVsCeiling(b, storage == "memory") })
	}
}

func benchTarVsCeiling(b *testing.B, memory bool) {
	const (
		items = 250
		size  = 150_000
	)
	srv := queuetest.RunServer(b)
	conn := queuetest.Connect(b, srv.ClientURL(), func(o *queue.ConnOptions) { o.PublishAsyncMaxPending = 256 })
	ctx := context.Background()
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}, Memory: memory}); err != nil {
		b.Fatal(err)
	}
	stream, err := conn.JetStream().Stream(ctx, "RAW")
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, items)
	members := make([]member, 0, 2*items)
	for i := range payloads {
		payloads[i] = jpegLike(uint64(i), size)
		key := fmt.Sprintf("%06d", i)
		members = append(members, member{key + ".jpg", payloads[i]}, member{key + ".cls", []byte(fmt.Sprint(i % 1000))})
	}
	shard := filepath.Join(b.TempDir(), "shard-000000.tar")
	f, err := os.Create(shard)
	if err != nil {
		b.Fatal(err)
	}
	writeTar(b, f, members)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	ro := publish.ReadOptions{Tar: publish.TarOptions{Ext: "jpg"}}
	quiet := slog.New(slog.DiscardHandler)

	ceiling := func(round int) time.Duration {
		start := time.Now()
		pending := make([]*queue.Pending, 0, items)
		for i, p := range payloads {
			// The same message Run sends: id and the sample's .cls header.
			hdr := nats.Header{
				nats.MsgIdHdr:                    []string{fmt.Sprintf("c%d/shard-000000.tar/%06d", round, i)},
				publish.MetaHeaderPrefix + "cls": []string{fmt.Sprint(i % 1000)},
			}
			for {
				pa, err := conn.PublishAsync(subject, p, hdr)
				if err == nil {
					pending = append(pending, pa)
					break
				}
				if !isStalled(err) {
					b.Fatal(err)
				}
			}
		}
		for _, pa := range pending {
			if ack, err := pa.Wait(ctx); err != nil || ack.Duplicate {
				b.Fatalf("ceiling publish: %v (duplicate %v)", err, ack.Duplicate)
			}
		}
		return time.Since(start)
	}
	viaRun := func(round int) time.Duration {
		start := time.Now()
		stats, err := publish.Run(ctx, conn, []string{shard}, ro, publish.Options{Subject: subject, IDPrefix: fmt.Sprintf("r%d/", round), Logger: quiet})
		if err != nil || stats.Items != items || stats.Duplicates != 0 {
			b.Fatalf("publish.Run: %v (%+v)", err, stats)
		}
		return time.Since(start)
	}
	purge := func() {
		if err := stream.Purge(ctx); err != nil {
			b.Fatal(err)
		}
	}

	// Process CPU time (client and in-process server together) of each
	// side: less sensitive than wall time to other processes on the machine.
	timed := func(f func(int) time.Duration, round int, wall, cpu *time.Duration) time.Duration {
		c0 := cpuTime()
		d := f(round)
		*wall += d
		*cpu += cpuTime() - c0
		return d
	}
	var tCeiling, tRun, cpuCeiling, cpuRun time.Duration
	var pairs []float64 // ceiling time / publish time of each round
	b.ReportAllocs()
	b.SetBytes(2 * items * size)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var c, r time.Duration
		if i%2 == 0 {
			c = timed(ceiling, i, &tCeiling, &cpuCeiling)
			purge()
			r = timed(viaRun, i, &tRun, &cpuRun)
		} else {
			r = timed(viaRun, i, &tRun, &cpuRun)
			purge()
			c = timed(ceiling, i, &tCeiling, &cpuCeiling)
		}
		purge()
		pairs = append(pairs, c.Seconds()/r.Seconds())
	}
	n := float64(b.N * items)
	b.ReportMetric(n/tCeiling.Seconds(), "ceiling_items/s")
	b.ReportMetric(n/tRun.Seconds(), "publish_items/s")
	b.ReportMetric(100*tCeiling.Seconds()/tRun.Seconds(), "ratio_pct")
	b.ReportMetric(float64(cpuCeiling.Microseconds())/n, "ceiling_cpu_us/item")
	b.ReportMetric(float64(cpuRun.Microseconds())/n, "publish_cpu_us/item")
	// The median of the rounds' ratios resists bursts of load from other
	// processes better than the ratio of the totals.
	slices.Sort(pairs)
	b.ReportMetric(100*pairs[len(pairs)/2], "median_ratio_pct")
}

// jpegLike is size bytes of incompressible data framed like a JPEG (SOI
// and EOI markers), the size of a typical dataset image.
func jpegLike(seed uint64, size int) []byte {
	p := payload(seed, size)
	p[0], p[1] = 0xff, 0xd8
	p[size-2], p[size-1] = 0xff, 0xd9
	return p
}

func isStalled(err error) bool { return errors.Is(err, jetstream.ErrTooManyStalledMsgs) }

// BenchmarkReaders measures the readers alone from memory (no broker), to
// show reading is not what limits publishing.
func BenchmarkReaders(b *testing.B) {
	const items, size = 64, 150_000
	var members []member
	var tfr bytes.Buffer
	w := publish.NewTFRecordWriter(&tfr)
	for i := range items {
		p := jpegLike(uint64(i), size)
		members = append(members, member{fmt.Sprintf("%06d.jpg", i), p}, member{fmt.Sprintf("%06d.cls", i), []byte("1")})
		if err := w.Write(publish.EncodeExample(map[string]publish.Feature{"image/encoded": {Bytes: [][]byte{p}}})); err != nil {
			b.Fatal(err)
		}
	}
	var tarBuf bytes.Buffer
	writeTar(b, &tarBuf, members)
	cases := []struct {
		name string
		open func() publish.Reader
	}{
		{"tar", func() publish.Reader {
			r, err := publish.NewTarReader(bytes.NewReader(tarBuf.Bytes()), "s.tar", publish.TarOptions{Ext: "jpg"})
			if err != nil {
				b.Fatal(err)
			}
			return r
		}},
		{"tfrecord", func() publish.Reader {
			r, err := publish.NewTFRecordReader(bytes.NewReader(tfr.Bytes()), "t.tfrecord", publish.TFRecordOptions{Feature: "image/encoded"})
			if err != nil {
				b.Fatal(err)
			}
			return r
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(items * size)
			for b.Loop() {
				r := c.open()
				n := 0
				for {
					if _, err := r.Next(); err != nil {
						break
					}
					n++
				}
				if n != items {
					b.Fatalf("%d records, want %d", n, items)
				}
			}
			b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkLoadIDs measures reading a stream's message ids for --resume
// (headers-only ordered consumer) over 20,000 stored 1 KB messages.
func BenchmarkLoadIDs(b *testing.B) {
	const msgs = 20_000
	srv := queuetest.RunServer(b)
	conn := queuetest.Connect(b, srv.ClientURL())
	ctx := context.Background()
	if _, err := conn.EnsureStream(ctx, queue.StreamSpec{Name: "RAW", Subjects: []string{"raw.>"}}); err != nil {
		b.Fatal(err)
	}
	data := payload(1, 1000)
	var pending []*queue.Pending
	for i := range msgs {
		hdr := nats.Header{nats.MsgIdHdr: []string{fmt.Sprintf("shard-%06d.tar/%08d", i/1000, i)}}
		for {
			pa, err := conn.PublishAsync(subject, data, hdr)
			if err == nil {
				pending = append(pending, pa)
				break
			}
			if !isStalled(err) {
				b.Fatal(err)
			}
		}
	}
	for _, pa := range pending {
		if _, err := pa.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		ids, err := publish.LoadIDs(ctx, conn, "RAW", subject)
		if err != nil || len(ids) != msgs {
			b.Fatalf("LoadIDs: %d ids, %v", len(ids), err)
		}
	}
	b.ReportMetric(float64(b.N*msgs)/b.Elapsed().Seconds(), "ids/s")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
