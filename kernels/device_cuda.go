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
// call; the methods send it requests. It never blocks on a batch: it queues
// each batch on its slot's stream as soon as it is handed one and polls
// the batches in flight (see own). A Device is safe for concurrent use:
// up to Options.Slots image batches (and each WordPiece's slots of text
// batches) are in flight at once, the rest wait for a slot.
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

// flight is what the owner goroutine needs to run one batch on a stream
// and answer its caller. Image slots and text slots embed one; the owner
// starts batches of either kind as they come and answers each as it
// completes, never blocking on one while another could be queued.
type flight struct {
	name   string // "stream 2", "wordpiece stream 0": for errors
	stream cu.Stream
	events [4]cu.Event // before upload, after upload, after kernels, after download
	result chan error  // buffered 1: the outcome of the run request
	timing Timing      // Upload, Kernel and Download of the last batch
	unit   string      // what a batch holds, for errors: "images", "documents"
	items  int         // how many the batch being run holds
}

// batchRun is a packed batch on its slot, ready for the owner goroutine.
type batchRun interface {
	inFlight() *flight
	// enqueue queues the batch's upload, kernels and download on the
	// flight's stream, recording events 1 and 2 after the upload and
	// after the kernels; owner thread.
	enqueue() error
}

func (f *flight) inFlight() *flight { return f }

// create makes the flight's stream and events; owner thread.
func (f *flight) create(name, unit string) error {
	f.name, f.unit, f.result = name, unit, make(chan error, 1)
	var err error
	if f.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return fmt.Errorf("kernels: create %s: %w", name, err)
	}
	for k := range f.events {
		if f.events[k], err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return fmt.Errorf("kernels: create event %d of %s: %w", k, name, err)
		}
	}
	return nil
}

// destroy releases what create made; owner thread.
func (f *flight) destroy() error {
	var errs []error
	for k := range f.events {
		if f.events[k] != (cu.Event{}) {
			if err := cu.DestroyEvent(&f.events[k]); err != nil {
				errs = append(errs, fmt.Errorf("kernels: destroy event %d of %s: %w", k, f.name, err))
			}
		}
	}
	if f.stream != (cu.Stream{}) {
		if err := f.stream.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("kernels: destroy %s: %w", f.name, err))
		}
		f.stream = cu.Stream{}
	}
	return errors.Join(errs...)
}

// record records event k on the flight's stream; owner thread.
func (f *flight) record(k int) error {
	if err := f.events[k].Record(f.stream); err != nil {
		return fmt.Errorf("kernels: record event %d on %s: %w", k, f.name, err)
	}
	return nil
}

// slot is one image batch's worth of resources. A caller holds a slot
// from taking it off Device.slots until it puts it back; the owner
// goroutine touches it only while a request for it is being served.
type slot struct {
	flight
	hostIn  unsafe.Pointer
	hostOut unsafe.Pointer
	devIn   cu.DevicePtr
	devOut  cu.DevicePtr
	inCap   int
	outCap  int

	kernel cu.Function

	// The batch being run.
	job     *Job
	packing Packing
	args    [15]uint64
	params  [15]unsafe.Pointer
}

// request is work for the owner goroutine: either fn (run on the owner
// thread, answered on reply) or a batch to start.
type request struct {
	fn    func() error
	run   batchRun
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
		grow := func() error { return d.grow(s, p.Size, out) }
		if err := d.call(func() error { return growReclaiming(grow, d.slots, freeSlot) }); err != nil {
			return err
		}
	}
	j.Pack(unsafe.Slice((*byte)(s.hostIn), p.Size), d.packWorkers)
	s.job, s.packing = j, p
	s.items = len(j.Images)
	defer func() { s.job = nil }()
	if err := d.submit(s); err != nil {
		return err
	}
	copy(j.Dst[:out], unsafe.Slice((*byte)(s.hostOut), out))
	if j.Timing != nil {
		t := s.timing
		t.InputBytes, t.OutputBytes = int64(p.Size), int64(out)
		t.KernelReadBytes, t.KernelWriteBytes = j.kernelTraffic(p)
		*j.Timing = t
	}
	return nil
}

