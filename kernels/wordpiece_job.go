package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// WordPieceTables is what the WordPiece kernels need to know about one BERT
// tokenizer: the code-point and vocabulary tables of
// preprocess/text/wordpiece.Tables (same layouts, see that package) plus
// the post-processor's special tokens and the padding. The kernels package
// does not import preprocess, so preprocess/gpu fills it with the same
// slices (shared, not copied).
// The tables are packed into one blob (a wp_tables header, then the
// slices) and uploaded once per device.
type WordPieceTables struct {
	PageIndex  []uint16
	Pages      []uint32
	Expansions []int32

	Slots            []uint32 // power-of-two length; entry+1 or 0
	KeyOffsets       []uint32
	KeyBytes         []byte
	EntryIDs         []int32
	ContinuingPrefix string // "##" for BERT
	PrefixHash       uint32 // FNV-1a state after ContinuingPrefix
	MaxKeyLen        int
	MaxInputChars    int // max_input_chars_per_word
	UnkID            int32

	// Post-processing of one sequence: Prefix + content + Suffix, with
	// their type ids; SeqType is the content's type id.
	Prefix, PrefixTypes []int32
	Suffix, SuffixTypes []int32
	SeqType             int32
	PadID, PadTypeID    int32
}

// Limits of the WordPiece kernels (WP_MAX_CHARS, WP_MAX_KEY and
// WP_MAX_SPECIAL in wordpiece.h).
const (
	WordPieceMaxChars   = 256
	WordPieceMaxKey     = 128
	WordPieceMaxSpecial = 8
	// Block sizes of wp_tokenize and wp_assemble.
	TokenizeBlock = 64
	AssembleBlock = 256
)

// wpTablesHeaderBytes is sizeof(wp_tables).
const wpTablesHeaderBytes = 24*4 + 4*WordPieceMaxSpecial*4

// Validate checks what the kernels rely on to stay inside the tables. A
// tokenizer that is valid but beyond the kernels' limits (a
// max_input_chars_per_word over WordPieceMaxChars, a vocabulary entry over
// WordPieceMaxKey bytes, more than WordPieceMaxSpecial special tokens on
// a side) gives an error wrapping ErrWordPieceLimit: it can run on the
// CPU tokenizer instead.
func (t *WordPieceTables) Validate() error {
	switch {
	case len(t.PageIndex) != 0x110000>>8:
		return fmt.Errorf("kernels: wordpiece tables: page index has %d entries, want %d", len(t.PageIndex), 0x110000>>8)
	case len(t.Slots) == 0 || len(t.Slots)&(len(t.Slots)-1) != 0:
		return fmt.Errorf("kernels: wordpiece tables: %d hash slots is not a power of two", len(t.Slots))
	case len(t.KeyOffsets) != len(t.EntryIDs)+1:
		return fmt.Errorf("kernels: wordpiece tables: %d key offsets for %d entries", len(t.KeyOffsets), len(t.EntryIDs))
	case t.MaxInputChars <= 0:
		return fmt.Errorf("kernels: wordpiece tables: max_input_chars_per_word %d is not positive", t.MaxInputChars)
	case t.MaxInputChars > WordPieceMaxChars:
		return limitErrorf("kernels: wordpiece tables: max_input_chars_per_word %d is outside the kernel's 1..%d", t.MaxInputChars, WordPieceMaxChars)
	case t.MaxKeyLen <= 0:
		return fmt.Errorf("kernels: wordpiece tables: longest vocabulary entry of %d bytes: the vocabulary is empty", t.MaxKeyLen)
	case t.MaxKeyLen > WordPieceMaxKey:
		return limitErrorf("kernels: wordpiece tables: longest vocabulary entry of %d bytes is outside the kernel's 1..%d", t.MaxKeyLen, WordPieceMaxKey)
	case len(t.Prefix) > WordPieceMaxSpecial || len(t.Suffix) > WordPieceMaxSpecial:
		return limitErrorf("kernels: wordpiece tables: %d special tokens before and %d after the sequence, the kernel takes at most %d each", len(t.Prefix), len(t.Suffix), WordPieceMaxSpecial)
	case len(t.PrefixTypes) != len(t.Prefix) || len(t.SuffixTypes) != len(t.Suffix):
		return errors.New("kernels: wordpiece tables: special tokens and their type ids differ in number")
	}
	npages := len(t.Pages) >> 8
	if len(t.Pages)&255 != 0 {
		return fmt.Errorf("kernels: wordpiece tables: %d page entries is not a whole number of 256-entry pages", len(t.Pages))
	}
	for i, p := range t.PageIndex {
		if int(p) >= npages {
			return fmt.Errorf("kernels: wordpiece tables: page index %d names page %d of %d", i, p, npages)
		}
	}
	for i, e := range t.Pages {
		n, data := int(e>>4&7), int(e>>8)
		if e&0x80 == 0 && n >= 2 && data+n > len(t.Expansions) {
			return fmt.Errorf("kernels: wordpiece tables: entry %d expands to [%d, %d) of %d expansion code points", i, data, data+n, len(t.Expansions))
		}
		if e&0x80 == 0 && n == 1 && data >= utf8.MaxRune+1 {
			return fmt.Errorf("kernels: wordpiece tables: entry %d maps to %#x, not a code point", i, data)
		}
	}
	for i, r := range t.Expansions {
		if r < 0 || r > utf8.MaxRune {
			return fmt.Errorf("kernels: wordpiece tables: expansion %d is %#x, not a code point", i, r)
		}
	}
	for e := range t.EntryIDs {
		if t.KeyOffsets[e] > t.KeyOffsets[e+1] || int(t.KeyOffsets[e+1]) > len(t.KeyBytes) {
			return fmt.Errorf("kernels: wordpiece tables: entry %d has key bytes [%d, %d) of %d", e, t.KeyOffsets[e], t.KeyOffsets[e+1], len(t.KeyBytes))
		}
	}
	empty := false
	for _, s := range t.Slots {
		if s == 0 {
			empty = true
		} else if int(s) > len(t.EntryIDs) {
			return fmt.Errorf("kernels: wordpiece tables: hash slot names entry %d of %d", s-1, len(t.EntryIDs))
		}
	}
	if !empty {
		return errors.New("kernels: wordpiece tables: the hash table has no empty slot, a failed lookup would not end")
	}
	return nil
}

