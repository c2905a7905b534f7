package cudaguard

import "fmt"

// Failure says which check failed.
type Failure int

// The checks, in the order they run.
const (
	NoLibrary  Failure = iota + 1 // dlopen("libcuda.so.1") failed
	InitFailed                    // cuInit(0) returned an error
	NoDevice                      // cuDeviceGetCount failed or counted 0
)

// Advice ends every message: what to do instead.
const Advice = "use the CPU build (without -tags cuda) on this host"

// Message is the text the guard prints for a failure. detail is dlerror's
// text for NoLibrary and the driver's error name for InitFailed and
// NoDevice; code is the driver's CUresult (0 when there is none).
func Message(f Failure, detail string, code int) string {
	var what string
	switch f {
	case NoLibrary:
		what = fmt.Sprintf("no CUDA driver library (libcuda.so.1: %s)", detail)
	case InitFailed:
		what = fmt.Sprintf("CUDA driver failed to initialise: cuInit returned %s (%d)", detail, code)
	case NoDevice:
		if code != 0 {
			what = fmt.Sprintf("no CUDA device: cuDeviceGetCount returned %s (%d)", detail, code)
		} else {
			what = "no CUDA device: cuDeviceGetCount reported 0 devices"
		}
	default:
		what = fmt.Sprintf("CUDA check %d failed: %s (%d)", int(f), detail, code)
	}
	return fmt.Sprintf("stoker (cuda build): %s; %s\n", what, Advice)
}
