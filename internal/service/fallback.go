package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
)

// cpuFallback runs a pipeline's batches on its GPU processor until the
// device is lost, then on a CPU processor made on demand. The batch that
// met the loss fails transiently and is retried, on the CPU.
type cpuFallback struct {
	log    *slog.Logger
	newCPU func() (Processor, error)

	mu     sync.Mutex
	active Processor
	gpu    Processor // nil once replaced
}

func withCPUFallback(gpu Processor, newCPU func() (Processor, error), log *slog.Logger) *cpuFallback {
	return &cpuFallback{log: log, newCPU: newCPU, active: gpu, gpu: gpu}
}

func (f *cpuFallback) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	f.mu.Lock()
	p := f.active
	f.mu.Unlock()
	b, err := p.Process(ctx, items)
	if err == nil || !errors.Is(err, kernels.ErrDeviceLost) {
		return b, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gpu != nil && f.active == f.gpu {
		cpu, cerr := f.newCPU()
		if cerr != nil {
			f.log.Error("GPU lost and the CPU processor could not be made; batches keep failing", "err", err, "cpu_err", cerr)
			return nil, err
		}
		f.log.Error("GPU lost: the pipeline goes on on the CPU", "err", err)
		if cerr := f.gpu.Close(); cerr != nil {
			f.log.Warn("closing the lost GPU", "err", cerr)
		}
		f.active, f.gpu = cpu, nil
	}
	return nil, err
}

// Device is the device batches run on now: cuda until the GPU is lost,
// then cpu (worker.DeviceReporter, for the metrics' device label).
func (f *cpuFallback) Device() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.active.(worker.DeviceReporter); ok {
		return d.Device()
	}
	if f.gpu != nil {
		return DeviceCUDA
	}
	return DeviceCPU
}

func (f *cpuFallback) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.active.Close()
	if f.gpu != nil && f.gpu != f.active {
		err = errors.Join(err, f.gpu.Close())
	}
	return err
}
