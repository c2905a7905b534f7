//go:build cuda

package kernels

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// MeasureCeilings measures on the owner thread, with buffers it allocates
// and frees, the pinned host-to-device and device-to-host copy bandwidth
// and the device memory bandwidth: one untimed copy per direction, then
// reps copies of `bytes` timed with CUDA events. Call it while no batch is
// in flight, or the batches share the bus with it.
func (d *Device) MeasureCeilings(ctx context.Context, bytes, reps int) (Ceilings, error) {
	if bytes <= 0 || reps <= 0 {
		return Ceilings{}, fmt.Errorf("kernels: MeasureCeilings(%d bytes, %d reps): both must be positive", bytes, reps)
	}
	if err := ctx.Err(); err != nil {
		return Ceilings{}, err
	}
	c := Ceilings{Bytes: bytes, Reps: reps}
	err := d.call(func() (err error) {
		var host unsafe.Pointer
		var a, b cu.DevicePtr
		var stream cu.Stream
		var start, stop cu.Event
		defer func() {
			var errs []error
			if a != 0 {
				errs = append(errs, cu.MemFree(a))
			}
			if b != 0 {
				errs = append(errs, cu.MemFree(b))
			}
			errs = append(errs, freePinned(host))
			if stream != (cu.Stream{}) {
				errs = append(errs, stream.Destroy())
			}
			if start != (cu.Event{}) {
				errs = append(errs, cu.DestroyEvent(&start))
			}
			if stop != (cu.Event{}) {
				errs = append(errs, cu.DestroyEvent(&stop))
			}
			if cerr := errors.Join(errs...); cerr != nil && err == nil {
				err = fmt.Errorf("kernels: release the bandwidth test's buffers: %w", cerr)
			}
		}()
		if host, err = allocPinned(bytes); err != nil {
			return fmt.Errorf("kernels: allocate %s pinned for the bandwidth test: %w", byteSize(bytes), err)
		}
		if a, err = cu.MemAlloc(int64(bytes)); err != nil {
			return fmt.Errorf("kernels: allocate %s on the device for the bandwidth test: %w", byteSize(bytes), err)
		}
		if b, err = cu.MemAlloc(int64(bytes)); err != nil {
			return fmt.Errorf("kernels: allocate %s on the device for the bandwidth test: %w", byteSize(bytes), err)
		}
		if stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
			return fmt.Errorf("kernels: create the bandwidth test's stream: %w", err)
		}
		if start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return fmt.Errorf("kernels: create the bandwidth test's events: %w", err)
		}
		if stop, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return fmt.Errorf("kernels: create the bandwidth test's events: %w", err)
		}
		n := int64(bytes)
		type copier struct {
			name string
			copy func() error
			dst  *float64
			mult float64
		}
		for _, cp := range []copier{
			{"host-to-device", func() error { return cu.MemcpyHtoDAsync(a, host, n, stream) }, &c.HostToDevice, 1},
			{"device-to-host", func() error { return cu.MemcpyDtoHAsync(host, a, n, stream) }, &c.DeviceToHost, 1},
			{"device-to-device", func() error { return cu.MemcpyDtoDAsync(b, a, n, stream) }, &c.DeviceMemory, 2},
		} {
			if err := cp.copy(); err != nil { // warm-up
				return fmt.Errorf("kernels: %s copy of %d bytes: %w", cp.name, n, err)
			}
			if err := start.Record(stream); err != nil {
				return fmt.Errorf("kernels: record the %s start event: %w", cp.name, err)
			}
			for r := 0; r < reps; r++ {
				if err := cp.copy(); err != nil {
					return fmt.Errorf("kernels: %s copy %d of %d bytes: %w", cp.name, r, n, err)
				}
			}
			if err := stop.Record(stream); err != nil {
				return fmt.Errorf("kernels: record the %s stop event: %w", cp.name, err)
			}
			if err := stop.Synchronize(); err != nil {
				return fmt.Errorf("kernels: wait for the %s copies: %w", cp.name, err)
			}
			ms, err := start.Elapsed(stop)
			if err != nil {
				return fmt.Errorf("kernels: read the %s copy time: %w", cp.name, err)
			}
			*cp.dst = cp.mult * float64(n) * float64(reps) / (ms / 1000)
		}
		return nil
	})
	return c, err
}
