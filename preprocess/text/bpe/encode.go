package bpe

import (
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// DefaultCacheSize is the number of words an Encoder remembers before it
// starts over (Hugging Face keeps 10,000; a multilingual stream has more
// distinct words than that, and an entry costs about 60 bytes).
const DefaultCacheSize = 32768

// maxCachedWord is the longest word (bytes) kept in the cache.
const maxCachedWord = 256

// Encoder tokenises text with a Model. It holds scratch buffers and a
// cache, so one Encoder must not be used by two goroutines at once.
type Encoder struct {
	m       *Model
	syms    []symbol
	heap    []candidate
	cache   map[string]cached
	arena   []int32 // backing store of cached ids
	keys    []byte  // backing store of cached words (the map's keys point into it)
	maxSize int
}

type cached struct{ off, n int32 }

type symbol struct {
	id         int32
	prev, next int32 // neighbours, -1 at the ends
	gone       bool  // merged into its left neighbour
}

type candidate struct {
	rank, pos, id int32
}

// NewEncoder returns an Encoder whose cache holds at most cacheSize words
// (0: DefaultCacheSize; negative: no cache).
func (m *Model) NewEncoder(cacheSize int) *Encoder {
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	e := &Encoder{m: m, maxSize: cacheSize}
	if cacheSize > 0 {
		e.cache = make(map[string]cached, cacheSize)
	}
	return e
}

// CacheLen is the number of words in the cache.
func (e *Encoder) CacheLen() int { return len(e.cache) }

// Encode appends to dst the ids of s (bytes are tokenised as they are;
// callers make s valid UTF-8 first if they need Hugging Face's ids for
// invalid input). When limit > 0 it stops after the first pre-tokenised
// piece that brings the count of appended ids to limit or more.
func (e *Encoder) Encode(dst []int32, s string, limit int) []int32 {
	base := len(dst)
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		dst = e.word(dst, s[i:j])
		i = j
		if limit > 0 && len(dst)-base >= limit {
			break
		}
	}
	return dst
}

// word appends the ids of one pre-tokenised piece.
func (e *Encoder) word(dst []int32, w string) []int32 {
	if len(w) == 1 {
		return append(dst, e.m.byteIDs[w[0]])
	}
	useCache := e.cache != nil && len(w) <= maxCachedWord
	if useCache {
		if c, ok := e.cache[w]; ok {
			return append(dst, e.arena[c.off:c.off+c.n]...)
		}
	}
	start := len(dst)
	dst = e.merge(dst, w)
	if useCache {
		if len(e.cache) >= e.maxSize {
			// Start over. Reusing the key store is safe: no key points into it
			// once the map is empty.
			clear(e.cache)
			e.arena = e.arena[:0]
			e.keys = e.keys[:0]
		}
		off := len(e.arena)
		e.arena = append(e.arena, dst[start:]...)
		// The key lives in e.keys; if append moves e.keys, older keys keep
		// the old array alive, and it is never written again.
		k := len(e.keys)
		e.keys = append(e.keys, w...)
		key := unsafe.String(&e.keys[k], len(w))
		e.cache[key] = cached{off: int32(off), n: int32(len(dst) - start)}
	}
	return dst
}

// merge runs BPE over the bytes of w: starting from one symbol per byte,
// repeatedly merge the adjacent pair with the lowest merge rank, the
// leftmost among equal ranks, until no adjacent pair has a merge. Stale heap
// entries are recognised as Hugging Face recognises them (the pair now at
// the position no longer makes the same token) and skipped.
func (e *Encoder) merge(dst []int32, w string) []int32 {
	m := e.m
	syms := e.syms[:0]
	for i := 0; i < len(w); i++ {
		syms = append(syms, symbol{id: m.byteIDs[w[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	syms[len(syms)-1].next = -1
	h := e.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = heapPush(h, candidate{rank: mg.rank, pos: int32(i), id: mg.id})
		}
	}
	for len(h) > 0 {
		var top candidate
		top, h = heapPop(h)
		s := &syms[top.pos]
		if s.gone || s.next < 0 {
			continue
		}
		nextPos := s.next
		right := syms[nextPos]
		if mg, ok := m.merges[pairKey(s.id, right.id)]; !ok || mg.id != top.id {
			continue
		}
		s.id = top.id
		s.next = right.next
		syms[nextPos].gone = true
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if s.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				h = heapPush(h, candidate{rank: mg.rank, pos: s.prev, id: mg.id})
			}
		}
		if s.next >= 0 {
			if mg, ok := m.merges[pairKey(s.id, syms[s.next].id)]; ok {
				h = heapPush(h, candidate{rank: mg.rank, pos: top.pos, id: mg.id})
			}
		}
	}
	for i := 0; i >= 0; i = int(syms[i].next) {
		dst = append(dst, syms[i].id)
	}
	e.syms, e.heap = syms, h
	return dst
}

func less(a, b candidate) bool { return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos }

func heapPush(h []candidate, c candidate) []candidate {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []candidate) (candidate, []candidate) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			c = r
		}
		if !less(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}

// Character classes of GPT-2's split expression (Oniguruma's \p{L}, \p{N}
// and \s).
const (
	clsOther = iota
	clsLetter
	clsNumber
	clsSpace
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		t[c] = uint8(classOfRune(rune(c)))
	}
	return
}()

func classOfRune(r rune) int {
	switch {
	case isSpace(r):
		return clsSpace
	case isLetter(r):
		return clsLetter
	case isNumber(r):
		return clsNumber
	}
	return clsOther
}

func isSpace(r rune) bool  { return unicode.IsSpace(r) }
func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }

// classAt is the class of the code point at s[i] and its length in bytes.
func classAt(s string, i int) (int, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return int(asciiClass[c]), 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classOfRune(r), n
}

// run returns the end of the run of code points of class cls starting at i.
func run(s string, i, cls int) int {
	for i < len(s) {
		c, n := classAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// nextPiece returns the end of the piece that GPT-2's expression
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matches at s[i:] (i < len(s)); the alternatives are tried in order, as a
// backtracking engine does.
func nextPiece(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		j = i + 1 // " ?" takes the space when what follows matches
	}
	cls, n := classAt(s, j)
	if j > i && cls == clsSpace {
		j, cls, n = i, clsSpace, 1 // the space starts a whitespace run instead
	}
	switch cls {
	case clsLetter, clsNumber, clsOther:
		return run(s, j+n, cls)
	}
	// Whitespace: \s+(?!\S) takes the run but leaves its last code point
	// when a non-space follows; \s+ then takes a run of one.
	end := i
	last := i
	for end < len(s) {
		c, n := classAt(s, end)
		if c != clsSpace {
			break
		}
		last = end
		end += n
	}
	if end == len(s) || last == i {
		return end
	}
	return last
}
