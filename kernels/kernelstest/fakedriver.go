//go:build cgo

package kernelstest

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*fail_fn)(const char *, long, int, int);
typedef long long (*stat_fn)(const char *);
typedef void (*reset_fn)(void);
typedef void (*delay_fn)(long);
typedef void (*pause_fn)(int);
typedef void (*memory_fn)(unsigned long long);

static void *fake_sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }
static int fake_fail(void *f, const char *call, long nth, int code, int async) { return ((fail_fn)f)(call, nth, code, async); }
static long long fake_stat(void *f, const char *name) { return ((stat_fn)f)(name); }
static void fake_reset(void *f) { ((reset_fn)f)(); }
static void fake_delay(void *f, long us) { ((delay_fn)f)(us); }
static void fake_pause(void *f, int on) { ((pause_fn)f)(on); }
static void fake_memory(void *f, unsigned long long n) { ((memory_fn)f)(n); }
*/
import "C"

import (
	"testing"
	"time"
	"unsafe"
)

// CUDA driver error codes the fake driver tests inject (cuda.h's CUresult).
const (
	CUDAErrorOutOfMemory    = 2
	CUDAErrorIllegalAddress = 700
	CUDAErrorLaunchTimeout  = 702
	CUDAErrorAssert         = 710
	CUDAErrorLaunchFailed   = 719
	CUDAErrorUnknown        = 999 // what a GPU that fell off the bus returns
)

// FakeDriver controls kernels/fakecuda, the CPU stand-in for
// libcuda.so.1, when it is the driver library this process loaded (a
// `-tags cuda` test binary run with LD_LIBRARY_PATH=bin/fakecuda, as
// `make test-cuda-fake` runs them).
type FakeDriver struct {
	fail, stat, reset, delay, pause, memory unsafe.Pointer
}

// LoadFakeDriver returns the fake driver, or false when the process runs
// on the real driver or none.
func LoadFakeDriver() (*FakeDriver, bool) {
	sym := func(name string) unsafe.Pointer {
		c := C.CString(name)
		defer C.free(unsafe.Pointer(c))
		return C.fake_sym(c)
	}
	f := &FakeDriver{
		fail:   sym("stoker_fakecuda_fail"),
		stat:   sym("stoker_fakecuda_stat"),
		reset:  sym("stoker_fakecuda_reset_max_busy_streams"),
		delay:  sym("stoker_fakecuda_set_delay_us"),
		pause:  sym("stoker_fakecuda_pause"),
		memory: sym("stoker_fakecuda_set_memory"),
	}
	if f.fail == nil || f.stat == nil || f.reset == nil || f.delay == nil || f.pause == nil || f.memory == nil {
		return nil, false
	}
	return f, true
}

// RequireFakeDriver skips t unless the fake driver is loaded: these tests
// inject driver errors and read the driver's books, which a GPU does not
// allow.
func RequireFakeDriver(t testing.TB) *FakeDriver {
	t.Helper()
	f, ok := LoadFakeDriver()
	if !ok {
		t.Skip("needs kernels/fakecuda as libcuda.so.1 (make test-cuda-fake)")
	}
	return f
}

// Fail makes the nth next call (1 = the next) of the driver function call
// (its exported name, such as cuMemAlloc_v2) fail with code; with async,
// the call succeeds and the error surfaces when its queued work runs.
func (f *FakeDriver) Fail(t testing.TB, call string, nth, code int, async bool) {
	t.Helper()
	c := C.CString(call)
	defer C.free(unsafe.Pointer(c))
	a := C.int(0)
	if async {
		a = 1
	}
	if C.fake_fail(f.fail, c, C.long(nth), C.int(code), a) != 0 {
		t.Fatalf("fake driver refused the fault %s #%d code %d", call, nth, code)
	}
}

// Stat reads one of the fake driver's counters: the calls of a driver
// function by its exported name, or live_device_bytes, peak_device_bytes,
// live_pinned_bytes, live_allocations, live_contexts, live_modules,
// live_streams, live_events, max_busy_streams, left_at_destroy.
func (f *FakeDriver) Stat(name string) int64 {
	c := C.CString(name)
	defer C.free(unsafe.Pointer(c))
	return int64(C.fake_stat(f.stat, c))
}

// Stats reads several counters.
func (f *FakeDriver) Stats(names ...string) map[string]int64 {
	m := make(map[string]int64, len(names))
	for _, n := range names {
		m[n] = f.Stat(n)
	}
	return m
}

// ResetMaxBusyStreams starts a new window for max_busy_streams.
func (f *FakeDriver) ResetMaxBusyStreams() { C.fake_reset(f.reset) }

// SetDelay makes every queued copy and launch wait d before it runs, until
// the test ends.
func (f *FakeDriver) SetDelay(t testing.TB, d time.Duration) {
	C.fake_delay(f.delay, C.long(d.Microseconds()))
	t.Cleanup(func() { C.fake_delay(f.delay, 0) })
}

// Pause holds every stream before its next copy, launch or event record
// until Resume (or the end of the test): the batches queued stay in
// flight.
func (f *FakeDriver) Pause(t testing.TB) {
	C.fake_pause(f.pause, 1)
	t.Cleanup(f.Resume)
}

// Resume lets the streams held by Pause go on.
func (f *FakeDriver) Resume() { C.fake_pause(f.pause, 0) }

// SetMemory caps the device's memory at bytes until the test ends (the
// default cap is 8 GiB); allocations already made stay.
func (f *FakeDriver) SetMemory(t testing.TB, bytes int64) {
	C.fake_memory(f.memory, C.ulonglong(bytes))
	t.Cleanup(func() { C.fake_memory(f.memory, 8<<30) })
}

// LiveResources names the counters that must be back where they were once
// everything opened has been closed.
var LiveResources = []string{"live_device_bytes", "live_pinned_bytes", "live_allocations", "live_contexts",
	"live_modules", "live_streams", "live_events", "left_at_destroy"}

// CheckReleased fails t if any of LiveResources differs from before.
func (f *FakeDriver) CheckReleased(t testing.TB, before map[string]int64) {
	t.Helper()
	for _, n := range LiveResources {
		if got := f.Stat(n); got != before[n] {
			t.Errorf("%s = %d after Close, %d before Open", n, got, before[n])
		}
	}
}
