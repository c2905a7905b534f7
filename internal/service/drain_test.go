package service_test

import (
	"context"
	"testing"
	"time"

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
