package service_test

import (
	"context"
	"testing"
	"time"

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
