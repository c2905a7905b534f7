package text

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/stoker-ml/stoker/preprocess"
)

// Tensor names produced by Processor.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	TokenTypeIDs  = "token_type_ids"
)

// Processor tokenises batches of documents into padded id tensors. It
// implements preprocess.Processor and is safe for concurrent use.
type Processor struct {
	spec    Spec
	tok     *Tokenizer
	threads int
	// states holds one encoder state per thread, kept for the life of the
	// Processor so the BPE word caches stay warm (a sync.Pool would drop
	// them at every garbage collection).
	states chan *encoderState
	// tensors is the memory of released batches' tensors, reused: every
	// element of a new batch's tensors is written.
	tensors preprocess.Buffers
}

// NewProcessor loads spec.Tokenizer (the bundled bert-base-uncased when
// empty) and returns a Processor that tokenises on at most threads
// goroutines per batch (0: GOMAXPROCS).
func NewProcessor(spec Spec, threads int) (*Processor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if threads < 0 {
		return nil, fmt.Errorf("text: threads must be 0 (GOMAXPROCS) or positive, got %d", threads)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	var tok *Tokenizer
	var err error
	if spec.Tokenizer == "" {
		tok, err = DefaultTokenizer()
	} else {
		tok, err = LoadTokenizer(spec.Tokenizer)
	}
	if err != nil {
		return nil, err
	}
	if n := tok.NumSpecialTokens(); spec.MaxLength <= n {
		return nil, fmt.Errorf("text.max_length: must exceed the %d special tokens the tokenizer adds, got %d", n, spec.MaxLength)
	}
	p := &Processor{spec: spec, tok: tok, threads: threads, states: make(chan *encoderState, threads)}
	for range threads {
		p.states <- tok.newState()
	}
	return p, nil
}

// Tokenizer is the processor's tokenizer.
func (p *Processor) Tokenizer() *Tokenizer { return p.tok }

// chunk is how many documents a worker claims at a time.
const chunk = 8

type docResult struct {
	ids []int32 // special tokens included, truncated; nil when failed
	err error
}

// Process tokenises items. Rows follow the order of the successful items;
// each tensor is [rows, L] of Spec.IDType with L as Spec.Padding says.
// RowFacts["num_tokens"] holds each row's token count before padding;
// Timings counts the whole batch as StageDecode (tokenising).
func (p *Processor) Process(ctx context.Context, items []preprocess.Item) (*preprocess.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	began := time.Now()
	res := make([]docResult, len(items))
	workers := min(p.threads, (len(items)+chunk-1)/chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := <-p.states
			defer func() { p.states <- s }()
			var arena []int32
			for ctx.Err() == nil {
				start := int(next.Add(chunk)) - chunk
				if start >= len(items) {
					return
				}
				for i := start; i < min(start+chunk, len(items)); i++ {
					arena = p.encodeItem(s, &res[i], items[i], arena)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}

	b := &preprocess.Batch{Pipeline: "text", RowFacts: map[string][]any{}}
	longest := 0
	var facts []any
	for i, r := range res {
		if r.err != nil {
			b.Failed = append(b.Failed, preprocess.ItemError{Index: i, ID: items[i].ID, Err: r.err})
			continue
		}
		b.IDs = append(b.IDs, items[i].ID)
		longest = max(longest, len(r.ids))
		facts = append(facts, len(r.ids))
	}
	b.RowFacts["num_tokens"] = facts
	L := longest
	if p.spec.Padding == PadMaxLength {
		L = p.spec.MaxLength
	}
	rows := len(b.IDs)
	size := p.spec.IDType.Size()
	ids := p.tensors.Get(rows * L * size)
	mask := p.tensors.Get(rows * L * size)
	types := p.tensors.Get(rows * L * size)
	b.OnRelease(func() {
		p.tensors.Put(ids)
		p.tensors.Put(mask)
		p.tensors.Put(types)
	})
	put := putInt64
	if p.spec.IDType == preprocess.Int32 {
		put = putInt32
	}
	row := 0
	for _, r := range res {
		if r.err != nil {
			continue
		}
		base := row * L
		for j := 0; j < L; j++ {
			id, m, ty := p.tok.padID, int32(0), p.tok.padTypeID
			if j < len(r.ids) {
				id, m, ty = r.ids[j], 1, p.typeAt(j, len(r.ids))
			}
			put(ids, base+j, id)
			put(mask, base+j, m)
			put(types, base+j, ty)
		}
		row++
	}
	shape := func() []int { return []int{rows, L} }
	b.Tensors = []preprocess.Tensor{
		{Name: InputIDs, DType: p.spec.IDType, Shape: shape(), Data: ids},
		{Name: AttentionMask, DType: p.spec.IDType, Shape: shape(), Data: mask},
		{Name: TokenTypeIDs, DType: p.spec.IDType, Shape: shape(), Data: types},
	}
	b.Timings = map[string]time.Duration{preprocess.StageDecode: time.Since(began)}
	return b, nil
}

// typeAt is the type id of position j of a row of n tokens.
func (p *Processor) typeAt(j, n int) int32 {
	t := p.tok
	switch {
	case j < len(t.prefix):
		return t.prefixTypes[j]
	case j >= n-len(t.suffix):
		return t.suffixTypes[j-(n-len(t.suffix))]
	}
	return t.seqType
}

func putInt64(b []byte, i int, v int32) { binary.LittleEndian.PutUint64(b[i*8:], uint64(int64(v))) }
func putInt32(b []byte, i int, v int32) { binary.LittleEndian.PutUint32(b[i*4:], uint32(v)) }

// encodeItem tokenises one item into res, appending its ids to arena.
func (p *Processor) encodeItem(s *encoderState, res *docResult, it preprocess.Item, arena []int32) []int32 {
	spec := &p.spec
	if spec.MaxBytes > 0 && int64(len(it.Data)) > spec.MaxBytes {
		res.err = preprocess.Reject(preprocess.ReasonTooLarge, "text of %d bytes is over text.max_bytes %d", len(it.Data), spec.MaxBytes)
		return arena
	}
	var doc string
	if bad := firstInvalid(it.Data); bad >= 0 {
		if spec.InvalidUTF8 == RejectInvalid {
			res.err = preprocess.Reject(preprocess.ReasonInvalidText, "invalid UTF-8 at byte %d (text.invalid_utf8 is reject)", bad)
			return arena
		}
		s.buf = appendReplacingInvalid(s.buf[:0], it.Data)
		doc = unsafe.String(unsafe.SliceData(s.buf), len(s.buf))
	} else if len(it.Data) > 0 {
		doc = unsafe.String(unsafe.SliceData(it.Data), len(it.Data))
	}
	t := p.tok
	nSpecial := t.NumSpecialTokens()
	room := spec.MaxLength - nSpecial
	limit := 0
	if spec.Truncation {
		limit = room
	}
	start := len(arena)
	arena = append(arena, t.prefix...)
	arena = t.encodeContent(s, arena, doc, limit)
	n := len(arena) - start - len(t.prefix)
	if n > room {
		if !spec.Truncation {
			res.err = preprocess.Reject(preprocess.ReasonTooLarge, "text of %d tokens is over text.max_length %d and text.truncation is off", n+nSpecial, spec.MaxLength)
			return arena[:start]
		}
		arena = arena[:start+len(t.prefix)+room]
	}
	arena = append(arena, t.suffix...)
	res.ids = arena[start:len(arena):len(arena)]
	return arena
}
