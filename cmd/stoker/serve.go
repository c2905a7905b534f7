package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/service"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "[--config FILE] [--nats URL] [--listen HOST:PORT] [--data-dir DIR] [--device auto|cpu|cuda] [--metrics-addr ADDR]")
	var nf natsFlags
	nf.register(fs)
	cfgPath := fs.String("config", "", "configuration file (default: the built-in configuration, deploy/stoker.yaml)")
	listen := fs.String("listen", "", "embedded server's client address (default 127.0.0.1:4222; loopback unless authentication is set)")
	dataDir := fs.String("data-dir", "", "embedded server's JetStream store (default ./stoker-data)")
	device := fs.String("device", "", "auto, cpu or cuda (default: the configuration's, auto)")
	metricsAddr := fs.String("metrics-addr", "", "address of /metrics, /healthz and /readyz (default 127.0.0.1:9090; 'off' disables)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	nf.apply(&cfg.NATS)
	if *listen != "" {
		cfg.Embedded.Listen = *listen
	}
	if *dataDir != "" {
		cfg.Embedded.DataDir = *dataDir
	}
	if *device != "" {
		cfg.Device = *device
	}
	switch *metricsAddr {
	case "":
	case "off":
		cfg.Metrics.Addr = ""
	default:
		cfg.Metrics.Addr = *metricsAddr
	}
	svc, err := service.New(cfg, service.Options{Logger: e.log})
	if err != nil {
		return err
	}
	return serveUntilSignal(ctx, e, svc, cfg.DrainTimeout)
}

// serveUntilSignal runs svc; the first signal (ctx) drains it within
// drainTimeout, a second signal or the timeout stops it hard.
func serveUntilSignal(ctx context.Context, e *env, svc *service.Service, drainTimeout time.Duration) error {
	hard, stopHard := context.WithCancel(context.Background())
	defer stopHard()
	done := make(chan error, 1)
	go func() { done <- svc.Run(hard) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	e.log.Info("signal received: draining (a second signal stops at once)", "bound", drainTimeout.String())
	svc.Drain()
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	case <-e.interrupted:
		e.log.Warn("second signal: stopping now; unacknowledged items will be redelivered")
	case <-timer.C:
		e.log.Warn("drain bound reached: stopping now; unacknowledged items will be redelivered")
	}
	stopHard()
	<-done
	return fmt.Errorf("stopped before in-flight batches finished")
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}
