package kernels

import (
	"errors"
	"fmt"
)

// ErrNoCUDA is returned by Open and Available in a build without the cuda
// tag.
var ErrNoCUDA = errors.New("stoker was built without CUDA; rebuild with -tags cuda")

// ErrClosed is returned by calls on a Device after Close.
var ErrClosed = errors.New("kernels: device is closed")

// ErrOutOfMemory marks a batch that did not fit in device or pinned host
// memory. It may pass with a smaller batch or later; the device is still
// usable. Its Reason, "gpu_out_of_memory", labels the failure in metrics
// (it satisfies preprocess.Reasoner).
var ErrOutOfMemory error = &gpuError{msg: "kernels: out of GPU memory", reason: ReasonOutOfMemory}

// ErrDeviceLost marks a failure after which the CUDA context cannot be
// used again (a kernel fault, an uncorrectable ECC error, a lost device).
// Every later call on the Device fails with it; the caller should close
// the Device and fall back to the CPU or restart. Its Reason is
// "gpu_lost".
var ErrDeviceLost error = &gpuError{msg: "kernels: GPU context lost", reason: ReasonDeviceLost}

// ErrWordPieceLimit marks WordPiece tables that are valid but beyond what
// the WordPiece kernels take (WordPieceMaxChars, WordPieceMaxKey,
// WordPieceMaxSpecial); the error wrapping it says which limit and the
// value. Such a tokenizer runs on the CPU.
var ErrWordPieceLimit = errors.New("kernels: the tokenizer is beyond the WordPiece kernels' limits")

// limitError is a WordPieceTables.Validate error for a tokenizer beyond a
// kernel limit: its own message, matching ErrWordPieceLimit in errors.Is.
type limitError struct{ msg string }

func limitErrorf(format string, args ...any) error {
	return &limitError{msg: fmt.Sprintf(format, args...)}
}

func (e *limitError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrWordPieceLimit) true.
func (e *limitError) Is(target error) bool { return target == ErrWordPieceLimit }

// The reason codes of ErrOutOfMemory and ErrDeviceLost.
const (
	ReasonOutOfMemory = "gpu_out_of_memory"
	ReasonDeviceLost  = "gpu_lost"
)

// gpuError is a GPU failure with a reason code for metrics.
type gpuError struct{ msg, reason string }

func (e *gpuError) Error() string { return e.msg }

// Reason is the failure's metrics label.
func (e *gpuError) Reason() string { return e.reason }

// byteSize writes n bytes for an error message: "512 B", "4.0 KiB",
// "147.2 MiB", "1.5 GiB".
func byteSize(n int) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