// pack returns the tables blob: the wp_tables header, then each slice at
// a 16-byte aligned offset.
func (t *WordPieceTables) pack() []byte {
	le := binary.LittleEndian
	off := align16(wpTablesHeaderBytes)
	place := func(n int) int { at := off; off = align16(off + n); return at }
	oPageIndex := place(2 * len(t.PageIndex))
	oPages := place(4 * len(t.Pages))
	oExp := place(4 * len(t.Expansions))
	oSlots := place(4 * len(t.Slots))
	oKeyOff := place(4 * len(t.KeyOffsets))
	oKeys := place(len(t.KeyBytes))
	oIDs := place(4 * len(t.EntryIDs))
	oPrefix := place(len(t.ContinuingPrefix))
	buf := make([]byte, off)
	h := []int32{int32(oPageIndex), int32(oPages), int32(oExp), int32(oSlots), int32(oKeyOff), int32(oKeys), int32(oIDs), int32(oPrefix),
		int32(uint32(len(t.Slots) - 1)), int32(t.PrefixHash), int32(len(t.ContinuingPrefix)), int32(t.MaxKeyLen),
		int32(t.MaxInputChars), t.UnkID, t.PadID, t.PadTypeID,
		int32(len(t.Prefix)), int32(len(t.Suffix)), t.SeqType, 0, 0, 0, 0, 0}
	for i, v := range h {
		le.PutUint32(buf[4*i:], uint32(v))
	}
	specials := [][]int32{t.Prefix, t.PrefixTypes, t.Suffix, t.SuffixTypes}
	for k, s := range specials {
		for i, v := range s {
			le.PutUint32(buf[4*(24+k*WordPieceMaxSpecial+i):], uint32(v))
		}
	}
	for i, v := range t.PageIndex {
		le.PutUint16(buf[oPageIndex+2*i:], v)
	}
	put32 := func(at int, vs []uint32) {
		for i, v := range vs {
			le.PutUint32(buf[at+4*i:], v)
		}
	}
	put32(oPages, t.Pages)
	put32(oSlots, t.Slots)
	put32(oKeyOff, t.KeyOffsets)
	for i, v := range t.Expansions {
		le.PutUint32(buf[oExp+4*i:], uint32(v))
	}
	for i, v := range t.EntryIDs {
		le.PutUint32(buf[oIDs+4*i:], uint32(v))
	}
	copy(buf[oKeys:], t.KeyBytes)
	copy(buf[oPrefix:], t.ContinuingPrefix)
	return buf
}

// TextPiece is one piece of a row's content: the text Doc[Start:End] of
// the row's document, or, when Added >= 0, the id of an added token that
// was matched in the raw text (the caller splits documents at added
// tokens, as the CPU tokenizer does).
type TextPiece struct {
	Start, End int
	Added      int32
}

