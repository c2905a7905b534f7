package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestSetupRetriesTransientBrokerErrors(t *testing.T) {
	s := &Service{log: slog.New(slog.NewTextHandler(io.Discard, nil)), drained: make(chan struct{})}
	ctx := context.Background()

	calls := 0
	err := s.retry(ctx, "text", "stream RAW_TEXT", func() error {
		calls++
		switch calls {
		case 1:
			return fmt.Errorf("queue: look up stream RAW_TEXT: %w", context.DeadlineExceeded)
		case 2:
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("after two transient failures: err %v, %d calls; want success on the third", err, calls)
	}

	calls = 0
	permanent := errors.New("queue: existing stream RAW_TEXT does not capture \"raw.text.>\"")
	err = s.retry(ctx, "text", "stream RAW_TEXT", func() error { calls++; return permanent })
	if !errors.Is(err, permanent) || calls != 1 {
		t.Fatalf("a permanent error: err %v, %d calls; want it returned after one call", err, calls)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	err = s.retry(cancelled, "text", "stream RAW_TEXT", func() error { calls++; return nats.ErrTimeout })
	if err == nil || calls != 1 {
		t.Fatalf("a cancelled start: err %v, %d calls; want an error after one call", err, calls)
	}
}

func TestDrainStopsSetupRetries(t *testing.T) {
	s := &Service{log: slog.New(slog.NewTextHandler(io.Discard, nil)), drained: make(chan struct{})}
	calls := 0
	err := s.retry(context.Background(), "text", "stream RAW_TEXT", func() error {
		calls++
		if calls == 2 {
			s.Drain() // a SIGTERM while the broker is not answering
		}
		return nats.ErrNoResponders
	})
	if !errors.Is(err, errDrainedDuringSetup) || calls != 2 {
		t.Fatalf("drained during retries: err %v after %d calls; want errDrainedDuringSetup after 2", err, calls)
	}
}
