package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// A drain asked for before the pipelines exist (a SIGTERM while setup
// waits for the broker) still drains them: Run returns nil instead of
// running until the hard stop.
func TestDrainBeforeSetupDrainsPipelinesSetUpLater(t *testing.T) {
	srv := queuetest.RunServer(t)
	cfg := config.Default()
	cfg.NATS.URL = srv.ClientURL()
	cfg.Metrics.Addr = ""
	cfg.Device = testDevice
	svc, err := service.New(cfg, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc.Drain()
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("Run after Drain: %v; want the pipelines drained and nil", err)
	}
}

// The streams stoker creates follow the pipeline's streams settings: the
// input stream refuses publishes when full, the output and dead-letter
// streams drop their oldest messages.
func TestStreamsCreatedWithTheirSettings(t *testing.T) {
	r := startService(t, func(c *config.Config) {
		c.Pipelines = c.Pipelines[1:] // text
		c.Pipelines[0].Streams = config.Streams{Replicas: 1, MaxAge: 72 * time.Hour, InputMaxBytes: 64 << 20, OutputMaxBytes: 32 << 20}
	})
	ctx := context.Background()
	for _, want := range []struct {
		stream  string
		bytes   int64
		discard jetstream.DiscardPolicy
	}{
		{"RAW_TEXT", 64 << 20, jetstream.DiscardNew},
		{"TENSORS_TEXT", 32 << 20, jetstream.DiscardOld},
		{"DLQ_TEXT", 32 << 20, jetstream.DiscardOld},
	} {
		st, err := r.conn.JetStream().Stream(ctx, want.stream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		if cfg.MaxBytes != want.bytes || cfg.Discard != want.discard || cfg.MaxAge != 72*time.Hour || cfg.Replicas != 1 {
			t.Errorf("%s: max_bytes %d, discard %v, max_age %v, replicas %d; want %d, %v, 72h, 1",
				want.stream, cfg.MaxBytes, cfg.Discard, cfg.MaxAge, cfg.Replicas, want.bytes, want.discard)
		}
	}
}

// recordedLogs is a slog handler keeping every message, for tests that
// wait for one.
type recordedLogs struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordedLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordedLogs) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordedLogs) WithGroup(string) slog.Handler            { return h }
func (h *recordedLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}

func (h *recordedLogs) contains(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.msgs, msg)
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
	logs := &recordedLogs{}
	svc, err := service.New(cfg, service.Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	queuetest.WaitFor(t, 20*time.Second, func() error {
		if !logs.contains("broker not answering; retrying") {
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