// TextJob is one batch for the WordPiece kernels: one output row per
// document.
type TextJob struct {
	// Docs are the documents, valid UTF-8 (the caller rejects or replaces
	// invalid bytes first).
	Docs [][]byte
	// Pieces, when not nil, splits the documents: row r's content is the
	// concatenation of Pieces[r]'s pieces. When nil every row is its whole
	// document.
	Pieces [][]TextPiece
	// Room is the number of content ids a row keeps (MaxLength minus the
	// special tokens). A row with more is cut to Room ids and reported in
	// Over.
	Room int
	// Width is the padded row length of the device's output (at least
	// Room plus the special tokens). With PadLongest the result is cut to
	// the longest row of the batch.
	Width      int
	PadLongest bool
	// Int64 selects int64 output elements, otherwise int32.
	Int64 bool
	// DropOver leaves the rows over Room out of IDs, Mask and TypeIDs (and
	// out of the longest row), for truncation off: such rows are bad input.
	// Lengths and Over still have one element per document.
	DropOver bool
	// Workers is the number of goroutines that copy the text into the
	// upload buffer and the tensors out of the download buffer (0: 1).
	Workers int
	// Alloc, when set, provides the memory of IDs, Mask and TypeIDs (n
	// bytes each, content undefined: every byte is written); nil means
	// make.
	Alloc func(n int) []byte

	// Results, written by the run.
	//
	// IDs, Mask and TypeIDs are [rows, OutWidth] tensors, little-endian,
	// one row per document (without the rows over Room with DropOver).
	IDs, Mask, TypeIDs []byte
	Rows               int
	OutWidth           int
	// Lengths is each row's length in tokens (special tokens included)
	// after truncation, before padding.
	Lengths []int32
	// Over marks rows whose content had more than Room ids (then cut).
	Over []bool
	// Timing, when not nil, receives what the device measured.
	Timing *Timing
}

// textPacking says where the parts of a TextJob lie in the batch blob.
type textPacking struct {
	TextBytes    int
	Spans        int
	SpansOffset  int
	RowsOffset   int
	PiecesOffset int
	Pieces       int
	Size         int
	// Cap is the number of ids kept per span: Room+1, so that a row over
	// Room is told apart from a row of exactly Room.
	Cap int
}

const (
	wpSpanBytes = 16
	wpRowBytes  = 8
)

func (j *TextJob) specials(t *WordPieceTables) int { return len(t.Prefix) + len(t.Suffix) }

// validate checks the job against the tables.
func (j *TextJob) validate(t *WordPieceTables) error {
	if j.Room <= 0 {
		return fmt.Errorf("kernels: text job: room for %d content ids, want at least 1", j.Room)
	}
	if j.Width < j.Room+j.specials(t) {
		return fmt.Errorf("kernels: text job: width %d is less than room %d plus %d special tokens", j.Width, j.Room, j.specials(t))
	}
	if j.Pieces != nil && len(j.Pieces) != len(j.Docs) {
		return fmt.Errorf("kernels: text job: pieces for %d rows, %d documents", len(j.Pieces), len(j.Docs))
	}
	if int64(len(j.Docs))*int64(j.Width) > 1<<31-1 {
		return fmt.Errorf("kernels: text job: %d rows of %d exceed int32 indexing", len(j.Docs), j.Width)
	}
	total := 0
	for r, d := range j.Docs {
		if !utf8.Valid(d) {
			return fmt.Errorf("kernels: text job: document %d is not valid UTF-8", r)
		}
		total += len(d)
		if j.Pieces == nil {
			continue
		}
		for k, p := range j.Pieces[r] {
			if p.Added < 0 && (p.Start < 0 || p.Start > p.End || p.End > len(d) ||
				(p.End < len(d) && !utf8.RuneStart(d[p.End])) || (p.Start < len(d) && !utf8.RuneStart(d[p.Start]))) {
				return fmt.Errorf("kernels: text job: document %d piece %d [%d, %d) is not a run of whole code points of its %d bytes", r, k, p.Start, p.End, len(d))
			}
		}
	}
	if total > 1<<40 {
		return fmt.Errorf("kernels: text job: %d bytes of text", total)
	}
	return nil
}

