//go:build !cuda

package metrics

import "errors"

// ErrNoNVML is why a build without the cuda tag has no GPU metrics.
var ErrNoNVML = errors.New("NVML not compiled in: this is a CPU build (no cuda build tag)")

type noNVML struct{}

func newNVMLReader() gpuReader { return noNVML{} }

func (noNVML) available() error   { return ErrNoNVML }
func (noNVML) read() []gpuReading { return nil }
