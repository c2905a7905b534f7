package image

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/stoker-ml/stoker/preprocess"
)

// TensorName is the name of the Processor's output tensor.
const TensorName = "pixel_values"

// PipelineName is the Batch.Pipeline the Processor writes.
const PipelineName = "image"

// Processor turns image files into the tensor torchvision's ImageNet eval
// transform produces. It implements preprocess.Processor and is safe for
// concurrent use.
type Processor struct {
	spec    Spec
	threads int
	budget  *preprocess.Budget // from spec.DecodeMemory, shared by the workers' decoders
	out     *outputTable
	workers sync.Pool // *worker
	// tensors is the memory of released batches' tensors, reused: every
	// byte of a kept row is written.
	tensors preprocess.Buffers
}

// worker is the state one goroutine reuses from item to item.
type worker struct {
	dec decoder
	tr  transformScratch
	// Time spent in each step since the worker was taken for a batch.
	decoding, transforming time.Duration
}

var _ preprocess.Processor = (*Processor)(nil)

// NewProcessor validates spec and returns a Processor that processes the
// items of a batch on `threads` goroutines (0 means runtime.GOMAXPROCS(0)).
func NewProcessor(spec Spec, threads int) (*Processor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if threads < 0 {
		return nil, fmt.Errorf("image: threads is %d, want 0 (GOMAXPROCS) or more", threads)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Processor{spec: spec, threads: threads, out: newOutputTable(spec), budget: preprocess.NewBudget(spec.DecodeMemory)}
	p.workers.New = func() any {
		w := new(worker)
		w.dec.budget = p.budget
		return w
	}
	return p, nil
}

// Spec returns the processor's spec.
func (p *Processor) Spec() Spec { return p.spec }

// RowBytes is the size in bytes of one output row (one image).
func (p *Processor) RowBytes() int { return rowBytes(p.spec) }

// Shape is the shape of the output tensor for a batch of n images.
func (p *Processor) Shape(n int) []int {
	c := p.spec.Crop
	if p.spec.Layout == NHWC {
		return []int{n, c, c, 3}
	}
	return []int{n, 3, c, c}
}

// TransformRGB resizes, crops, normalises and lays out one decoded image
// into dst, one output row of len RowBytes.
func (p *Processor) TransformRGB(dst []byte, img *RGB) error {
	if err := checkRGB(img); err != nil {
		return err
	}
	if len(dst) != p.RowBytes() {
		return fmt.Errorf("image: destination row is %d bytes, want %d", len(dst), p.RowBytes())
	}
	w := p.workers.Get().(*worker)
	defer p.workers.Put(w)
	w.tr.plan(p.spec, img.Width, img.Height)
	w.tr.resample(dst, img.Pix, img.Width*3, p.spec, p.out)
	return nil
}

// processOne decodes and transforms one item into dst. It returns the
// decoded size.
func (p *Processor) processOne(w *worker, dst []byte, data []byte) (width, height int, err error) {
	region := func(iw, ih int) (x0, y0, x1, y1 int) {
		w.tr.plan(p.spec, iw, ih)
		return w.tr.colFirst, w.tr.rowFirst, w.tr.colLast, w.tr.rowLast
	}
	start := time.Now()
	img, err := w.dec.decodeRegion(data, p.spec, region)
	defer w.dec.release()
	decoded := time.Now()
	w.decoding += decoded.Sub(start)
	if err != nil {
		return 0, 0, err
	}
	w.tr.plan(p.spec, img.Width, img.Height)
	w.tr.resample(dst, img.Pix, img.Width*3, p.spec, p.out)
	w.transforming += time.Since(decoded)
	return img.Width, img.Height, nil
}

// Process decodes and transforms items in parallel. Bad items are reported
// in Batch.Failed (their errors wrap preprocess.ErrBadInput) and the others
// form the tensor "pixel_values" in input order, with RowFacts
// "original_size" holding [2]int{height, width} per row, and Timings
// splitting the batch's wall time between decode and transform. The only
// error returned is the context's.
func (p *Processor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	began := time.Now()
	var mu sync.Mutex
	var decoding, transforming time.Duration
	rb := p.RowBytes()
	data := p.tensors.Get(len(items) * rb)
	sizes := make([][2]int, len(items))
	errs := make([]error, len(items))

	next := make(chan int)
	var wg sync.WaitGroup
	n := min(p.threads, len(items))
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := p.workers.Get().(*worker)
			defer p.workers.Put(w)
			w.decoding, w.transforming = 0, 0
			for i := range next {
				width, height, err := p.processOne(w, data[i*rb:(i+1)*rb], items[i].Data)
				errs[i] = err
				sizes[i] = [2]int{height, width}
			}
			mu.Lock()
			decoding += w.decoding
			transforming += w.transforming
			mu.Unlock()
		}()
	}
	ctxErr := preprocess.Feed(ctx, len(items), next)
	wg.Wait()
	if ctxErr != nil {
		p.tensors.Put(data)
		return nil, fmt.Errorf("image: batch of %d items abandoned: %w", len(items), ctxErr)
	}

	b := &preprocess.Batch{Pipeline: PipelineName, RowFacts: map[string][]any{}}
	b.OnRelease(func() { p.tensors.Put(data) })
	facts := make([]any, 0, len(items))
	row := 0
	for i, it := range items {
		if errs[i] != nil {
			b.Failed = append(b.Failed, preprocess.ItemError{Index: i, ID: it.ID, Err: errs[i]})
			continue
		}
		if row != i {
			copy(data[row*rb:(row+1)*rb], data[i*rb:(i+1)*rb])
		}
		b.IDs = append(b.IDs, it.ID)
		facts = append(facts, sizes[i])
		row++
	}
	b.Tensors = []preprocess.Tensor{{Name: TensorName, DType: p.spec.DType, Shape: p.Shape(row), Data: data[:row*rb]}}
	b.RowFacts["original_size"] = facts
	b.Timings = preprocess.ShareWallTime(time.Since(began), map[string]time.Duration{
		preprocess.StageDecode: decoding, preprocess.StageTransform: transforming,
	})
	return b, nil
}
