package gpu

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// runner runs one kernel job; *kernels.Device is the real one, tests use
// the CPU emulation.
type runner interface {
	ResizeCropNormalize(ctx context.Context, j *kernels.Job) error
}

// Processor is the GPU-backed image Processor. It is safe for concurrent
// use: concurrent Process calls decode on the CPU while earlier batches
// are on the GPU (the Device keeps several batches in flight).
type Processor struct {
	spec    image.Spec
	threads int
	run     runner
	plans   planCache
	tensors preprocess.Buffers // pixel_values memory, back from released batches
	// budget bounds the memory of the images being decoded at once, by
	// every batch in flight (spec.DecodeMemory).
	budget *preprocess.Budget
}

var _ preprocess.Processor = (*Processor)(nil)

// Available reports whether a usable GPU exists (for --device auto): nil
// if so, kernels.ErrNoCUDA in a build without the cuda tag, otherwise the
// driver's reason.
func Available() error { return kernels.Available() }

// NewImageProcessor validates spec and returns a Processor that decodes on
// `threads` goroutines (0 means runtime.GOMAXPROCS(0)) and transforms each
// batch on dev. In a build without the cuda tag it returns
// kernels.ErrNoCUDA.
func NewImageProcessor(spec image.Spec, dev *kernels.Device, threads int) (*Processor, error) {
	if !kernels.Built {
		return nil, kernels.ErrNoCUDA
	}
	if dev == nil {
		return nil, fmt.Errorf("gpu: NewImageProcessor needs an open *kernels.Device, got nil")
	}
	return newProcessor(spec, dev, threads)
}

func newProcessor(spec image.Spec, r runner, threads int) (*Processor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if threads < 0 {
		return nil, fmt.Errorf("gpu: threads is %d, want 0 (GOMAXPROCS) or more", threads)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return &Processor{spec: spec, threads: threads, run: r, budget: preprocess.NewBudget(spec.DecodeMemory)}, nil
}

// Spec returns the processor's spec.
func (p *Processor) Spec() image.Spec { return p.spec }

// shape is the output tensor's shape for n images.
func (p *Processor) shape(n int) []int {
	c := p.spec.Crop
	if p.spec.Layout == image.NHWC {
		return []int{n, c, c, 3}
	}
	return []int{n, 3, c, c}
}

// Process decodes the items on the CPU, then transforms every decoded
// image in one kernel launch. Bad items are reported in Batch.Failed
// (wrapping preprocess.ErrBadInput) as image.Processor reports them; the
// others form the tensor "pixel_values" in input order with RowFacts
// "original_size" ([2]int{height, width}). A returned error means the
// whole batch failed and may pass later: the context ended or the GPU
// failed (the error then wraps the kernels error).
func (p *Processor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	start := time.Now()
	decoded := make([]decodedImage, len(items))
	if err := p.decode(ctx, items, decoded); err != nil {
		return nil, err
	}
	decodedIn := time.Since(start)

	b := &preprocess.Batch{Pipeline: image.PipelineName, RowFacts: map[string][]any{}}
	facts := make([]any, 0, len(items))
	ok := make([]kernels.Image, 0, len(items))
	for i, it := range items {
		d := &decoded[i]
		if d.err != nil {
			b.Failed = append(b.Failed, preprocess.ItemError{Index: i, ID: it.ID, Err: d.err})
			continue
		}
		b.IDs = append(b.IDs, it.ID)
		facts = append(facts, [2]int{d.height, d.width})
		ok = append(ok, d.plan.view(d.win.Pix, 0))
	}
	rb := 3 * p.spec.Crop * p.spec.Crop * p.spec.DType.Size()
	// The kernel writes every element (the parity tests poison the output
	// first), so recycled memory needs no clearing.
	data := p.tensors.Get(len(ok) * rb)
	var timing kernels.Timing
	if len(ok) > 0 {
		j, err := newJob(p.spec, ok, data)
		if err == nil {
			j.Timing = &timing
			err = p.run.ResizeCropNormalize(ctx, j)
		}
		if err != nil {
			p.tensors.Put(data)
			return nil, fmt.Errorf("gpu: batch of %d images: %w", len(ok), err)
		}
	}
	b.OnRelease(func() { p.tensors.Put(data) })
	b.Tensors = []preprocess.Tensor{{Name: image.TensorName, DType: p.spec.DType, Shape: p.shape(len(ok)), Data: data}}
	b.RowFacts["original_size"] = facts
	// The device's stages are CUDA event times: with batches in flight on
	// other streams they overlap, so they may add up to more than the
	// batch's wall time.
	b.Timings = map[string]time.Duration{
		preprocess.StageDecode:   decodedIn,
		preprocess.StageUpload:   timing.Upload,
		preprocess.StageKernel:   timing.Kernel,
		preprocess.StageDownload: timing.Download,
	}
	return b, nil
}

// decodedImage is one item after decoding: the pixels its kernel plan
// reads (the window) and the whole image's size, or why it failed.
type decodedImage struct {
	win           *image.RGB
	width, height int
	plan          *imagePlan
	err           error
}

// decode decodes the items on p.threads goroutines, each with its own
// image.Decoder: every image is planned as soon as its size is known (from
// the cache when the size was seen) and only the window its plan reads is
// converted and kept. All goroutines have finished when it returns.
func (p *Processor) decode(ctx context.Context, items []preprocess.Item, out []decodedImage) error {
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < min(p.threads, len(items)); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dec image.Decoder
			dec.Limit(p.budget)
			for i := range next {
				d := &out[i]
				window := func(w, h int) (x0, y0, x1, y1 int) {
					d.plan = p.plans.get(p.spec, w, h)
					return d.plan.x0, d.plan.y0, d.plan.x1, d.plan.y1
				}
				d.win, d.width, d.height, d.err = dec.DecodeWindow(items[i].Data, p.spec, window)
			}
		}()
	}
	ctxErr := preprocess.Feed(ctx, len(items), next)
	wg.Wait()
	if ctxErr != nil {
		return fmt.Errorf("gpu: batch of %d items abandoned: %w", len(items), ctxErr)
	}
	return nil
}
