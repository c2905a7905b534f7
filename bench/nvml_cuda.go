//go:build cuda

package bench

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNVMLUnavailable says the GPU could not be asked about itself.
var ErrNVMLUnavailable = errors.New("NVML unavailable")

func nvmlErr(what string, r nvml.Return) error {
	return fmt.Errorf("%w: %s: %s", ErrNVMLUnavailable, what, nvml.ErrorString(r))
}

// gpuFacts asks NVML (libnvidia-ml, loaded at run time) for GPU 0's name
// and the driver version. A missing library is an error, never a crash.
func gpuFacts() (name, driver string, err error) {
	if r := nvml.Init(); r != nvml.SUCCESS {
		return "", "", nvmlErr("init", r)
	}
	defer nvml.Shutdown()
	driver, r := nvml.SystemGetDriverVersion()
	if r != nvml.SUCCESS {
		return "", "", nvmlErr("driver version", r)
	}
	dev, r := nvml.DeviceGetHandleByIndex(0)
	if r != nvml.SUCCESS {
		return "", driver, nvmlErr("GPU 0", r)
	}
	name, r = dev.GetName()
	if r != nvml.SUCCESS {
		return "", driver, nvmlErr("GPU 0 name", r)
	}
	return name, driver, nil
}

// gpuSampler reads GPU 0's utilisation every 50ms between Start and Stop.
type gpuSampler struct {
	dev  nvml.Device
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	sum  float64
	n    int
	err  error
}

// NewGPUSampler returns a sampler of GPU 0's utilisation through NVML. The
// sampler holds NVML initialised for the life of the process.
func NewGPUSampler() (UtilSampler, error) {
	if r := nvml.Init(); r != nvml.SUCCESS {
		return nil, nvmlErr("init", r)
	}
	dev, r := nvml.DeviceGetHandleByIndex(0)
	if r != nvml.SUCCESS {
		nvml.Shutdown()
		return nil, nvmlErr("GPU 0", r)
	}
	return &gpuSampler{dev: dev}, nil
}

func (s *gpuSampler) Start() {
	s.mu.Lock()
	s.sum, s.n, s.err = 0, 0, nil
	s.mu.Unlock()
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			u, r := s.dev.GetUtilizationRates()
			s.mu.Lock()
			if r != nvml.SUCCESS {
				s.err = nvmlErr("utilisation", r)
			} else {
				s.sum += float64(u.Gpu)
				s.n++
			}
			s.mu.Unlock()
		}
	}()
}

func (s *gpuSampler) Stop() (float64, error) {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, errors.New("no utilisation sample (run shorter than 50ms)")
	}
	return s.sum / float64(s.n), nil
}