// submit hands a packed batch to the owner goroutine and waits until it
// has run. The owner always answers a batch it accepted, even when
// closing, so the slot is never reused while the GPU may still touch it.
func (d *Device) submit(r batchRun) error {
	select {
	case d.reqs <- request{run: r}:
	case <-d.quit:
		return ErrClosed
	}
	return <-r.inFlight().result
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

	// The owner never blocks on a batch: it starts every batch it is
	// handed at once (the upload of one overlaps the kernels and download
	// of those before it, on their own streams) and polls the batches in
	// flight, answering each caller as its batch completes, in whatever
	// order they complete. The poll interval starts at pollMin after any
	// progress and doubles to pollMax while nothing completes.
	var inflight []*flight
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	wait := pollMin
	for {
		if len(inflight) == 0 {
			select {
			case r := <-d.reqs:
				inflight = d.serve(o, r, inflight)
				wait = pollMin
				continue
			case <-d.quit:
			}
		} else {
			if n := len(inflight); d.reap(o, &inflight) < n {
				wait = pollMin
				continue
			}
			poll.Reset(wait)
			select {
			case r := <-d.reqs:
				poll.Stop()
				inflight = d.serve(o, r, inflight)
				wait = pollMin
				continue
			case <-poll.C:
				wait = min(2*wait, pollMax)
				continue
			case <-d.quit:
				poll.Stop()
			}
		}
		// Closing: finish what was started, wait until every caller has
		// given its slot back (callers see quit and stop before packing or
		// submitting), then release everything.
		for _, f := range inflight {
			d.finish(o, f)
		}
		for range o.slots {
			<-d.slots
		}
		d.closeErr = o.teardown()
		runtime.UnlockOSThread()
		return
	}
}

// How often the owner asks the driver whether a batch in flight is done:
// pollMin right after progress, doubling to pollMax. A batch answered up
// to pollMax late costs its caller that much latency, not the GPU any
// work: the batches queued behind it keep the streams busy.
const (
	pollMin = 20 * time.Microsecond
	pollMax = 250 * time.Microsecond
)

// reap finishes every batch in flight whose last event has completed (or
// whose query failed: finish reports it) and keeps the others; it returns
// how many are left.
func (d *Device) reap(o *owner, inflight *[]*flight) int {
	keep := (*inflight)[:0]
	for _, f := range *inflight {
		if err := f.events[3].Query(); errors.Is(err, cu.NotReady) {
			keep = append(keep, f)
			continue
		}
		d.finish(o, f)
	}
	clear((*inflight)[len(keep):])
	*inflight = keep
	return len(keep)
}

