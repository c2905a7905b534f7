package wordpiece

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Options are the settings of a BERT tokenizer as tokenizer.json spells them.
type Options struct {
	// BertNormalizer.
	CleanText          bool // drop control characters, map whitespace to a space
	HandleChineseChars bool // put spaces around CJK ideographs
	StripAccents       bool // NFD, then drop non-spacing marks (before lowercasing)
	Lowercase          bool // full Unicode lowercase

	// WordPiece model.
	UnkToken             string // the vocabulary entry used for words that cannot be split; required
	ContinuingPrefix     string // prefix of word-internal pieces, "##" for BERT
	MaxInputCharsPerWord int    // longer words become one UnkToken; HF default 100
}

// Actions: what BERT normalisation does to a code point (bits 0-1 of an entry).
const (
	ActionMap     = 0 // keep it, replaced by its mapping (often itself)
	ActionDrop    = 1 // clean_text removes it (NUL, U+FFFD, control, format, unassigned…)
	ActionSpace   = 2 // clean_text turns it into a space (whitespace)
	ActionIsolate = 3 // handle_chinese_chars surrounds it with spaces; its mapping is still applied
)

// Classes: how the BertPreTokenizer sees a code point (bits 2-3 of an entry).
const (
	ClassOther      = 0 // part of a word
	ClassWhitespace = 1 // splits words and is dropped
	ClassPunct      = 2 // splits words and is a word of its own
)

// Entry layout, one uint32 per code point:
//
//	bits 0-1  action (ActionMap, ActionDrop, ActionSpace, ActionIsolate)
//	bits 2-3  class of the code point itself when it appears in normalised text
//	bits 4-6  n, the length of the mapping in code points (0: removed, as a
//	          lone combining mark is when accents are stripped)
//	bit  7    EntrySame: the code point maps to itself (n == 1, bits 8-31 are 0,
//	          so that pages of such code points are identical and stored once)
//	bits 8-31 n == 1 and not EntrySame: the mapped code point; n >= 2: offset
//	          of the mapping in Tables.Expansions
const (
	entryActionMask = 0x3
	entryClassShift = 2
	entryLenShift   = 4
	entryLenMask    = 0x7
	entryDataShift  = 8

	// EntrySame is set on entries whose code point maps to itself.
	EntrySame = 1 << 7
)

// EntryAction, EntryClass, EntryLen and EntryData read the fields of a
// code-point entry.
func EntryAction(e uint32) int { return int(e & entryActionMask) }
func EntryClass(e uint32) int  { return int(e>>entryClassShift) & 3 }
func EntryLen(e uint32) int    { return int(e>>entryLenShift) & entryLenMask }
func EntryData(e uint32) int   { return int(e >> entryDataShift) }

// PageBits is log2 of the number of code points per page of the code-point table.
const PageBits = 8

// MaxRune is one past the largest code point.
const MaxRune = 0x110000

// Tables are the normalisation and vocabulary tables of one BERT tokenizer.
// They are immutable after construction and safe to share.
//
// Code-point table: the entry of code point r is
//
//	Pages[int(PageIndex[r>>PageBits])<<PageBits | int(r)&(1<<PageBits-1)]
//
// PageIndex has MaxRune>>PageBits entries; identical pages are stored once.
// Mappings of two or more code points are Expansions[data : data+n].
//
// Vocabulary: entry e (0 <= e < len(EntryIDs)) has key bytes
// KeyBytes[KeyOffsets[e]:KeyOffsets[e+1]] and token id EntryIDs[e]. Slots
// has a power-of-two length; a slot holds e+1, or 0 when empty. A key is
// looked up at slot Hash(key) & (len(Slots)-1) and the following slots in
// order (linear probing) until it or an empty slot is found. Hash is 32-bit
// FNV-1a; continuation pieces are looked up as ContinuingPrefix+piece, so
// their hash starts from PrefixHash.
type Tables struct {
	Options Options

	PageIndex  []uint16
	Pages      []uint32
	Expansions []rune

	Slots      []uint32
	KeyOffsets []uint32
	KeyBytes   []byte
	EntryIDs   []int32
	PrefixHash uint32 // FNV-1a state after hashing Options.ContinuingPrefix
	MaxKeyLen  int    // longest key in bytes
	UnkID      int32

	ascii [128]uint32
}

// FNV-1a constants.
const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// Hash is the FNV-1a hash of b continued from state h (use HashInit for a fresh key).
func Hash(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}

// HashInit is the FNV-1a offset basis: the state before any byte.
const HashInit uint32 = fnvOffset

