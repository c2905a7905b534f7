//go:build cuda

package gpu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// These tests run the GPU processors on kernels/fakecuda, the CPU
// stand-in for the CUDA driver (make test-cuda-fake), and check what a GPU
// cannot be asked: that buffers are allocated once, that batches overlap
// on the streams, that Close gives every driver resource back, and what a
// batch does when the driver runs out of memory or loses the context.
// On a real GPU they skip.

// gpuPipeline is one GPU processor under test with its CPU reference.
type gpuPipeline struct {
	name  string
	items func(t *testing.T) []preprocess.Item
	// open makes the processor on dev; close releases it (before dev).
	open func(t *testing.T, dev *kernels.Device) (process func(context.Context, []preprocess.Item) (*preprocess.Batch, error), close func() error)
	// check compares a batch of items with the CPU processor's.
	check func(t *testing.T, items []preprocess.Item, got *preprocess.Batch)
}

func fakeDriverPipelines() []gpuPipeline {
	textSpec := text.DefaultSpec()
	textSpec.InvalidUTF8 = text.ReplaceInvalid
	return []gpuPipeline{
		{
			name:  "image",
			items: testItems,
			open: func(t *testing.T, dev *kernels.Device) (func(context.Context, []preprocess.Item) (*preprocess.Batch, error), func() error) {
				p, err := NewImageProcessor(image.DefaultSpec(), dev, 2)
				if err != nil {
					t.Fatal(err)
				}
				return p.Process, func() error { return nil }
			},
			check: func(t *testing.T, items []preprocess.Item, got *preprocess.Batch) {
				cpu, err := image.NewProcessor(image.DefaultSpec(), 2)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpu.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				compareBatches(t, image.DefaultSpec(), got, want, false)
			},
		},
		{
			name:  "text",
			items: func(t *testing.T) []preprocess.Item { return corpusItems(t)[:400] },
			open: func(t *testing.T, dev *kernels.Device) (func(context.Context, []preprocess.Item) (*preprocess.Batch, error), func() error) {
				p, err := NewTextProcessor(textSpec, dev, 2)
				if err != nil {
					t.Fatal(err)
				}
				return p.Process, p.Close
			},
			check: func(t *testing.T, items []preprocess.Item, got *preprocess.Batch) {
				cpu, err := text.NewProcessor(textSpec, 2)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpu.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				if same := compareTextBatches(t, got, want); same != want.Len() {
					t.Errorf("%d of %d rows differ from the CPU processor's", want.Len()-same, want.Len())
				}
			},
		},
	}
}

// openFake opens the device and the pipeline's processor; the returned
// closer closes both and reports their errors.
func openFake(t *testing.T, pl gpuPipeline) (func(context.Context, []preprocess.Item) (*preprocess.Batch, error), func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := kernels.Open(ctx, 0, kernels.Options{Slots: 3})
	if err != nil {
		t.Fatal(err)
	}
	process, closeP := pl.open(t, dev)
	return process, func() error { return errors.Join(closeP(), dev.Close()) }
}

// onFakeDriver runs test once for each GPU pipeline, on the fake driver.
func onFakeDriver(t *testing.T, test func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline)) {
	fake := kernelstest.RequireFakeDriver(t)
	for _, pl := range fakeDriverPipelines() {
		t.Run(pl.name, func(t *testing.T) { test(t, fake, pl) })
	}
}

// TestFakeDriverBuffersAllocatedOnce: batches of the same size reuse
// their slot's pinned and device buffers: no allocation per batch.
func TestFakeDriverBuffersAllocatedOnce(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		process, closeAll := openFake(t, pl)
		defer closeAll()
		// Batches one after another take the slots in turn; the first
		// six size the buffers of every slot.
		counters := []string{"cuMemAlloc_v2", "cuMemAllocHost_v2", "cuMemFree_v2", "cuMemFreeHost"}
		var sized map[string]int64
		for i := range 10 {
			if i == 6 {
				sized = fake.Stats(counters...)
			}
			b, err := process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			pl.check(t, items, b)
			b.Release()
		}
		for k, v := range fake.Stats(counters...) {
			if v != sized[k] {
				t.Errorf("%s called %d more times by 4 batches of the same size after every slot was sized", k, v-sized[k])
			}
		}
	})
}

