package bpe

import (
	"fmt"
	"unicode/utf8"
)

// Model is a byte-level BPE vocabulary and merge list. It is immutable
// after NewModel and safe to share between goroutines.
type Model struct {
	byteIDs [256]int32       // id of each single byte
	merges  map[uint64]merge // (left id, right id) → merge
	size    int
}

type merge struct {
	rank int32 // position in the merge list: lower merges first
	id   int32 // id of the merged token
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// ByteToRune is GPT-2's byte→code point map that makes every byte a
// printable character in vocabulary files: printable Latin-1 bytes map to
// themselves, the others to 256, 257, … in byte order.
func ByteToRune() [256]rune {
	var m [256]rune
	n := rune(256)
	for b := 0; b < 256; b++ {
		if b >= 33 && b <= 126 || b >= 161 && b <= 172 || b >= 174 {
			m[b] = rune(b)
		} else {
			m[b] = n
			n++
		}
	}
	return m
}

// decodeToken turns a vocabulary string in the byte-level alphabet back
// into the bytes it stands for.
func decodeToken(s string, inv map[rune]byte) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := inv[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// NewModel builds a model from tokenizer.json's vocabulary (in the
// byte-level alphabet) and merges (pairs of vocabulary strings, highest
// priority first).
func NewModel(vocab map[string]int, merges [][2]string) (*Model, error) {
	inv := map[rune]byte{}
	for b, r := range ByteToRune() {
		inv[r] = byte(b)
	}
	m := &Model{merges: make(map[uint64]merge, len(merges)), size: len(vocab)}
	for i := range m.byteIDs {
		m.byteIDs[i] = -1
	}
	for tok, id := range vocab {
		if id < 0 || id > 1<<31-1 {
			return nil, fmt.Errorf("bpe: token %q has id %d outside 0..2^31-1", tok, id)
		}
		if utf8.RuneCountInString(tok) == 1 {
			if b, ok := decodeToken(tok, inv); ok {
				m.byteIDs[b[0]] = int32(id)
			}
		}
	}
	for b, id := range m.byteIDs {
		if id < 0 {
			return nil, fmt.Errorf("bpe: byte 0x%02x (%q) has no vocabulary entry", b, ByteToRune()[b])
		}
	}
	for rank, p := range merges {
		a, ok1 := vocab[p[0]]
		b, ok2 := vocab[p[1]]
		c, ok3 := vocab[p[0]+p[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("bpe: merge %d (%q %q) uses a token missing from the vocabulary", rank, p[0], p[1])
		}
		// A pair listed twice keeps its last rank, as Hugging Face's map does.
		m.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(rank), id: int32(c)}
	}
	return m, nil
}

// VocabSize is the number of vocabulary entries.
func (m *Model) VocabSize() int { return m.size }