// ErrNoUnk is returned when the unknown token is missing from the vocabulary.
var ErrNoUnk = errors.New("wordpiece: unk_token is not in the vocabulary")

// NewTables builds the tables for a vocabulary (token → id) and options.
func NewTables(vocab map[string]int, opt Options) (*Tables, error) {
	if opt.MaxInputCharsPerWord <= 0 {
		return nil, fmt.Errorf("wordpiece: max_input_chars_per_word must be positive, got %d", opt.MaxInputCharsPerWord)
	}
	unk, ok := vocab[opt.UnkToken]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoUnk, opt.UnkToken)
	}
	cp := codePointTables(opt)
	t := &Tables{Options: opt, PageIndex: cp.pageIndex, Pages: cp.pages, Expansions: cp.expansions, UnkID: int32(unk)}
	for r := range t.ascii {
		t.ascii[r] = t.Entry(rune(r))
	}

	keys := make([]string, 0, len(vocab))
	for k := range vocab {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return vocab[keys[i]] < vocab[keys[j]] })
	n := len(keys)
	size := 1
	for size < 2*n+1 {
		size <<= 1
	}
	t.Slots = make([]uint32, size)
	t.KeyOffsets = make([]uint32, n+1)
	t.EntryIDs = make([]int32, n)
	mask := uint32(size - 1)
	for e, k := range keys {
		id := vocab[k]
		if id < 0 || id > 1<<31-1 {
			return nil, fmt.Errorf("wordpiece: token %q has id %d outside 0..2^31-1", k, id)
		}
		t.EntryIDs[e] = int32(id)
		t.KeyBytes = append(t.KeyBytes, k...)
		t.KeyOffsets[e+1] = uint32(len(t.KeyBytes))
		t.MaxKeyLen = max(t.MaxKeyLen, len(k))
		s := Hash(HashInit, []byte(k)) & mask
		for t.Slots[s] != 0 {
			s = (s + 1) & mask
		}
		t.Slots[s] = uint32(e + 1)
	}
	t.PrefixHash = Hash(HashInit, []byte(opt.ContinuingPrefix))
	return t, nil
}

// Mapping appends to dst what normalisation maps r to (nothing when it is
// removed). Actions are not applied: a dropped code point still has a
// mapping.
func (t *Tables) Mapping(dst []rune, r rune) []rune {
	e := t.Entry(r)
	switch n := EntryLen(e); {
	case e&EntrySame != 0:
		return append(dst, r)
	case n == 1:
		return append(dst, rune(EntryData(e)))
	default:
		return append(dst, t.Expansions[EntryData(e):EntryData(e)+n]...)
	}
}

// Entry is the code-point table entry of r; r must be a valid code point.
func (t *Tables) Entry(r rune) uint32 {
	return t.Pages[int(t.PageIndex[r>>PageBits])<<PageBits|int(r)&(1<<PageBits-1)]
}

// Lookup finds the id of piece (with the continuing prefix in front when cont
// is true), given h, the hash of the looked-up key. It reports false when
// the key is not in the vocabulary.
func (t *Tables) Lookup(cont bool, piece []byte, h uint32) (int32, bool) {
	mask := uint32(len(t.Slots) - 1)
	pre := t.Options.ContinuingPrefix
	want := len(piece)
	if cont {
		want += len(pre)
	}
	for s := h & mask; ; s = (s + 1) & mask {
		v := t.Slots[s]
		if v == 0 {
			return 0, false
		}
		e := v - 1
		key := t.KeyBytes[t.KeyOffsets[e]:t.KeyOffsets[e+1]]
		if len(key) != want {
			continue
		}
		if cont {
			if string(key[:len(pre)]) != pre {
				continue
			}
			key = key[len(pre):]
		}
		if string(key) == string(piece) {
			return t.EntryIDs[e], true
		}
	}
}

// codePoint holds the code-point part of Tables, shared by every tokenizer
// with the same normaliser settings.
type codePoint struct {
	pageIndex  []uint16
	pages      []uint32
	expansions []rune
}

type normKey struct{ clean, chinese, strip, lower bool }

var codePointCache sync.Map // normKey → *codePoint

func codePointTables(opt Options) *codePoint {
	k := normKey{opt.CleanText, opt.HandleChineseChars, opt.StripAccents, opt.Lowercase}
	if v, ok := codePointCache.Load(k); ok {
		return v.(*codePoint)
	}
	v, _ := codePointCache.LoadOrStore(k, buildCodePoints(k))
	return v.(*codePoint)
}

