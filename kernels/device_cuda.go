//go:build cuda

package kernels

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"
	"unsafe"

	// Initialised before gorgonia.org/cu (see its doc): checks the driver
	// and the device and exits with a clear message when CUDA cannot work.
	_ "github.com/stoker-ml/stoker/kernels/cudaguard"
	"gorgonia.org/cu"
)

//go:embed resize_crop_normalize.ptx
var resizeCropNormalizePTX string

// Built reports whether this binary was built with CUDA support.
const Built = true

// Device is one GPU. One goroutine, locked to its OS thread, owns the CUDA
// context, the module, the streams and every buffer, and makes every driver
// call; the methods send it requests. A Device is safe for concurrent use:
// up to Options.Slots batches are in flight at once, the rest wait.
type Device struct {
	ordinal     int
	name        string
	packWorkers int

	reqs  chan request  // to the owner goroutine; unbuffered
	slots chan *slot    // free slots
	quit  chan struct{} // closed by Close
	done  chan struct{} // closed when the owner goroutine has exited

	closeOnce sync.Once
	closeErr  error // set by the owner before done is closed
}

// slot is one batch's worth of resources. A caller holds a slot from
// taking it off Device.slots until it puts it back; the owner goroutine
// touches it only while a request for it is being served.
type slot struct {
	index   int
	stream  cu.Stream
	events  [4]cu.Event // before upload, after upload, after kernel, after download
	hostIn  unsafe.Pointer
	hostOut unsafe.Pointer
	devIn   cu.DevicePtr
	devOut  cu.DevicePtr
	inCap   int
	outCap  int

	// The batch being run.
	job     *Job
	packing Packing
	args    [15]uint64
	params  [15]unsafe.Pointer
	timing  Timing
	result  chan error // buffered 1: the outcome of the run request
}

// request is work for the owner goroutine: either fn (run on the owner
// thread, answered on reply) or a batch to start on run.
type request struct {
	fn    func() error
	run   *slot
	reply chan error
}

// owner is the state only the owner goroutine touches.
type owner struct {
	dev    cu.Device
	ctx    cu.CUContext
	module cu.Module
	kernel cu.Function
	slots  []*slot
	lost   error // set once the context is unusable
}

// Available reports whether a usable CUDA device exists: nil if the
// driver initialises and counts at least one device.
func Available() error {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("kernels: count CUDA devices: %w", err)
	}
	if n == 0 {
		return errors.New("kernels: no CUDA device")
	}
	return nil
}

