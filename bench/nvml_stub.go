//go:build !cuda

package bench

import (
	"errors"
	"fmt"
)

// ErrNVMLUnavailable says the GPU could not be asked about itself.
var ErrNVMLUnavailable = errors.New("NVML unavailable")

// errNotCUDABuild: go-nvml needs cgo to build, so it is compiled only into
// cuda builds; the default build stays CGO_ENABLED=0.
var errNotCUDABuild = fmt.Errorf("%w: not a cuda build (build with -tags cuda)", ErrNVMLUnavailable)

func gpuFacts() (name, driver string, err error) { return "", "", errNotCUDABuild }

// NewGPUSampler returns a sampler of GPU 0's utilisation; in this build
// there is none.
func NewGPUSampler() (UtilSampler, error) { return nil, errNotCUDABuild }