func buildCodePoints(k normKey) *codePoint {
	cp := &codePoint{pageIndex: make([]uint16, MaxRune>>PageBits)}
	seen := map[[1 << PageBits]uint32]uint16{}
	expIndex := map[string]int{}
	var page [1 << PageBits]uint32
	var buf []rune
	var scratch [utf8.UTFMax]byte
	for p := range cp.pageIndex {
		for i := range page {
			r := rune(p<<PageBits | i)
			buf = mapping(buf[:0], r, k, &scratch)
			e := uint32(actionOf(r, k)) | uint32(classOf(r))<<entryClassShift | uint32(len(buf))<<entryLenShift
			switch {
			case len(buf) == 1 && buf[0] == r:
				e |= EntrySame
			case len(buf) == 1:
				e |= uint32(buf[0]) << entryDataShift
			case len(buf) >= 2:
				s := string(buf)
				off, ok := expIndex[s]
				if !ok {
					off = len(cp.expansions)
					cp.expansions = append(cp.expansions, buf...)
					expIndex[s] = off
				}
				e |= uint32(off) << entryDataShift
			}
			page[i] = e
		}
		idx, ok := seen[page]
		if !ok {
			idx = uint16(len(cp.pages) >> PageBits)
			cp.pages = append(cp.pages, page[:]...)
			seen[page] = idx
		}
		cp.pageIndex[p] = idx
	}
	return cp
}

// isChinese reports the CJK ideograph ranges of BERT's handle_chinese_chars.
func isChinese(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF, r >= 0x3400 && r <= 0x4DBF, r >= 0x20000 && r <= 0x2A6DF,
		r >= 0x2A700 && r <= 0x2B73F, r >= 0x2B740 && r <= 0x2B81F, r >= 0x2B920 && r <= 0x2CEAF,
		r >= 0xF900 && r <= 0xFAFF, r >= 0x2F800 && r <= 0x2FA1F:
		return true
	}
	return false
}

// isWhitespace is Rust's char::is_whitespace (the White_Space property),
// which HF uses for clean_text and for splitting.
func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isOther is HF's is_control test beyond \t \n \r: Unicode Cc, Cf, Cs and
// Co, as of Unicode 8.0 (see unicodefixes.go). Unassigned code points (Cn)
// are not included: HF's table for them is empty (measured with
// testdata/sweep), so they survive as [UNK].
func isOther(r rune) bool {
	if inRanges(formatAfter8, r) {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r)
}

// isPunct is BERT's punctuation: ASCII punctuation or Unicode P*.
func isPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	if v, ok := punctOverride[r]; ok {
		return v
	}
	return unicode.IsPunct(r) && !inRanges(punctAfter8, r)
}

func actionOf(r rune, k normKey) int {
	if k.clean {
		if r == 0 || r == 0xFFFD || (r != '\t' && r != '\n' && r != '\r' && isOther(r)) {
			return ActionDrop
		}
		if isWhitespace(r) {
			return ActionSpace
		}
	}
	if k.chinese && isChinese(r) {
		return ActionIsolate
	}
	return ActionMap
}

func classOf(r rune) int {
	switch {
	case isWhitespace(r):
		return ClassWhitespace
	case isPunct(r):
		return ClassPunct
	}
	return ClassOther
}

// mapping appends what strip_accents and lowercase make of r.
func mapping(dst []rune, r rune, k normKey, b *[utf8.UTFMax]byte) []rune {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(dst, r) // never reached from valid UTF-8
	}
	start := len(dst)
	if k.strip {
		n := utf8.EncodeRune(b[:], r)
		if norm.NFD.IsNormal(b[:n]) { // no decomposition: the common case
			if !isMn(r) {
				dst = append(dst, r)
			}
		} else {
			for _, d := range norm.NFD.String(string(b[:n])) {
				if !isMn(d) {
					dst = append(dst, d)
				}
			}
		}
	} else {
		dst = append(dst, r)
	}
	if k.lower {
		for i := start; i < len(dst); i++ {
			if dst[i] == 0x130 { // İ: the only unconditional multi-code-point lowercase mapping
				dst = slices.Insert(dst, i+1, 0x307)
				dst[i] = 'i'
				i++
				continue
			}
			dst[i] = unicode.ToLower(dst[i])
		}
	}
	return dst
}

func isMn(r rune) bool {
	if v, ok := mnOverride[r]; ok {
		return v
	}
	return unicode.Is(unicode.Mn, r) && !inRanges(markAfter8, r)
}
