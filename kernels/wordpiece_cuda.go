//go:build cuda

package kernels

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"gorgonia.org/cu"
)

//go:embed wordpiece.ptx
var wordpiecePTX string

// WordPiece is one BERT tokenizer loaded on a Device: its tables live in
// device memory (uploaded once by LoadWordPiece), and it keeps Slots
// batches in flight, each with its own stream, events, pinned host
// buffers and device buffers, allocated by the first batch and grown only
// for a bigger one. Every driver call runs on the Device's owner
// goroutine (Device.call), so the one-thread-owns-the-context rule holds.
// A WordPiece is safe for concurrent use.
type WordPiece struct {
	d      *Device
	tables *WordPieceTables

	// Set on the owner goroutine by LoadWordPiece, freed by Close.
	module   cu.Module
	tokenize cu.Function
	assemble cu.Function
	blob     cu.DevicePtr
	all      []*textSlot

	slots     chan *textSlot
	closeOnce sync.Once
	closing   chan struct{}
	closeErr  error
}

// textSlot is one batch's worth of resources of a WordPiece. The owner
// goroutine runs its batches as it runs image batches (see flight).
type textSlot struct {
	flight
	w       *WordPiece
	hostIn  unsafe.Pointer
	hostOut unsafe.Pointer
	devIn   cu.DevicePtr
	devTmp  cu.DevicePtr // per-span ids and counts
	devOut  cu.DevicePtr
	inCap   int
	tmpCap  int
	outCap  int // also the size of hostOut, which holds the output then the counts

	tokArgs [7]uint64
	tokPar  [7]unsafe.Pointer
	asmArgs [12]uint64
	asmPar  [12]unsafe.Pointer

	// The batch being run.
	job      *TextJob
	packing  textPacking
	outBytes int // int32 ids and the row lengths; the span counts follow
}

