package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
)

type fakeProc struct {
	name   string
	err    error
	calls  int
	closed bool
}

func (f *fakeProc) Process(context.Context, []preprocess.Item) (*preprocess.Batch, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &preprocess.Batch{Pipeline: f.name}, nil
}

func (f *fakeProc) Close() error { f.closed = true; return nil }

func TestCPUFallbackAfterDeviceLoss(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	t.Run("a plain GPU error stays on the GPU", func(t *testing.T) {
		gpu := &fakeProc{name: "gpu", err: fmt.Errorf("launch: %w", kernels.ErrOutOfMemory)}
		cpu := &fakeProc{name: "cpu"}
		f := withCPUFallback(gpu, func() (Processor, error) { return cpu, nil }, quiet)
		for range 2 {
			if _, err := f.Process(ctx, nil); !errors.Is(err, kernels.ErrOutOfMemory) {
				t.Fatalf("err %v, want the GPU's", err)
			}
		}
		if gpu.calls != 2 || cpu.calls != 0 || gpu.closed {
			t.Fatalf("gpu calls %d closed %v, cpu calls %d", gpu.calls, gpu.closed, cpu.calls)
		}
	})

	t.Run("a lost device moves to the CPU", func(t *testing.T) {
		gpu := &fakeProc{name: "gpu", err: fmt.Errorf("synchronize: %w", kernels.ErrDeviceLost)}
		cpu := &fakeProc{name: "cpu"}
		f := withCPUFallback(gpu, func() (Processor, error) { return cpu, nil }, quiet)
		if d := f.Device(); d != DeviceCUDA {
			t.Fatalf("before the loss the metrics say device %q, want cuda", d)
		}
		if _, err := f.Process(ctx, nil); !errors.Is(err, kernels.ErrDeviceLost) {
			t.Fatalf("the batch that met the loss: err %v, want it to fail (and be retried)", err)
		}
		if d := f.Device(); d != DeviceCPU {
			t.Fatalf("after the loss the metrics say device %q, want cpu", d)
		}
		if d := withCPUFallback(nopCloser{cpu}, nil, quiet).Device(); d != DeviceCPU {
			t.Fatalf("a fallback around a CPU processor says device %q, want cpu", d)
		}
		b, err := f.Process(ctx, nil)
		if err != nil || b.Pipeline != "cpu" {
			t.Fatalf("after the loss: %v, %v; want the CPU's batch", b, err)
		}
		if !gpu.closed {
			t.Fatal("the lost GPU processor was not closed")
		}
		if err := f.Close(); err != nil || !cpu.closed {
			t.Fatalf("Close: %v, cpu closed %v", err, cpu.closed)
		}
	})
}

func TestInflightBatchesDefaultsByDevice(t *testing.T) {
	for _, tc := range []struct {
		set    int
		device string
		want   int
	}{
		{0, DeviceCUDA, 2}, {0, DeviceCPU, 1}, {3, DeviceCPU, 3}, {1, DeviceCUDA, 1},
	} {
		p := &config.Pipeline{InflightBatches: tc.set}
		if got := inflightBatches(p, tc.device); got != tc.want {
			t.Errorf("inflight_batches %d on %s: %d batches at once, want %d", tc.set, tc.device, got, tc.want)
		}
	}
}