// TestFakeDriverCloseReleasesEverything: after Close, every allocation,
// stream, event, module and context is given back by stoker itself.
func TestFakeDriverCloseReleasesEverything(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		before := fake.Stats(kernelstest.LiveResources...)
		process, closeAll := openFake(t, pl)
		b, err := process(context.Background(), pl.items(t))
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if fake.Stat("live_streams") <= before["live_streams"] || fake.Stat("live_device_bytes") <= before["live_device_bytes"] {
			t.Fatalf("the open processor holds no stream or device memory: %v", fake.Stats(kernelstest.LiveResources...))
		}
		if err := closeAll(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		fake.CheckReleased(t, before)
	})
}

// TestFakeDriverReportsStageTimings: each batch says how long it spent
// decoding on the CPU and uploading, in the kernels and downloading on the
// device (CUDA events), for the bench's breakdown.
func TestFakeDriverReportsStageTimings(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, _ *kernelstest.FakeDriver, pl gpuPipeline) {
		process, closeAll := openFake(t, pl)
		defer closeAll()
		b, err := process(context.Background(), pl.items(t))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release()
		for _, stage := range []string{preprocess.StageDecode, preprocess.StageUpload, preprocess.StageKernel, preprocess.StageDownload} {
			if d, ok := b.Timings[stage]; !ok || d <= 0 {
				t.Errorf("stage %s: %v (reported: %v)", stage, d, ok)
			}
		}
	})
}

// TestFakeDriverBatchesOverlap: with every copy and launch slowed down,
// batches submitted from several goroutines must be in flight on
// different streams at the same moment (upload of one while another's
// kernel runs), not one after another.
func TestFakeDriverBatchesOverlap(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		process, closeAll := openFake(t, pl)
		defer closeAll()
		// First batches size the buffers of every slot.
		warm(t, process, items, 3)
		fake.SetDelay(t, 20*time.Millisecond)
		fake.ResetMaxBusyStreams()
		warm(t, process, items, 3)
		if got := fake.Stat("max_busy_streams"); got < 2 {
			t.Errorf("at most %d stream(s) ran work at once with 3 batches in flight; want at least 2", got)
		}
	})
}