// Open starts the owner goroutine of GPU `ordinal`: it creates a context,
// loads the embedded PTX (JIT-compiled by the driver for this GPU) and
// creates the streams and events. Buffers are allocated by the first batch
// and grown only when a later batch is bigger. If ctx ends before the
// device is ready, Open releases what was created and returns ctx's error.
func Open(ctx context.Context, ordinal int, opts ...Options) (*Device, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Slots == 0 {
		o.Slots = 3
	}
	if o.PackWorkers == 0 {
		o.PackWorkers = runtime.GOMAXPROCS(0)
	}
	if o.Slots < 1 || o.PackWorkers < 1 {
		return nil, fmt.Errorf("kernels: Options %+v: Slots and PackWorkers must be positive", o)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Device{
		ordinal:     ordinal,
		packWorkers: o.PackWorkers,
		reqs:        make(chan request),
		slots:       make(chan *slot, o.Slots),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	ready := make(chan error, 1)
	go d.own(o.Slots, ready)
	select {
	case err := <-ready:
		if err != nil {
			<-d.done
			return nil, err
		}
		return d, nil
	case <-ctx.Done():
		d.Close()
		return nil, ctx.Err()
	}
}

// Name is the GPU's name as the driver reports it, with its ordinal.
func (d *Device) Name() string { return d.name }

// Close finishes the batches in flight, releases every buffer, stream,
// event, the module and the context, and stops the owner goroutine.
// Calls after Close return ErrClosed. Close is idempotent.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.quit) })
	<-d.done
	return d.closeErr
}

// ResizeCropNormalize runs resize_crop_normalize on the batch j: it packs
// the pixels, descriptors and plans into the pinned buffer of a free slot
// (on the calling goroutine, with PackWorkers goroutines), uploads them
// on the slot's stream, launches the kernel once for the whole batch,
// downloads the tensor and copies it into j.Dst. It returns when j.Dst is
// written. ctx bounds the wait for a free slot; once the batch is queued
// on the GPU the call waits for it (a batch takes milliseconds). Errors wrap ErrOutOfMemory (retry later or with a smaller
// batch), ErrDeviceLost (the Device is unusable; close it) or ErrClosed.
func (d *Device) ResizeCropNormalize(ctx context.Context, j *Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	if len(j.Images) == 0 {
		return nil
	}
	var s *slot
	select {
	case s = <-d.slots:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.quit:
		return ErrClosed
	}
	// Closing waits for every slot to come back before it frees the
	// buffers, so s's memory stays valid until this deferred return.
	defer func() { d.slots <- s }()
	select {
	case <-d.quit:
		return ErrClosed
	default:
	}

	p := j.Packing()
	out := j.OutputBytes()
	if s.inCap < p.Size || s.outCap < out {
		if err := d.call(func() error { return d.grow(s, p.Size, out) }); err != nil {
			return err
		}
	}
	j.Pack(unsafe.Slice((*byte)(s.hostIn), p.Size), d.packWorkers)
	s.job, s.packing = j, p
	select {
	case d.reqs <- request{run: s}:
	case <-d.quit:
		return ErrClosed
	}
	// The owner always answers a run it accepted, even when closing, so
	// the slot is never reused while the GPU may still touch it.
	if err := <-s.result; err != nil {
		return err
	}
	copy(j.Dst[:out], unsafe.Slice((*byte)(s.hostOut), out))
	if j.Timing != nil {
		*j.Timing = s.timing
	}
	s.job = nil
	return nil
}

// call runs fn on the owner goroutine and returns its error.
func (d *Device) call(fn func() error) error {
	reply := make(chan error, 1)
	select {
	case d.reqs <- request{fn: fn, reply: reply}:
	case <-d.quit:
		return ErrClosed
	}
	return <-reply
}

// own is the owner goroutine.
func (d *Device) own(nslots int, ready chan<- error) {
	runtime.LockOSThread()
	defer close(d.done)
	o := &owner{}
	if err := d.setup(o, nslots); err != nil {
		d.closeErr = o.teardown()
		ready <- err
		return
	}
	for _, s := range o.slots {
		d.slots <- s
	}
	ready <- nil

	var inflight []*slot
	for {
		if len(inflight) == 0 {
			select {
			case r := <-d.reqs:
				inflight = d.serve(o, r, inflight)
				continue
			case <-d.quit:
			}
		} else {
			select {
			case r := <-d.reqs:
				inflight = d.serve(o, r, inflight)
				continue
			case <-d.quit:
			default:
				// Nothing new to start: wait for the oldest batch.
				d.finish(o, inflight[0])
				inflight = inflight[1:]
				continue
			}
		}
		// Closing: finish what was started, wait until every caller has
		// given its slot back (callers see quit and stop before packing or
		// submitting), then release everything.
		for _, s := range inflight {
			d.finish(o, s)
		}
		for range o.slots {
			<-d.slots
		}
		d.closeErr = o.teardown()
		runtime.UnlockOSThread()
		return
	}
}

func (d *Device) serve(o *owner, r request, inflight []*slot) []*slot {
	if r.fn != nil {
		if o.lost != nil {
			r.reply <- o.lost
			return inflight
		}
		r.reply <- o.check(r.fn())
		return inflight
	}
	s := r.run
	if o.lost != nil {
		s.result <- o.lost
		return inflight
	}
	if err := o.check(d.start(o, s)); err != nil {
		// Work already queued on the stream must end before the slot is
		// reused; a failed synchronize means the context is gone anyway.
		if serr := s.stream.Synchronize(); serr != nil && o.lost == nil {
			o.lost = fmt.Errorf("kernels: synchronize stream %d after a failed start: %w: %w", s.index, ErrDeviceLost, serr)
		}
		s.result <- err
		return inflight
	}
	return append(inflight, s)
}

// setup creates the context, module, kernel, streams and events.
func (d *Device) setup(o *owner, nslots int) error {
	var err error
	if o.dev, err = cu.GetDevice(d.ordinal); err != nil {
		return fmt.Errorf("kernels: get CUDA device %d: %w", d.ordinal, err)
	}
	name, err := o.dev.Name()
	if err != nil {
		return fmt.Errorf("kernels: read the name of CUDA device %d: %w", d.ordinal, err)
	}
	d.name = fmt.Sprintf("%s (CUDA device %d)", name, d.ordinal)
	if o.ctx, err = o.dev.MakeContext(cu.SchedBlockingSync); err != nil {
		return fmt.Errorf("kernels: create a context on %s: %w", d.name, err)
	}
	if o.module, err = cu.LoadData(resizeCropNormalizePTX); err != nil {
		return fmt.Errorf("kernels: load resize_crop_normalize.ptx on %s (the driver JIT-compiles it; it needs a driver for CUDA 11.8 or later): %w", d.name, err)
	}
	if o.kernel, err = o.module.Function("resize_crop_normalize"); err != nil {
		return fmt.Errorf("kernels: find resize_crop_normalize in the loaded module: %w", err)
	}
	for i := 0; i < nslots; i++ {
		s := &slot{index: i, result: make(chan error, 1)}
		o.slots = append(o.slots, s)
		if s.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
			return fmt.Errorf("kernels: create stream %d: %w", i, err)
		}
		for k := range s.events {
			if s.events[k], err = cu.MakeEvent(cu.DefaultEvent); err != nil {
				return fmt.Errorf("kernels: create event %d of stream %d: %w", k, i, err)
			}
		}
		for k := range s.params {
			s.params[k] = unsafe.Pointer(&s.args[k])
		}
	}
	return nil
}

