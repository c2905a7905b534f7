package wordpiece

import (
	"unicode/utf8"
)

// Encoder tokenises text with a Tables. It holds scratch buffers, so one
// Encoder must not be used by two goroutines at once; make one per goroutine.
type Encoder struct {
	t      *Tables
	word   []byte // the current word, normalised, UTF-8
	nchars int    // code points in word
	hashes []uint32
}

// NewEncoder returns an Encoder over t.
func (t *Tables) NewEncoder() *Encoder {
	return &Encoder{t: t, word: make([]byte, 0, 64), hashes: make([]uint32, t.MaxKeyLen+1)}
}

// Encode appends to dst the token ids of s (valid UTF-8; invalid bytes are
// read as U+FFFD, which normalisation drops) and returns the extended slice.
// When limit > 0 it stops at the first word boundary at which at least limit
// ids have been appended (the ids of truncated output are unchanged by this).
func (e *Encoder) Encode(dst []int32, s string, limit int) []int32 {
	t := e.t
	base := len(dst)
	e.word = e.word[:0]
	e.nchars = 0
	for i := 0; i < len(s); {
		var ent uint32
		var r rune
		if c := s[i]; c < utf8.RuneSelf {
			r = rune(c)
			ent = t.ascii[c]
			i++
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(s[i:])
			i += size
			ent = t.Entry(r)
		}
		switch EntryAction(ent) {
		case ActionDrop:
			continue
		case ActionSpace:
			dst = e.flush(dst)
		case ActionIsolate:
			dst = e.flush(dst)
			dst = e.appendMapped(dst, r, ent)
			dst = e.flush(dst)
		default:
			// Fast path: the code point maps to itself.
			if ent&EntrySame != 0 {
				dst = e.addRune(dst, r, EntryClass(ent))
			} else {
				dst = e.appendMapped(dst, r, ent)
			}
		}
		if limit > 0 && len(dst)-base >= limit && e.nchars == 0 {
			return dst
		}
	}
	return e.flush(dst)
}

// appendMapped feeds the mapping of r (entry ent) to the pre-tokeniser.
func (e *Encoder) appendMapped(dst []int32, r rune, ent uint32) []int32 {
	t := e.t
	switch n := EntryLen(ent); {
	case ent&EntrySame != 0:
		dst = e.addRune(dst, r, EntryClass(ent))
	case n == 0:
	case n == 1:
		m := rune(EntryData(ent))
		dst = e.addRune(dst, m, EntryClass(t.Entry(m)))
	default:
		off := EntryData(ent)
		for _, m := range t.Expansions[off : off+n] {
			dst = e.addRune(dst, m, EntryClass(t.Entry(m)))
		}
	}
	return dst
}

// addRune feeds one normalised code point of class cls to the pre-tokeniser.
func (e *Encoder) addRune(dst []int32, r rune, cls int) []int32 {
	switch cls {
	case ClassWhitespace:
		return e.flush(dst)
	case ClassPunct:
		dst = e.flush(dst)
		e.word = utf8.AppendRune(e.word, r)
		e.nchars = 1
		return e.flush(dst)
	}
	if r < utf8.RuneSelf {
		e.word = append(e.word, byte(r))
	} else {
		e.word = utf8.AppendRune(e.word, r)
	}
	e.nchars++
	return dst
}

// flush runs WordPiece on the current word and appends its ids.
func (e *Encoder) flush(dst []int32) []int32 {
	if len(e.word) == 0 {
		return dst
	}
	dst = e.wordPiece(dst, e.word, e.nchars)
	e.word = e.word[:0]
	e.nchars = 0
	return dst
}

// wordPiece is greedy longest-match-first: from the start of the word, the
// longest vocabulary entry that is a prefix of the rest (with the continuing
// prefix after the first piece); a word with a part that matches nothing, or
// longer than MaxInputCharsPerWord code points, is one unknown token.
func (e *Encoder) wordPiece(dst []int32, w []byte, nchars int) []int32 {
	t := e.t
	if nchars > t.Options.MaxInputCharsPerWord {
		return append(dst, t.UnkID)
	}
	mark := len(dst)
	hs := e.hashes
	for start := 0; start < len(w); {
		cont := start > 0
		h := uint32(HashInit)
		if cont {
			h = t.PrefixHash
		}
		end := min(len(w), start+t.MaxKeyLen)
		// Hash every prefix of w[start:end] once.
		hs[0] = h
		for k := start; k < end; k++ {
			h ^= uint32(w[k])
			h *= fnvPrime
			hs[k-start+1] = h
		}
		// Back off to a code point boundary.
		for end < len(w) && end > start && !utf8.RuneStart(w[end]) {
			end--
		}
		found := false
		for end > start {
			if id, ok := t.Lookup(cont, w[start:end], hs[end-start]); ok {
				dst = append(dst, id)
				found = true
				break
			}
			end--
			for end > start && !utf8.RuneStart(w[end]) {
				end--
			}
		}
		if !found {
			return append(dst[:mark], t.UnkID)
		}
		start = end
	}
	return dst
}