// warm runs n batches of items at once from n goroutines.
func warm(t *testing.T, process func(context.Context, []preprocess.Item) (*preprocess.Batch, error), items []preprocess.Item, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := process(context.Background(), items)
			if err == nil {
				b.Release()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// batches runs batches of items on their own goroutines while the fake
// driver's streams are held (Pause), waits until each has queued its
// upload, and collects their outcomes.
type batches struct {
	t       *testing.T
	fake    *kernelstest.FakeDriver
	process func(context.Context, []preprocess.Item) (*preprocess.Batch, error)
	items   []preprocess.Item
	base    int64 // uploads queued before the first batch
	started int
	done    chan outcome
}

type outcome struct {
	b   *preprocess.Batch
	err error
}

func holdBatches(t *testing.T, fake *kernelstest.FakeDriver, process func(context.Context, []preprocess.Item) (*preprocess.Batch, error), items []preprocess.Item) *batches {
	fake.Pause(t)
	return &batches{t: t, fake: fake, process: process, items: items,
		base: fake.Stat("cuMemcpyHtoDAsync_v2"), done: make(chan outcome, 8)}
}

// start runs one more batch and reports whether its upload was queued
// within 10 s (every batch uploads once).
func (bs *batches) start(what string) bool {
	bs.started++
	go func() {
		b, err := bs.process(context.Background(), bs.items)
		bs.done <- outcome{b, err}
	}()
	want := bs.base + int64(bs.started)
	deadline := time.Now().Add(10 * time.Second)
	for bs.fake.Stat("cuMemcpyHtoDAsync_v2") < want {
		if time.Now().After(deadline) {
			bs.t.Errorf("%s: %d uploads queued after 10 s, want %d", what, bs.fake.Stat("cuMemcpyHtoDAsync_v2")-bs.base, bs.started)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// finish lets the streams go on and checks every batch's result.
func (bs *batches) finish(check func(t *testing.T, items []preprocess.Item, got *preprocess.Batch)) {
	bs.fake.Resume()
	for range bs.started {
		o := <-bs.done
		if o.err != nil {
			bs.t.Fatal(o.err)
		}
		check(bs.t, bs.items, o.b)
		o.b.Release()
	}
}

// closeWithin runs closeAll on its own goroutine; the returned wait fails
// t unless it has returned nil within 30 s.
func closeWithin(t *testing.T, closeAll func() error) (closed <-chan error, wait func(what string)) {
	ch := make(chan error, 1)
	go func() { ch <- closeAll() }()
	return ch, func(what string) {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Close %s: %v; want nil", what, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Close %s has not returned in 30 s", what)
		}
	}
}

// TestFakeDriverStartsBatchesWhileOthersRun: a batch handed to the
// device while another is still running is queued on its own stream at
// once, not after the running one completes (the owner goroutine never
// blocks on a batch). The streams are held so that the first batch stays
// in flight until the second has been queued.
func TestFakeDriverStartsBatchesWhileOthersRun(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		process, closeAll := openFake(t, pl)
		defer closeAll()
		bs := holdBatches(t, fake, process, items)
		if bs.start("first batch") {
			bs.start("second batch, while the first is in flight")
		}
		bs.finish(pl.check)
	})
}

// TestFakeDriverCloseWithBatchesInFlight: Close while batches are queued
// on the streams waits for them (their callers get their results), then
// releases everything; it does not free memory the device still uses.
func TestFakeDriverCloseWithBatchesInFlight(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		before := fake.Stats(kernelstest.LiveResources...)
		process, closeAll := openFake(t, pl)
		bs := holdBatches(t, fake, process, items)
		if !bs.start("first batch") || !bs.start("second batch") {
			bs.finish(pl.check)
			closeAll()
			return
		}
		closed, wait := closeWithin(t, closeAll)
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while two batches were still on the streams", err)
		case <-time.After(50 * time.Millisecond):
		}
		bs.finish(pl.check)
		wait("with batches in flight")
		fake.CheckReleased(t, before)
	})
}

// TestFakeDriverOutOfMemoryFailsOnlyThatBatch: a batch whose device
// buffers cannot be allocated fails with ErrOutOfMemory (transient, not
// bad input, not a lost device) and holds no memory afterwards, and the
// next batch runs and is right.
func TestFakeDriverOutOfMemoryFailsOnlyThatBatch(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		before := fake.Stats(kernelstest.LiveResources...)
		process, closeAll := openFake(t, pl)
		held := fake.Stats("live_device_bytes", "live_pinned_bytes")
		// Not a byte of device memory left (the pinned host buffers still
		// come): the first batch's buffers cannot be allocated.
		fake.SetMemory(t, held["live_device_bytes"])
		_, err := process(context.Background(), items)
		if !errors.Is(err, kernels.ErrOutOfMemory) || errors.Is(err, kernels.ErrDeviceLost) || errors.Is(err, preprocess.ErrBadInput) {
			t.Fatalf("batch with a failed allocation: %v; want ErrOutOfMemory only", err)
		}
		// What the failed batch did allocate is given back at once, not
		// kept from the other slots until this one's next batch.
		for k, v := range fake.Stats("live_device_bytes", "live_pinned_bytes") {
			if v != held[k] {
				t.Errorf("%s = %d after the failed batch, %d before it", k, v, held[k])
			}
		}
		fake.SetMemory(t, 8<<30)
		b, err := process(context.Background(), items)
		if err != nil {
			t.Fatalf("batch after the failed allocation, memory free again: %v", err)
		}
		pl.check(t, items, b)
		b.Release()
		if err := closeAll(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		fake.CheckReleased(t, before)
	})
}

