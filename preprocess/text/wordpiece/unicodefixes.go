package wordpiece

//go:generate sh -c "./gen_unicode8.py | gofmt > unicode8_gen.go"

// Hugging Face tokenizers classes characters for BERT with the
// unicode_categories crate, whose tables are Unicode 8.0 (measured: every
// code point was compared with the oracle by testdata/sweep), while Go's
// unicode package is Unicode 15.0. So:
//
//   - a code point assigned after 8.0 is, for HF, unassigned: never
//     punctuation, never a format character to drop, never a non-spacing
//     mark to strip (punctAfter8, formatAfter8, markAfter8, generated);
//   - six code points changed category since 8.0 and keep their old one
//     (the exceptions below).
//
// Unassigned code points (Cn) are not dropped by HF's clean_text (its Cn
// table is empty), so they become [UNK]; see isOther.

// runeRange is an inclusive range of code points.
type runeRange struct{ lo, hi rune }

func inRanges(rs []runeRange, r rune) bool {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case r < rs[m].lo:
			hi = m
		case r > rs[m].hi:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

// Category changes since Unicode 8.0, by what HF still does.
var (
	// U+166D CANADIAN SYLLABICS CHI SIGN: Po in 8.0, So now.
	// U+111C9 SHARADA SANDHI MARK: Po in 8.0, Mn now.
	punctOverride = map[rune]bool{0x166D: true, 0x111C9: true}
	// U+1734 HANUNOO SIGN PAMUDPOD: Mn in 8.0, Mc now; U+111C9 as above;
	// U+1885, U+1886 MONGOLIAN LETTER ALI GALI BALUDA, THREE BALUDA: Lo in
	// 8.0, Mn now; U+A9BD JAVANESE CONSONANT SIGN KERET: Mc in 8.0, Mn now.
	mnOverride = map[rune]bool{0x1734: true, 0x111C9: false, 0x1885: false, 0x1886: false, 0xA9BD: false}
)
