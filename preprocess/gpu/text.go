package gpu

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// tokenizer runs the WordPiece kernels on one batch; *kernels.WordPiece is
// the real one, tests use the CPU emulation.
type tokenizer interface {
	Tokenize(ctx context.Context, j *kernels.TextJob) error
}

// TextProcessor is the GPU-backed text Processor: it returns the Batch the
// CPU text.Processor returns for the same items and Spec (same ids,
// attention mask, type ids, truncation, padding, RowFacts["num_tokens"]
// and Failed), tokenising in the WordPiece kernels. It is safe for
// concurrent use. Close it before the Device.
//
// Per batch, on the CPU (threads goroutines): each document is checked
// against MaxBytes and for valid UTF-8 (invalid bytes are replaced per
// Spec.InvalidUTF8), and split at the tokenizer's added tokens (a literal
// "[CLS]" in the text), which are matched on the raw text before
// normalisation as on the CPU. On the GPU: everything else. A document that
// fails (too large, invalid UTF-8 with RejectInvalid, over MaxLength with
// truncation off) is handed to the CPU Processor alone, so that its error
// is the CPU path's, word for word.
type TextProcessor struct {
	spec    text.Spec
	threads int
	cpu     *text.Processor
	model   *bertModel
	run     tokenizer
	wp      *kernels.WordPiece // nil with a test tokenizer
	tensors preprocess.Buffers // the three tensors' memory, back from released batches
}

var _ preprocess.Processor = (*TextProcessor)(nil)

// NewTextProcessor loads spec.Tokenizer (the bundled bert-base-uncased
// when empty) with the CPU loader (text.NewProcessor), uploads its
// WordPiece tables to dev and returns a Processor that prepares batches on
// `threads` goroutines (0: GOMAXPROCS). A tokenizer the kernels do not run
// gives an error wrapping ErrUnsupportedTokenizer: one that is not
// WordPiece (GPT-2's byte-level BPE; the error is ErrNotWordPiece) or one
// beyond the kernels' limits (it also wraps kernels.ErrWordPieceLimit). In
// a build without the cuda tag it returns kernels.ErrNoCUDA.
func NewTextProcessor(spec text.Spec, dev *kernels.Device, threads int) (*TextProcessor, error) {
	if !kernels.Built {
		return nil, kernels.ErrNoCUDA
	}
	if dev == nil {
		return nil, fmt.Errorf("gpu: NewTextProcessor needs an open *kernels.Device, got nil")
	}
	p, err := newTextProcessor(spec, threads)
	if err != nil {
		return nil, err
	}
	wp, err := dev.LoadWordPiece(context.Background(), p.model.kernel, 0)
	if err != nil {
		return nil, fmt.Errorf("gpu: load the tokenizer on %s: %w", dev.Name(), err)
	}
	p.run, p.wp = wp, wp
	return p, nil
}

// newTextProcessor builds everything but the tokenizer runner.
func newTextProcessor(spec text.Spec, threads int) (*TextProcessor, error) {
	if threads < 0 {
		return nil, fmt.Errorf("gpu: threads is %d, want 0 (GOMAXPROCS) or more", threads)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	cpu, err := text.NewProcessor(spec, threads)
	if err != nil {
		return nil, err
	}
	m, err := newBertModel(cpu.Tokenizer())
	if err != nil {
		return nil, err
	}
	return &TextProcessor{spec: spec, threads: threads, cpu: cpu, model: m}, nil
}

// Spec returns the processor's spec.
func (p *TextProcessor) Spec() text.Spec { return p.spec }

// Close frees the tokenizer's device memory and streams. Close it before
// closing the Device; Process after Close returns an error wrapping
// kernels.ErrClosed.
func (p *TextProcessor) Close() error {
	if p.wp == nil {
		return nil
	}
	return p.wp.Close()
}

// prepared is one document after the CPU's part.
type prepared struct {
	doc    []byte              // valid UTF-8
	pieces []kernels.TextPiece // nil: the whole document
	failed bool                // too large or invalid: the CPU Processor says why
}

// chunkDocs is how many documents a preparing goroutine claims at a time.
const chunkDocs = 64

// Process tokenises items as text.Processor.Process does (see
// TextProcessor). A returned error means the whole batch failed and may
// pass later: the context ended or the GPU failed (the error then wraps the
// kernels error, for example kernels.ErrDeviceLost).
func (p *TextProcessor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gpu: text: %w", err)
	}
	start := time.Now()
	room := p.spec.MaxLength - len(p.model.kernel.Prefix) - len(p.model.kernel.Suffix)
	prep := make([]prepared, len(items))
	p.prepare(ctx, items, prep, room)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gpu: text: %w", err)
	}

	j := &kernels.TextJob{
		Room:       room,
		Width:      p.spec.MaxLength,
		PadLongest: p.spec.Padding == text.PadLongest,
		Int64:      p.spec.IDType == preprocess.Int64,
		DropOver:   !p.spec.Truncation,
		Workers:    p.threads,
		Alloc:      p.tensors.Get,
		Timing:     &kernels.Timing{},
	}
	var rowItem []int // item index of each job row
	split := false
	for i := range prep {
		if prep[i].failed {
			continue
		}
		rowItem = append(rowItem, i)
		j.Docs = append(j.Docs, prep[i].doc)
		split = split || prep[i].pieces != nil
	}
	if split {
		j.Pieces = make([][]kernels.TextPiece, len(j.Docs))
		for r, i := range rowItem {
			if pc := prep[i].pieces; pc != nil {
				j.Pieces[r] = pc
			} else {
				j.Pieces[r] = []kernels.TextPiece{{Start: 0, End: len(prep[i].doc), Added: -1}}
			}
		}
	}
	prepared := time.Since(start)
	if err := p.run.Tokenize(ctx, j); err != nil {
		return nil, fmt.Errorf("gpu: text batch of %d documents: %w", len(j.Docs), err)
	}

	// Items the CPU must explain: failed before the GPU, or over
	// MaxLength with truncation off.
	var explain []int
	for i := range prep {
		if prep[i].failed {
			explain = append(explain, i)
		}
	}
	b := &preprocess.Batch{Pipeline: "text", RowFacts: map[string][]any{}}
	b.OnRelease(func() {
		p.tensors.Put(j.IDs)
		p.tensors.Put(j.Mask)
		p.tensors.Put(j.TypeIDs)
	})
	var facts []any
	for r, i := range rowItem {
		if j.DropOver && j.Over[r] {
			explain = append(explain, i)
			continue
		}
		b.IDs = append(b.IDs, items[i].ID)
		facts = append(facts, int(j.Lengths[r]))
	}
	b.RowFacts["num_tokens"] = facts
	if len(explain) > 0 {
		failed, err := p.explain(ctx, items, explain)
		if err != nil {
			return nil, err
		}
		b.Failed = failed
	}
	shape := func() []int { return []int{j.Rows, j.OutWidth} }
	b.Tensors = []preprocess.Tensor{
		{Name: text.InputIDs, DType: p.spec.IDType, Shape: shape(), Data: j.IDs},
		{Name: text.AttentionMask, DType: p.spec.IDType, Shape: shape(), Data: j.Mask},
		{Name: text.TokenTypeIDs, DType: p.spec.IDType, Shape: shape(), Data: j.TypeIDs},
	}
	b.Timings = map[string]time.Duration{
		preprocess.StageDecode:   prepared,
		preprocess.StageUpload:   j.Timing.Upload,
		preprocess.StageKernel:   j.Timing.Kernel,
		preprocess.StageDownload: j.Timing.Download,
	}
	return b, nil
}