// packing computes where the parts of the job go. Call validate first.
func (j *TextJob) packing() textPacking {
	var p textPacking
	p.Cap = j.Room + 1
	for r, d := range j.Docs {
		if j.Pieces == nil {
			p.Spans++
			p.Pieces++
			p.TextBytes += len(d)
			continue
		}
		for _, pc := range j.Pieces[r] {
			p.Pieces++
			if pc.Added < 0 {
				p.Spans++
				p.TextBytes += pc.End - pc.Start
			}
		}
	}
	p.SpansOffset = align16(p.TextBytes)
	p.RowsOffset = align16(p.SpansOffset + wpSpanBytes*p.Spans)
	p.PiecesOffset = align16(p.RowsOffset + wpRowBytes*len(j.Docs))
	p.Size = align16(p.PiecesOffset + 4*p.Pieces)
	return p
}

// scratchBytes is the size of the per-span ids and counts (int32).
func (p textPacking) scratchBytes() int { return 4*p.Spans*p.Cap + 4*p.Spans }

// outputBytes is what the device writes and the host downloads: the int32
// ids of every row at the device's width, then the row lengths (int32).
func (j *TextJob) outputBytes() int { return j.lengthsOffset() + 4*len(j.Docs) }

// lengthsOffset is where the row lengths start in the device's output.
func (j *TextJob) lengthsOffset() int { return 4 * len(j.Docs) * j.Width }

// pack writes the text, spans, rows and pieces into buf (at least
// p.Size bytes).
func (j *TextJob) pack(buf []byte, p textPacking) {
	le := binary.LittleEndian
	text, span, piece := 0, 0, 0
	type textCopy struct {
		at  int
		src []byte
	}
	copies := make([]textCopy, 0, p.Spans)
	addSpan := func(b []byte) {
		copies = append(copies, textCopy{text, b})
		s := buf[p.SpansOffset+wpSpanBytes*span:]
		le.PutUint64(s[0:], uint64(text))
		le.PutUint32(s[8:], uint32(len(b)))
		le.PutUint32(s[12:], 0)
		le.PutUint32(buf[p.PiecesOffset+4*piece:], uint32(span))
		text += len(b)
		span++
		piece++
	}
	for r, d := range j.Docs {
		row := buf[p.RowsOffset+wpRowBytes*r:]
		le.PutUint32(row[0:], uint32(piece))
		if j.Pieces == nil {
			addSpan(d)
		} else {
			for _, pc := range j.Pieces[r] {
				if pc.Added >= 0 {
					le.PutUint32(buf[p.PiecesOffset+4*piece:], uint32(-(pc.Added + 1)))
					piece++
					continue
				}
				addSpan(d[pc.Start:pc.End])
			}
		}
		le.PutUint32(row[4:], uint32(piece-int(le.Uint32(row[0:]))))
	}
	workers := j.Workers
	if p.TextBytes < 1<<20 {
		workers = 1 // not worth the goroutines
	}
	parallelRanges(len(copies), workers, func(lo, hi int) {
		for _, c := range copies[lo:hi] {
			copy(buf[c.at:], c.src)
		}
	})
}

// textGeometry is the launch grids: one wp_tokenize thread per span, one
// wp_assemble thread per output element.
func textGeometry(j *TextJob, p textPacking) (tokenizeBlocks, assembleBlocks int) {
	tokenizeBlocks = (p.Spans + TokenizeBlock - 1) / TokenizeBlock
	assembleBlocks = (len(j.Docs)*j.Width + AssembleBlock - 1) / AssembleBlock
	return tokenizeBlocks, assembleBlocks
}

// finish reads the device's output (out: the int32 ids of every row at
// the device's width, then the row lengths) and the span counts into the
// job's results: the ids widened to int64 when asked, the attention mask
// and the type ids written from each row's length and the tables (the
// device does not send them), rows cut to the longest one with PadLongest.
func (j *TextJob) finish(t *WordPieceTables, out []byte, counts []byte) {
	le := binary.LittleEndian
	rows := len(j.Docs)
	es := 4
	if j.Int64 {
		es = 8
	}
	lengths := out[j.lengthsOffset():]
	j.Lengths = make([]int32, rows)
	j.Over = make([]bool, rows)
	// A row is over when its pieces hold more than Room ids.
	span := 0
	for r := range rows {
		j.Lengths[r] = int32(le.Uint32(lengths[4*r:]))
		total := 0
		if j.Pieces == nil {
			total = int(int32(le.Uint32(counts[4*span:])))
			span++
		} else {
			for _, pc := range j.Pieces[r] {
				if pc.Added >= 0 {
					total++
					continue
				}
				total += int(int32(le.Uint32(counts[4*span:])))
				span++
			}
		}
		j.Over[r] = total > j.Room
	}
	kept, longest := 0, 0
	for r := range rows {
		if j.DropOver && j.Over[r] {
			continue
		}
		kept++
		longest = max(longest, int(j.Lengths[r]))
	}
	w := j.Width
	if j.PadLongest {
		w = longest
	}
	j.Rows, j.OutWidth = kept, w
	// Destination row of each kept row, then the rows, split over the
	// workers.
	dstRow := make([]int, rows)
	at := 0
	for r := range rows {
		dstRow[r] = -1
		if j.DropOver && j.Over[r] {
			continue
		}
		dstRow[r] = at
		at++
	}
	alloc := j.Alloc
	if alloc == nil {
		alloc = func(n int) []byte { return make([]byte, n) }
	}
	ids, mask, types := alloc(kept*w*es), alloc(kept*w*es), alloc(kept*w*es)
	rw := rowWriter{t: t, es: es, w: w, zeroTypes: allTypesZero(t)}
	parallelRanges(rows, j.Workers, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			d := dstRow[r]
			if d < 0 {
				continue
			}
			o := d * w * es
			rw.row(ids[o:o+w*es], mask[o:o+w*es], types[o:o+w*es], out[4*r*j.Width:], int(j.Lengths[r]))
		}
	})
	j.IDs, j.Mask, j.TypeIDs = ids, mask, types
}

