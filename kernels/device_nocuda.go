//go:build !cuda

package kernels

import "context"

// Built reports whether this binary was built with CUDA support.
const Built = false

// Device stands in for a GPU in a build without the cuda tag. There is no
// way to obtain one: Open returns ErrNoCUDA. Its methods exist so that
// callers compile in both builds.
type Device struct{}

// Available returns ErrNoCUDA: this build has no CUDA support.
func Available() error { return ErrNoCUDA }

// Open returns ErrNoCUDA: this build has no CUDA support.
func Open(ctx context.Context, ordinal int, opts ...Options) (*Device, error) {
	return nil, ErrNoCUDA
}

// Name returns "no CUDA".
func (d *Device) Name() string { return "no CUDA" }

// Close does nothing.
func (d *Device) Close() error { return nil }

// ResizeCropNormalize returns ErrNoCUDA.
func (d *Device) ResizeCropNormalize(ctx context.Context, j *Job) error { return ErrNoCUDA }

// MeasureCeilings returns ErrNoCUDA.
func (d *Device) MeasureCeilings(ctx context.Context, bytes, reps int) (Ceilings, error) {
	return Ceilings{}, ErrNoCUDA
}