// teardown releases everything setup and grow created, returning the first
// error (every release is attempted). On a lost context every release
// would fail with the error that ended it, so only the context is
// destroyed, which releases what it held (the loss was reported when it
// happened).
func (o *owner) teardown() error {
	if o.lost != nil {
		o.slots, o.module = nil, cu.Module{}
	}
	var errs []error
	keep := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("kernels: %s: %w", what, err))
		}
	}
	for _, s := range o.slots {
		keep(fmt.Sprintf("free buffers of stream %d", s.index), freeSlot(s))
		for k := range s.events {
			if s.events[k] != (cu.Event{}) {
				keep("destroy event", cu.DestroyEvent(&s.events[k]))
			}
		}
		if s.stream != (cu.Stream{}) {
			keep("destroy stream", s.stream.Destroy())
		}
	}
	o.slots = nil
	if o.module != (cu.Module{}) {
		keep("unload module", o.module.Unload())
	}
	if o.ctx != (cu.CUContext{}) {
		keep("destroy context", o.ctx.Destroy())
	}
	return errors.Join(errs...)
}

func freeSlot(s *slot) error {
	var errs []error
	if s.devIn != 0 {
		errs = append(errs, cu.MemFree(s.devIn))
		s.devIn = 0
	}
	if s.devOut != 0 {
		errs = append(errs, cu.MemFree(s.devOut))
		s.devOut = 0
	}
	errs = append(errs, freePinned(s.hostIn), freePinned(s.hostOut))
	s.hostIn, s.hostOut = nil, nil
	s.inCap, s.outCap = 0, 0
	return errors.Join(errs...)
}

// grow reallocates a slot's buffers so that they hold in and out bytes,
// with an eighth of headroom so that slightly bigger batches reuse them.
func (d *Device) grow(s *slot, in, out int) error {
	if s.inCap >= in && s.outCap >= out {
		return nil
	}
	in, out = max(in+in/8, s.inCap), max(out+out/8, s.outCap)
	if err := freeSlot(s); err != nil {
		return fmt.Errorf("kernels: free the buffers of stream %d before growing them: %w", s.index, err)
	}
	var err error
	if s.hostIn, err = allocPinned(in); err != nil {
		return fmt.Errorf("kernels: allocate %d MiB of pinned host memory for batch input: %w", in>>20, err)
	}
	if s.hostOut, err = allocPinned(out); err != nil {
		return fmt.Errorf("kernels: allocate %d MiB of pinned host memory for batch output: %w", out>>20, err)
	}
	if s.devIn, err = cu.MemAlloc(int64(in)); err != nil {
		return fmt.Errorf("kernels: allocate %d MiB of device memory for batch input: %w", in>>20, err)
	}
	if s.devOut, err = cu.MemAlloc(int64(out)); err != nil {
		return fmt.Errorf("kernels: allocate %d MiB of device memory for batch output: %w", out>>20, err)
	}
	s.inCap, s.outCap = in, out
	return nil
}