// prepare runs the CPU's part over the items on p.threads goroutines.
func (p *TextProcessor) prepare(ctx context.Context, items []preprocess.Item, prep []prepared, room int) {
	limit := room + 1 // added tokens after which the rest of a document cannot matter
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(p.threads, (len(items)+chunkDocs-1)/chunkDocs)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s := int(next.Add(chunkDocs)) - chunkDocs
				if s >= len(items) {
					return
				}
				for i := s; i < min(s+chunkDocs, len(items)); i++ {
					p.prepareOne(&prep[i], items[i].Data, limit)
				}
			}
		}()
	}
	wg.Wait()
}

func (p *TextProcessor) prepareOne(out *prepared, data []byte, limit int) {
	if p.spec.MaxBytes > 0 && int64(len(data)) > p.spec.MaxBytes {
		out.failed = true
		return
	}
	doc := data
	if !utf8.Valid(data) {
		if p.spec.InvalidUTF8 == text.RejectInvalid {
			out.failed = true
			return
		}
		doc = replaceInvalid(data)
	}
	out.doc = doc
	out.pieces = p.model.split(doc, limit)
}

// explain runs the CPU Processor on the items at idx (ascending or not)
// and returns their failures with their indices in items, in index order.
func (p *TextProcessor) explain(ctx context.Context, items []preprocess.Item, idx []int) ([]preprocess.ItemError, error) {
	sort.Ints(idx)
	sub := make([]preprocess.Item, len(idx))
	for k, i := range idx {
		sub[k] = items[i]
	}
	cb, err := p.cpu.Process(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("gpu: text: explain %d failed documents on the CPU: %w", len(sub), err)
	}
	if len(cb.Failed) != len(sub) {
		return nil, fmt.Errorf("gpu: text: %d documents failed before or on the GPU, the CPU Processor fails %d of them: %w",
			len(sub), len(cb.Failed), errPathsDisagree)
	}
	out := make([]preprocess.ItemError, len(cb.Failed))
	for k, f := range cb.Failed {
		f.Index = idx[f.Index]
		out[k] = f
	}
	return out, nil
}

// errPathsDisagree marks a batch in which the GPU path and the CPU path
// disagree on which documents are bad input: a bug, reported rather than
// hidden.
var errPathsDisagree = errors.New("the GPU and CPU text paths disagree")

// replaceInvalid returns s with every maximal invalid UTF-8 subsequence
// replaced by U+FFFD (Python's errors="replace", the CPU path's and the
// oracle's reading): a lead byte and the continuation bytes that could
// still have completed it are one subsequence, any other bad byte is one.
func replaceInvalid(s []byte) []byte {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, s[i:i+n]...)
			i += n
			continue
		}
		// The longest prefix of a valid sequence starting at s[i]: how many
		// continuation bytes the lead byte wants, and the range the first
		// of them must be in (E0, ED, F0 and F4 narrow it).
		want, lo, hi := 0, byte(0x80), byte(0xBF)
		switch b := s[i]; {
		case b >= 0xC2 && b <= 0xDF:
			want = 1
		case b == 0xE0:
			want, lo = 2, 0xA0
		case b == 0xED:
			want, hi = 2, 0x9F
		case b >= 0xE1 && b <= 0xEF:
			want = 2
		case b == 0xF0:
			want, lo = 3, 0x90
		case b == 0xF4:
			want, hi = 3, 0x8F
		case b >= 0xF1 && b <= 0xF3:
			want = 3
		}
		k := i + 1
		for c := 0; c < want && k < len(s); c++ {
			if s[k] < lo || s[k] > hi {
				break
			}
			lo, hi = 0x80, 0xBF
			k++
		}
		out = append(out, "\uFFFD"...)
		i = k
	}
	return out
}

// Tokenizer is the tokenizer both paths share.
func (p *TextProcessor) Tokenizer() *text.Tokenizer { return p.cpu.Tokenizer() }