// TestFakeDriverReclaimsIdleBuffers: when the device is out of memory
// (another process on the GPU took it), a batch that needs bigger buffers
// gets them from the buffers of the idle slots instead of failing.
func TestFakeDriverReclaimsIdleBuffers(t *testing.T) {
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		items := pl.items(t)
		process, closeAll := openFake(t, pl)
		defer closeAll()
		base := fake.Stat("live_device_bytes")
		b, err := process(context.Background(), items)
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		live := fake.Stat("live_device_bytes")
		slot := live - base // one slot's device buffers
		// The next batch takes the next slot, which needs as much again:
		// only half of that is free.
		fake.SetMemory(t, live+slot/2)
		b, err = process(context.Background(), items)
		if err != nil {
			t.Fatalf("batch on a device with room for half its buffers plus an idle slot's: %v", err)
		}
		pl.check(t, items, b)
		b.Release()
		if got := fake.Stat("live_device_bytes"); got > live+slot/2 {
			t.Errorf("%d device bytes held, over the cap of %d", got, live+slot/2)
		}
	})
}

// TestFakeDriverLostContext: a fault that ends the CUDA context (a kernel
// that faults while it runs, a launch the driver refuses as failed, a
// copy that faults, a kernel that runs past the watchdog or fails a
// device-side assert, a GPU that fell off the bus and answers
// CUDA_ERROR_UNKNOWN) fails the batch with ErrDeviceLost, every later
// batch fails the same way without touching the device, and Close returns
// nil and gives back every resource (by destroying the context).
func TestFakeDriverLostContext(t *testing.T) {
	faults := []struct {
		call  string
		code  int
		async bool
	}{
		{"cuLaunchKernel", kernelstest.CUDAErrorLaunchFailed, true},
		{"cuLaunchKernel", kernelstest.CUDAErrorIllegalAddress, false},
		{"cuMemcpyHtoDAsync_v2", kernelstest.CUDAErrorIllegalAddress, true},
		{"cuLaunchKernel", kernelstest.CUDAErrorLaunchTimeout, true},
		{"cuLaunchKernel", kernelstest.CUDAErrorAssert, true},
		{"cuLaunchKernel", kernelstest.CUDAErrorUnknown, true},
		{"cuLaunchKernel", kernelstest.CUDAErrorUnknown, false},
	}
	onFakeDriver(t, func(t *testing.T, fake *kernelstest.FakeDriver, pl gpuPipeline) {
		for _, f := range faults {
			t.Run(fmt.Sprintf("%s/%d/async=%v", f.call, f.code, f.async), func(t *testing.T) {
				items := pl.items(t)
				before := fake.Stats(kernelstest.LiveResources...)
				process, closeAll := openFake(t, pl)
				fake.Fail(t, f.call, 1, f.code, f.async)
				_, err := process(context.Background(), items)
				if !errors.Is(err, kernels.ErrDeviceLost) || errors.Is(err, preprocess.ErrBadInput) {
					t.Fatalf("batch that met the fault: %v; want ErrDeviceLost", err)
				}
				launches := fake.Stat("cuLaunchKernel")
				if _, err := process(context.Background(), items); !errors.Is(err, kernels.ErrDeviceLost) {
					t.Errorf("batch after the loss: %v; want ErrDeviceLost", err)
				}
				if n := fake.Stat("cuLaunchKernel") - launches; n != 0 {
					t.Errorf("%d kernels launched on the lost context", n)
				}
				// The loss was reported by the batch; Close has nothing to add.
				_, wait := closeWithin(t, closeAll)
				wait("after the loss")
				fake.CheckReleased(t, before)
			})
		}
	})
}