// start queues upload, kernel and download of s's batch on its stream,
// with events around each step.
func (d *Device) start(o *owner, s *slot) error {
	j, p := s.job, s.packing
	out := int64(j.OutputBytes())
	if err := s.events[0].Record(s.stream); err != nil {
		return fmt.Errorf("kernels: record the start event on stream %d: %w", s.index, err)
	}
	if err := cu.MemcpyHtoDAsync(s.devIn, s.hostIn, int64(p.Size), s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of batch input (%d images) to the device: %w", p.Size, len(j.Images), err)
	}
	if err := s.events[1].Record(s.stream); err != nil {
		return fmt.Errorf("kernels: record the upload event on stream %d: %w", s.index, err)
	}
	in := uint64(s.devIn)
	s.args = [15]uint64{
		in, in + uint64(p.ImagesOffset), in + uint64(p.PlansOffset), uint64(s.devOut),
		uint64(len(j.Images)), uint64(j.OutW), uint64(j.OutH), uint64(j.Layout), uint64(j.DType),
		uint64(math.Float32bits(j.Mean[0])), uint64(math.Float32bits(j.Mean[1])), uint64(math.Float32bits(j.Mean[2])),
		uint64(math.Float32bits(j.Std[0])), uint64(math.Float32bits(j.Std[1])), uint64(math.Float32bits(j.Std[2])),
	}
	grid, block := Geometry(j)
	if err := o.kernel.Launch(grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, s.stream, s.params[:]); err != nil {
		return fmt.Errorf("kernels: launch resize_crop_normalize (grid %v, block %v, %d images, %dx%d %v %v): %w",
			grid, block, len(j.Images), j.OutW, j.OutH, j.Layout, j.DType, err)
	}
	if err := s.events[2].Record(s.stream); err != nil {
		return fmt.Errorf("kernels: record the kernel event on stream %d: %w", s.index, err)
	}
	if err := cu.MemcpyDtoHAsync(s.hostOut, s.devOut, out, s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of batch output from the device: %w", out, err)
	}
	if err := s.events[3].Record(s.stream); err != nil {
		return fmt.Errorf("kernels: record the download event on stream %d: %w", s.index, err)
	}
	return nil
}

// finish waits for s's batch and answers its caller.
func (d *Device) finish(o *owner, s *slot) {
	err := s.events[3].Synchronize()
	if err != nil {
		err = o.check(fmt.Errorf("kernels: wait for batch of %d images on stream %d: %w", len(s.job.Images), s.index, err))
		s.result <- err
		return
	}
	ms := func(a, b int) time.Duration {
		v, err := s.events[a].Elapsed(s.events[b])
		if err != nil {
			return -1
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	read, write := s.job.kernelTraffic(s.packing)
	s.timing = Timing{
		Upload:           ms(0, 1),
		Kernel:           ms(1, 2),
		Download:         ms(2, 3),
		InputBytes:       int64(s.packing.Size),
		OutputBytes:      int64(s.job.OutputBytes()),
		KernelReadBytes:  read,
		KernelWriteBytes: write,
	}
	s.result <- nil
}

// check classifies a driver error: out of memory wraps ErrOutOfMemory;
// errors that leave the context unusable wrap ErrDeviceLost and mark the
// device lost so that every later request fails at once.
func (o *owner) check(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrOutOfMemory), errors.Is(err, ErrDeviceLost), errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, cu.OutOfMemory):
		return fmt.Errorf("%w: %w", ErrOutOfMemory, err)
	case isFatal(err):
		o.lost = fmt.Errorf("%w: %w", ErrDeviceLost, err)
		return o.lost
	}
	return err
}

// isFatal reports the driver errors after which a context cannot be used.
func isFatal(err error) bool {
	for _, r := range []error{cu.IllegalAddress, cu.LaunchFailed, cu.EccUncorrectable,
		cu.HardwareStackError, cu.IllegalInstruction, cu.MisalignedAddress, cu.InvalidAddressSpace,
		cu.InvalidPc, cu.Deinitialized, cu.NotInitialized, cu.ContextIsDestroyed} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}
