package kernels

import "errors"

// ErrNoCUDA is returned by Open and Available in a build without the cuda
// tag.
var ErrNoCUDA = errors.New("stoker was built without CUDA; rebuild with -tags cuda")

// ErrClosed is returned by calls on a Device after Close.
var ErrClosed = errors.New("kernels: device is closed")

// ErrOutOfMemory marks a batch that did not fit in device or pinned host
// memory. It may pass with a smaller batch or later; the device is still
// usable.
var ErrOutOfMemory = errors.New("kernels: out of GPU memory")

// ErrDeviceLost marks a failure after which the CUDA context cannot be
// used again (a kernel fault, an uncorrectable ECC error, a lost device).
// Every later call on the Device fails with it; the caller should close
// the Device and fall back to the CPU or restart.
var ErrDeviceLost = errors.New("kernels: GPU context lost")
