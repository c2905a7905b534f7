package text

import "unicode/utf8"

// replacement is U+FFFD in UTF-8.
const replacement = "\uFFFD"

// firstInvalid returns the offset of the first byte of s that is not part
// of a valid UTF-8 sequence, or -1 when s is valid.
func firstInvalid(s []byte) int {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// appendReplacingInvalid appends s to dst with every maximal invalid
// subsequence replaced by U+FFFD: a lead byte and the continuation bytes
// that could still have completed it count as one subsequence, any other
// bad byte as one. This is Python's errors="replace" and the WHATWG
// decoder's behaviour.
func appendReplacingInvalid(dst []byte, s []byte) []byte {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			dst = append(dst, b)
			i++
			continue
		}
		if r, n := utf8.DecodeRune(s[i:]); r != utf8.RuneError || n > 1 {
			dst = append(dst, s[i:i+n]...)
			i += n
			continue
		}
		// Invalid: how many bytes form the maximal prefix of a valid sequence?
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case b >= 0xC2 && b <= 0xDF:
			need = 1
		case b == 0xE0:
			need, lo = 2, 0xA0
		case b >= 0xE1 && b <= 0xEC, b == 0xEE, b == 0xEF:
			need = 2
		case b == 0xED:
			need, hi = 2, 0x9F
		case b == 0xF0:
			need, lo = 3, 0x90
		case b >= 0xF1 && b <= 0xF3:
			need = 3
		case b == 0xF4:
			need, hi = 3, 0x8F
		}
		j := i + 1
		for k := 0; k < need && j < len(s); k++ {
			c := s[j]
			if k > 0 {
				lo, hi = 0x80, 0xBF
			}
			if c < lo || c > hi {
				break
			}
			j++
		}
		dst = append(dst, replacement...)
		i = j
	}
	return dst
}