// rowWriter writes one row of the three output tensors.
type rowWriter struct {
	t         *WordPieceTables
	es        int  // element size: 4 or 8
	w         int  // output width
	zeroTypes bool // every type id is 0 (BERT's single sequences)
}

// allTypesZero reports whether every token of a single sequence, padding
// included, has type id 0.
func allTypesZero(t *WordPieceTables) bool {
	nonZero := func(v int32) bool { return v != 0 }
	return t.SeqType == 0 && t.PadTypeID == 0 &&
		!slices.ContainsFunc(t.PrefixTypes, nonZero) && !slices.ContainsFunc(t.SuffixTypes, nonZero)
}

// row writes the first w ids of src (int32, from the device) and the mask
// and type ids of a row of n tokens: 1 and the prefix, sequence and suffix
// types for the n tokens, 0 and the pad type after them.
func (rw rowWriter) row(ids, mask, types, src []byte, n int) {
	w := rw.w
	n = min(n, w)
	switch {
	case !nativeLittleEndian:
		rw.rowPortable(ids, mask, src, n)
	case rw.es == 4:
		// The tensors are little-endian, as this machine is: the ids are
		// the device's bytes, the mask is written in whole words.
		copy(ids, src[:4*w])
		fillMask(words[int32](mask, w), n)
	default:
		in, out := words[int32](src, w), words[int64](ids, w)
		for k, v := range in {
			out[k] = int64(v)
		}
		fillMask(words[int64](mask, w), n)
	}
	if rw.zeroTypes {
		clear(types)
		return
	}
	t := rw.t
	np, ns := len(t.Prefix), len(t.Suffix)
	for k := range w {
		v := t.PadTypeID
		switch {
		case k < np && k < n:
			v = t.PrefixTypes[k]
		case k >= n:
		case k >= n-ns:
			v = t.SuffixTypes[k-(n-ns)]
		default:
			v = t.SeqType
		}
		rw.put(types, k, v)
	}
}

// words views the first n elements of b as T (b is T-aligned: the
// tensors are 8-byte aligned, the device's output 4-byte aligned).
func words[T int32 | int64](b []byte, n int) []T {
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// fillMask sets the first n elements of m to 1 and the rest to 0.
func fillMask[T int32 | int64](m []T, n int) {
	for k := range n {
		m[k] = 1
	}
	clear(m[n:])
}

// rowPortable writes the ids and the mask element by element, on a
// big-endian machine.
func (rw rowWriter) rowPortable(ids, mask, src []byte, n int) {
	le := binary.LittleEndian
	for k := range rw.w {
		rw.put(ids, k, int32(le.Uint32(src[4*k:])))
		m := int32(0)
		if k < n {
			m = 1
		}
		rw.put(mask, k, m)
	}
}

// put writes v as element k of a little-endian tensor.
func (rw rowWriter) put(b []byte, k int, v int32) {
	if rw.es == 4 {
		binary.LittleEndian.PutUint32(b[4*k:], uint32(v))
	} else {
		binary.LittleEndian.PutUint64(b[8*k:], uint64(int64(v)))
	}
}

// nativeLittleEndian is true on little-endian machines (amd64, arm64).
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// parallelRanges splits [0, n) into up to workers contiguous ranges and
// runs fn on each in its own goroutine (inline for one), returning when
// all are done. Ranges under 256 items are not split further.
func parallelRanges(n, workers int, fn func(lo, hi int)) {
	workers = min(max(workers, 1), (n+255)/256)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