// LoadWordPiece uploads t to the device and prepares `slots` batches in
// flight (0 means 3). It loads the embedded wordpiece.ptx (JIT-compiled by
// the driver) on the Device's owner goroutine. Close the WordPiece before
// the Device.
func (d *Device) LoadWordPiece(ctx context.Context, t *WordPieceTables, slots int) (*WordPiece, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if slots == 0 {
		slots = 3
	}
	if slots < 0 {
		return nil, fmt.Errorf("kernels: LoadWordPiece: %d slots, want 0 (default) or more", slots)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	blob := t.pack()
	w := &WordPiece{d: d, tables: t, slots: make(chan *textSlot, slots), closing: make(chan struct{})}
	err := d.call(func() error {
		var err error
		if w.module, err = cu.LoadData(wordpiecePTX); err != nil {
			return fmt.Errorf("kernels: load wordpiece.ptx on %s (the driver JIT-compiles it; it needs a driver for CUDA 11.8 or later): %w", d.name, err)
		}
		if w.tokenize, err = w.module.Function("wp_tokenize"); err != nil {
			return fmt.Errorf("kernels: find wp_tokenize in the loaded module: %w", err)
		}
		if w.assemble, err = w.module.Function("wp_assemble"); err != nil {
			return fmt.Errorf("kernels: find wp_assemble in the loaded module: %w", err)
		}
		if w.blob, err = cu.MemAlloc(int64(len(blob))); err != nil {
			return fmt.Errorf("kernels: allocate %s of device memory for the wordpiece tables: %w", byteSize(len(blob)), err)
		}
		if err = cu.MemcpyHtoD(w.blob, unsafe.Pointer(&blob[0]), int64(len(blob))); err != nil {
			return fmt.Errorf("kernels: upload %s of wordpiece tables: %w", byteSize(len(blob)), err)
		}
		// A synchronous copy from pageable memory may return before its
		// DMA to the device is done (it only waits for the blob to be
		// staged), and the slots' streams are non-blocking, so nothing
		// else orders the first wp_tokenize after the upload.
		if err = cu.Synchronize(); err != nil {
			return fmt.Errorf("kernels: wait for the upload of %s of wordpiece tables to reach the device: %w", byteSize(len(blob)), err)
		}
		for i := 0; i < slots; i++ {
			s := &textSlot{w: w}
			w.all = append(w.all, s)
			if err := s.create(fmt.Sprintf("wordpiece stream %d", i), "documents"); err != nil {
				return err
			}
			for k := range s.tokPar {
				s.tokPar[k] = unsafe.Pointer(&s.tokArgs[k])
			}
			for k := range s.asmPar {
				s.asmPar[k] = unsafe.Pointer(&s.asmArgs[k])
			}
		}
		return nil
	})
	if err != nil {
		if rerr := d.call(w.release); rerr != nil && !errors.Is(rerr, ErrClosed) {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	for _, s := range w.all {
		w.slots <- s
	}
	return w, nil
}

// Tables returns the tables the WordPiece was loaded with.
func (w *WordPiece) Tables() *WordPieceTables { return w.tables }

// Close waits for the batches in flight and frees the WordPiece's device
// and pinned memory, streams, events and module. After Device.Close, or
// once the device is lost, there is nothing to free here (destroying the
// context releases it all) and Close returns nil. Close is idempotent;
// Tokenize after Close returns ErrClosed.
func (w *WordPiece) Close() error {
	w.closeOnce.Do(func() {
		close(w.closing)
		for range w.all {
			<-w.slots
		}
		err := w.d.call(w.release)
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrDeviceLost) {
			err = nil
		}
		w.closeErr = err
	})
	return w.closeErr
}

// release frees everything LoadWordPiece and grow created; owner thread.
func (w *WordPiece) release() error {
	var errs []error
	for _, s := range w.all {
		errs = append(errs, freeTextSlot(s), s.destroy())
	}
	w.all = nil
	if w.blob != 0 {
		errs = append(errs, cu.MemFree(w.blob))
		w.blob = 0
	}
	if w.module != (cu.Module{}) {
		errs = append(errs, w.module.Unload())
		w.module = cu.Module{}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kernels: release the wordpiece resources: %w", err)
	}
	return nil
}

func freeTextSlot(s *textSlot) error {
	var errs []error
	for _, p := range []*cu.DevicePtr{&s.devIn, &s.devTmp, &s.devOut} {
		if *p != 0 {
			errs = append(errs, cu.MemFree(*p))
			*p = 0
		}
	}
	errs = append(errs, freePinned(s.hostIn), freePinned(s.hostOut))
	s.hostIn, s.hostOut = nil, nil
	s.inCap, s.tmpCap, s.outCap = 0, 0, 0
	return errors.Join(errs...)
}

// grow reallocates a slot's buffers to hold in, tmp and out bytes, with an
// eighth of headroom; owner thread.
func (s *textSlot) grow(in, tmp, out int) (err error) {
	if s.inCap >= in && s.tmpCap >= tmp && s.outCap >= out {
		return nil
	}
	in, tmp, out = max(in+in/8, s.inCap), max(tmp+tmp/8, s.tmpCap), max(out+out/8, s.outCap)
	if err := freeTextSlot(s); err != nil {
		return fmt.Errorf("kernels: free the buffers of %s before growing them: %w", s.name, err)
	}
	defer keepNothingOnError(&err, func() error { return freeTextSlot(s) })
	if s.hostIn, err = allocPinned(in); err != nil {
		return fmt.Errorf("kernels: allocate %s of pinned host memory for text input: %w", byteSize(in), err)
	}
	if s.hostOut, err = allocPinned(out); err != nil {
		return fmt.Errorf("kernels: allocate %s of pinned host memory for token output: %w", byteSize(out), err)
	}
	if s.devIn, err = cu.MemAlloc(int64(in)); err != nil {
		return fmt.Errorf("kernels: allocate %s of device memory for text input: %w", byteSize(in), err)
	}
	if s.devTmp, err = cu.MemAlloc(int64(tmp)); err != nil {
		return fmt.Errorf("kernels: allocate %s of device memory for span token ids: %w", byteSize(tmp), err)
	}
	if s.devOut, err = cu.MemAlloc(int64(out)); err != nil {
		return fmt.Errorf("kernels: allocate %s of device memory for token output: %w", byteSize(out), err)
	}
	s.inCap, s.tmpCap, s.outCap = in, tmp, out
	return nil
}

// Tokenize runs both WordPiece kernels on the batch j and fills its
// results: it packs the documents into a free slot's pinned buffer on the
// calling goroutine, then the owner goroutine queues the upload,
// wp_tokenize, wp_assemble and the download on the slot's stream, as it
// does image batches (see flight), and answers when they are done. Up to
// Slots batches run at once, so one batch's upload overlaps another's
// kernels. Errors wrap ErrOutOfMemory, ErrDeviceLost or ErrClosed as
// ResizeCropNormalize's do.
func (w *WordPiece) Tokenize(ctx context.Context, j *TextJob) error {
	if err := j.validate(w.tables); err != nil {
		return err
	}
	if len(j.Docs) == 0 {
		j.finish(w.tables, nil, nil)
		return nil
	}
	var s *textSlot
	select {
	case s = <-w.slots:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.closing:
		return ErrClosed
	}
	defer func() { w.slots <- s }()

	p := j.packing()
	outBytes := j.outputBytes()
	countsBytes := 4 * p.Spans
	// A batch of rows made only of added tokens has no span; cuMemAlloc
	// refuses 0 bytes.
	tmpBytes := max(p.scratchBytes(), 64)
	if s.inCap < p.Size || s.tmpCap < tmpBytes || s.outCap < outBytes+countsBytes {
		grow := func() error { return s.grow(p.Size, tmpBytes, outBytes+countsBytes) }
		if err := w.d.call(func() error { return growReclaiming(grow, w.slots, freeTextSlot) }); err != nil {
			return err
		}
	}
	j.pack(unsafe.Slice((*byte)(s.hostIn), p.Size), p)
	s.job, s.packing, s.outBytes = j, p, outBytes
	s.items = len(j.Docs)
	defer func() { s.job = nil }()
	if err := w.d.submit(s); err != nil {
		return err
	}
	timing := s.timing
	timing.InputBytes, timing.OutputBytes = int64(p.Size), int64(outBytes+countsBytes)
	timing.KernelReadBytes, timing.KernelWriteBytes = int64(p.Size), int64(outBytes+tmpBytes)
	host := unsafe.Slice((*byte)(s.hostOut), outBytes+countsBytes)
	j.finish(w.tables, host[:outBytes], host[outBytes:])
	if j.Timing != nil {
		*j.Timing = timing
	}
	return nil
}

// enqueue queues the upload, both kernels and the download of the slot's
// text batch; owner thread.
func (s *textSlot) enqueue() error {
	j, p, w := s.job, s.packing, s.w
	rows := len(j.Docs)
	if err := cu.MemcpyHtoDAsync(s.devIn, s.hostIn, int64(p.Size), s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of text (%d documents) to the device: %w", p.Size, rows, err)
	}
	if err := s.record(1); err != nil {
		return err
	}
	tokBlocks, asmBlocks := textGeometry(j, p)
	in, tmp, out := uint64(s.devIn), uint64(s.devTmp), uint64(s.devOut)
	counts := tmp + uint64(4*p.Spans*p.Cap)
	if p.Spans > 0 {
		s.tokArgs = [7]uint64{uint64(w.blob), in, uint64(p.SpansOffset), uint64(p.Spans), uint64(p.Cap), tmp, counts}
		if err := w.tokenize.Launch(tokBlocks, 1, 1, TokenizeBlock, 1, 1, 0, s.stream, s.tokPar[:]); err != nil {
			return fmt.Errorf("kernels: launch wp_tokenize (%d blocks, %d spans): %w", tokBlocks, p.Spans, err)
		}
	}
	s.asmArgs = [12]uint64{uint64(w.blob), in, uint64(p.RowsOffset), uint64(p.PiecesOffset), uint64(rows),
		uint64(j.Width), uint64(j.Room), tmp, counts, uint64(p.Cap), out, out + uint64(j.lengthsOffset())}
	if err := w.assemble.Launch(asmBlocks, 1, 1, AssembleBlock, 1, 1, 0, s.stream, s.asmPar[:]); err != nil {
		return fmt.Errorf("kernels: launch wp_assemble (%d blocks, %d rows of %d): %w", asmBlocks, rows, j.Width, err)
	}
	if err := s.record(2); err != nil {
		return err
	}
	if err := cu.MemcpyDtoHAsync(s.hostOut, s.devOut, int64(s.outBytes), s.stream); err != nil {
		return fmt.Errorf("kernels: copy %d bytes of token output from the device: %w", s.outBytes, err)
	}
	if countsBytes := 4 * p.Spans; countsBytes > 0 {
		if err := cu.MemcpyDtoHAsync(unsafe.Add(s.hostOut, s.outBytes), cu.DevicePtr(counts), int64(countsBytes), s.stream); err != nil {
			return fmt.Errorf("kernels: copy %d bytes of span counts from the device: %w", countsBytes, err)
		}
	}
	return nil
}