func (d *Device) serve(o *owner, r request, inflight []*flight) []*flight {
	if r.fn != nil {
		if o.lost != nil {
			r.reply <- o.lost
			return inflight
		}
		r.reply <- o.check(r.fn())
		return inflight
	}
	f := r.run.inFlight()
	if o.lost != nil {
		f.result <- o.lost
		return inflight
	}
	if err := o.check(start(r.run)); err != nil {
		// Work already queued on the stream must end before the slot is
		// reused; a failed synchronize means the context is gone anyway.
		if serr := f.stream.Synchronize(); serr != nil && o.lost == nil {
			o.lost = fmt.Errorf("kernels: synchronize %s after a failed start: %w: %w", f.name, ErrDeviceLost, serr)
		}
		f.result <- err
		return inflight
	}
	return append(inflight, f)
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
		s := &slot{kernel: o.kernel}
		o.slots = append(o.slots, s)
		if err := s.create(fmt.Sprintf("stream %d", i), "images"); err != nil {
			return err
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
		keep("free buffers of "+s.name, freeSlot(s))
		if err := s.destroy(); err != nil {
			errs = append(errs, err)
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
func (d *Device) grow(s *slot, in, out int) (err error) {
	if s.inCap >= in && s.outCap >= out {
		return nil
	}
	in, out = max(in+in/8, s.inCap), max(out+out/8, s.outCap)
	if err := freeSlot(s); err != nil {
		return fmt.Errorf("kernels: free the buffers of %s before growing them: %w", s.name, err)
	}
	defer keepNothingOnError(&err, func() error { return freeSlot(s) })
	if s.hostIn, err = allocPinned(in); err != nil {
		return fmt.Errorf("kernels: allocate %s of pinned host memory for batch input: %w", byteSize(in), err)
	}
	if s.hostOut, err = allocPinned(out); err != nil {
		return fmt.Errorf("kernels: allocate %s of pinned host memory for batch output: %w", byteSize(out), err)
	}
	if s.devIn, err = cu.MemAlloc(int64(in)); err != nil {
		return fmt.Errorf("kernels: allocate %s of device memory for batch input: %w", byteSize(in), err)
	}
	if s.devOut, err = cu.MemAlloc(int64(out)); err != nil {
		return fmt.Errorf("kernels: allocate %s of device memory for batch output: %w", byteSize(out), err)
	}
	s.inCap, s.outCap = in, out
	return nil
}

// growReclaiming runs grow; when the device or the host is out of pinned
// or device memory, it frees the buffers of the slots in idle (those no
// caller holds: their next batch allocates them again) and runs grow once
// more. A GPU shared with a trainer gets its memory back from stoker's
// idle buffers before a batch fails. Owner thread.
func growReclaiming[S any](grow func() error, idle chan S, free func(S) error) error {
	err := grow()
	if err == nil || !errors.Is(err, cu.OutOfMemory) {
		return err
	}
	var held []S
drain:
	for {
		select {
		case s := <-idle:
			held = append(held, s)
		default:
			break drain
		}
	}
	var ferr []error
	for _, s := range held {
		ferr = append(ferr, free(s))
		idle <- s
	}
	if len(held) == 0 {
		return err
	}
	if e := errors.Join(ferr...); e != nil {
		return errors.Join(err, e)
	}
	return grow()
}

// keepNothingOnError releases a slot's buffers when a grow failed part
// way: what it did allocate would otherwise stay stranded, out of reach
// of the other slots, until the slot's next batch.
func keepNothingOnError(err *error, free func() error) {
	if *err != nil {
		if ferr := free(); ferr != nil {
			*err = errors.Join(*err, ferr)
		}
	}
}

// start queues a batch on its stream between the flight's events.
func start(r batchRun) error {
	f := r.inFlight()
	if err := f.record(0); err != nil {
		return err
	}
	if err := r.enqueue(); err != nil {
		return err
	}
	return f.record(3)
}

// enqueue queues upload, kernel and download of the slot's image batch.
func (s *slot) enqueue() error {
	j, p := s.job, s.packing
	out := int64(j.OutputBytes())
	if err := cu.MemcpyHtoDAsync(s.devIn, s.hostIn, int64(p.Size), s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of batch input (%d images) to the device: %w", p.Size, len(j.Images), err)
	}
	if err := s.record(1); err != nil {
		return err
	}
	in := uint64(s.devIn)
	s.args = [15]uint64{
		in, in + uint64(p.ImagesOffset), in + uint64(p.PlansOffset), uint64(s.devOut),
		uint64(len(j.Images)), uint64(j.OutW), uint64(j.OutH), uint64(j.Layout), uint64(j.DType),
		uint64(math.Float32bits(j.Mean[0])), uint64(math.Float32bits(j.Mean[1])), uint64(math.Float32bits(j.Mean[2])),
		uint64(math.Float32bits(j.Std[0])), uint64(math.Float32bits(j.Std[1])), uint64(math.Float32bits(j.Std[2])),
	}
	grid, block := Geometry(j)
	if err := s.kernel.Launch(grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, s.stream, s.params[:]); err != nil {
		return fmt.Errorf("kernels: launch resize_crop_normalize (grid %v, block %v, %d images, %dx%d %v %v): %w",
			grid, block, len(j.Images), j.OutW, j.OutH, j.Layout, j.DType, err)
	}
	if err := s.record(2); err != nil {
		return err
	}
	if err := cu.MemcpyDtoHAsync(s.hostOut, s.devOut, out, s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of batch output from the device: %w", out, err)
	}
	return nil
}

// finish waits for a started batch, reads its times and answers its
// caller.
func (d *Device) finish(o *owner, f *flight) {
	if err := f.events[3].Synchronize(); err != nil {
		f.result <- o.check(fmt.Errorf("kernels: wait for the batch of %d %s on %s: %w", f.items, f.unit, f.name, err))
		return
	}
	ms := func(a, b int) time.Duration {
		v, err := f.events[a].Elapsed(f.events[b])
		if err != nil {
			return -1
		}
		return time.Duration(v * float64(time.Millisecond))
	}
	f.timing = Timing{Upload: ms(0, 1), Kernel: ms(1, 2), Download: ms(2, 3)}
	f.result <- nil
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

// isFatal reports the driver errors after which a context cannot be used:
// the kernel faults and ECC errors that end it, a kernel stopped by the
// watchdog (LaunchTimeout) or by a device-side assert (Assert), and
// Unknown, what the driver returns once the GPU has fallen off the bus.
func isFatal(err error) bool {
	for _, r := range []error{cu.IllegalAddress, cu.LaunchFailed, cu.EccUncorrectable,
		cu.HardwareStackError, cu.IllegalInstruction, cu.MisalignedAddress, cu.InvalidAddressSpace,
		cu.InvalidPc, cu.LaunchTimeout, cu.Assert, cu.Unknown,
		cu.Deinitialized, cu.NotInitialized, cu.ContextIsDestroyed} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}
