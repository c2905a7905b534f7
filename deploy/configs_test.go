package deploy_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// TestShippedConfigsRun runs each configuration of the ConfigMap
// stoker-config in this process — on a 3-node cluster of in-process
// servers instead of deploy/k8s/nats (its streams have 3 replicas), and on
// the CPU when this machine has no GPU — and checks that each of its
// pipelines turns a published item into a tensor.
func TestShippedConfigsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts workers")
	}
	cm := loadManifests(t).named(t, "ConfigMap", "stoker-config")
	for key, data := range get(cm, "data").(obj) {
		t.Run(key, func(t *testing.T) {
			cfg, err := config.Parse([]byte(data.(string)), path.Join("stoker-config", key))
			if err != nil {
				t.Fatal(err)
			}
			cluster := queuetest.RunCluster(t, 3)
			cfg.NATS = config.NATS{Name: cfg.NATS.Name, URL: cluster.URLs()}
			cfg.Metrics.Addr = "127.0.0.1:0"
			if _, err := service.ResolveDevice(cfg.Device); err != nil {
				t.Logf("device %s unavailable here (%v): running on cpu", cfg.Device, err)
				cfg.Device = service.DeviceCPU
			}
			svc, err := service.New(cfg, service.Options{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- svc.Run(context.Background()) }()
			t.Cleanup(func() {
				svc.Drain()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("service: %v", err)
					}
				case <-time.After(60 * time.Second):
					t.Error("service did not drain within 60s")
				}
			})
			waitFor(t, 60*time.Second, "the worker to be ready", func() error {
				if svc.MetricsAddr() == "" {
					return errors.New("no metrics address yet")
				}
				return svc.Ready()
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := queue.Connect(ctx, queue.ConnOptions{URL: cluster.URLs(), Name: "deploy-test"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			for _, p := range cfg.Pipelines {
				item := []byte("a short document")
				if p.Image != nil {
					item = jpegBytes(t)
				}
				subject := strings.ReplaceAll(strings.ReplaceAll(p.Subjects[0], ">", "item"), "*", "item")
				if _, err := conn.Publish(ctx, subject, item, nil); err != nil {
					t.Fatalf("publish to %s: %v", subject, err)
				}
			}
			waitFor(t, 60*time.Second, "every pipeline to publish a tensor", func() error {
				fams := scrapeFamilies(t, svc.MetricsAddr())
				for _, p := range cfg.Pipelines {
					if n := fams["stoker_items_total"].sum(map[string]string{"pipeline": p.Name, "outcome": "ok"}); n < 1 {
						return errors.New("pipeline " + p.Name + " has settled no item")
					}
				}
				return nil
			})
		})
	}
}
