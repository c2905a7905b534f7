package service_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// logTap is a slog handler that hands every record to a function, for
// tests that act on or wait for a log line.
type logTap func(slog.Record)

func (logTap) Enabled(context.Context, slog.Level) bool { return true }
func (h logTap) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h logTap) WithGroup(string) slog.Handler          { return h }
func (h logTap) Handle(_ context.Context, r slog.Record) error {
	h(r)
	return nil
}

// pipelineOf is the "pipeline" attribute of a log record.
func pipelineOf(r slog.Record) (name string) {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pipeline" {
			name = a.Value.String()
		}
		return true
	})
	return name
}

// A drain while the pipelines are being set up drains those that exist,
// sets up no more, and Run returns nil: without it the rest would be set
// up and run until the hard stop.
func TestDrainDuringSetup(t *testing.T) {
	srv := queuetest.RunServer(t)
	cfg := config.Default()
	cfg.NATS.URL = srv.ClientURL()
	cfg.Metrics.Addr = ""
	cfg.Device = testDevice
	var svc *service.Service
	var mu sync.Mutex
	var ready []string
	tap := logTap(func(r slog.Record) {
		if r.Message != "pipeline ready" {
			return
		}
		mu.Lock()
		ready = append(ready, pipelineOf(r))
		mu.Unlock()
		if pipelineOf(r) == cfg.Pipelines[0].Name {
			svc.Drain() // a SIGTERM between two pipelines' setup
		}
	})
	svc, err := service.New(cfg, service.Options{Logger: slog.New(tap)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("Run drained during setup: %v; want the pipelines drained and nil", err)
	}
	if !slices.Equal(ready, []string{cfg.Pipelines[0].Name}) {
		t.Fatalf("pipelines set up: %v, want only %s, the one ready before the drain", ready, cfg.Pipelines[0].Name)
	}
}

// The streams stoker creates follow the pipeline's streams settings: a
// work-queue input stream holds only the backlog and refuses publishes
// when it is full; the output and dead-letter streams drop their oldest
// messages. Processed items leave the input stream, so a bound on it
// never fills with them: 24 items of 1 MiB go through an 8 MiB input
// stream.
func TestStreamsCreatedWithTheirSettings(t *testing.T) {
	r := startService(t, func(c *config.Config) {
		c.Pipelines = c.Pipelines[1:] // text
		p := &c.Pipelines[0]
		p.Streams = config.Streams{Replicas: 1, InputRetention: config.RetentionWorkQueue, InputMaxBytes: 8 << 20,
			OutputMaxAge: 72 * time.Hour, OutputMaxBytes: 32 << 20}
		p.Limits.MaxBytes = 2 << 20
		p.Text.MaxBytes = 2 << 20
	})
	ctx := context.Background()
	for _, want := range []struct {
		stream    string
		bytes     int64
		discard   jetstream.DiscardPolicy
		retention jetstream.RetentionPolicy
		age       time.Duration
	}{
		{"RAW_TEXT", 8 << 20, jetstream.DiscardNew, jetstream.WorkQueuePolicy, 0},
		{"TENSORS_TEXT", 32 << 20, jetstream.DiscardOld, jetstream.LimitsPolicy, 72 * time.Hour},
		{"DLQ_TEXT", 32 << 20, jetstream.DiscardOld, jetstream.LimitsPolicy, 72 * time.Hour},
	} {
		st, err := r.conn.JetStream().Stream(ctx, want.stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		if cfg.MaxBytes != want.bytes || cfg.Discard != want.discard || cfg.Retention != want.retention || cfg.MaxAge != want.age || cfg.Replicas != 1 {
			t.Errorf("%s: max_bytes %d, discard %v, retention %v, max_age %v, replicas %d; want %d, %v, %v, %v, 1",
				want.stream, cfg.MaxBytes, cfg.Discard, cfg.Retention, cfg.MaxAge, cfg.Replicas, want.bytes, want.discard, want.retention, want.age)
		}
	}
	doc := bytes.Repeat([]byte("word "), 1<<20/5)
	for i := range 24 {
		id := fmt.Sprintf("doc-%d", i)
		queuetest.WaitFor(t, 20*time.Second, func() error {
			// A full backlog refuses the publish until the worker catches up.
			_, err := r.conn.Publish(ctx, "raw.text.x", doc, nats.Header{nats.MsgIdHdr: {id}})
			return err
		})
	}
	rows, dead := r.collect(t, "text", 24)
	if len(rows) != 24 || len(dead) != 0 {
		t.Fatalf("%d tensors and %d dead letters for 24 documents", len(rows), len(dead))
	}
}

// A broker that is not reachable when the worker starts (both started at
// once, as by kubectl apply) is waited for, not a reason to exit.
func TestBrokerStartingLateIsWaitedFor(t *testing.T) {
	port := queuetest.FreePorts(t, 1)[0]
	cfg := config.Default()
	cfg.NATS.URL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	cfg.Metrics.Addr = ""
	cfg.Device = testDevice
	cfg.Pipelines = cfg.Pipelines[1:]
	var retried atomic.Bool
	tap := logTap(func(r slog.Record) {
		if r.Message == "broker not answering; retrying" {
			retried.Store(true)
		}
	})
	svc, err := service.New(cfg, service.Options{Logger: slog.New(tap)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	queuetest.WaitFor(t, 20*time.Second, func() error {
		if !retried.Load() {
			return errors.New("no retry logged yet")
		}
		return nil
	})
	queuetest.RunServer(t, func(o *server.Options) { o.Port = port })
	queuetest.WaitFor(t, 30*time.Second, svc.Ready)
	svc.Drain()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// scrapeCounter reads a counter or gauge from the service's /metrics: the sum of
// the series of name whose labels include every one of labels.
func scrapeCounter(t *testing.T, r *running, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", r.svc.MetricsAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		series, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); match && err == nil {
			sum += v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// Pulls that fail (here: the input stream deleted under the worker) show
// in stoker_consumer_pull_failing_seconds, which StokerCannotPull watches.
func TestFailingPullsAreExported(t *testing.T) {
	r := startService(t, func(c *config.Config) { c.Pipelines = c.Pipelines[1:] })
	if err := r.conn.JetStream().DeleteStream(context.Background(), "RAW_TEXT"); err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, 20*time.Second, func() error {
		if v := scrapeCounter(t, r, "stoker_consumer_pull_failing_seconds", `pipeline="text"`); v <= 0 {
			return fmt.Errorf("stoker_consumer_pull_failing_seconds{pipeline=text} = %v", v)
		}
		return nil
	})
}
