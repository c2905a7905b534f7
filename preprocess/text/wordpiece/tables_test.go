package wordpiece

import (
	"slices"
	"strings"
	"testing"
)

func testVocab() map[string]int {
	v := map[string]int{}
	for i, w := range []string{"[UNK]", "a", "##a", "un", "##aff", "##able", "affable", "!", "e", "i", "##e", "中", "x", "##x"} {
		v[w] = i
	}
	return v
}

var uncased = Options{CleanText: true, HandleChineseChars: true, StripAccents: true, Lowercase: true,
	UnkToken: "[UNK]", ContinuingPrefix: "##", MaxInputCharsPerWord: 100}

func TestTablesLookupEveryEntry(t *testing.T) {
	v := testVocab()
	tb, err := NewTables(v, uncased)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Slots)&(len(tb.Slots)-1) != 0 || len(tb.Slots) < 2*len(v) {
		t.Fatalf("slots %d for %d entries: want a power of two at least twice as large", len(tb.Slots), len(v))
	}
	for k, id := range v {
		cont := strings.HasPrefix(k, "##")
		piece := strings.TrimPrefix(k, "##")
		h := Hash(HashInit, []byte(piece))
		if cont {
			h = Hash(tb.PrefixHash, []byte(piece))
		}
		got, ok := tb.Lookup(cont, []byte(piece), h)
		if !ok || got != int32(id) {
			t.Errorf("%q: got %d %v, want %d", k, got, ok, id)
		}
	}
	for _, k := range []string{"b", "aa", "affab", "##"} {
		if _, ok := tb.Lookup(false, []byte(k), Hash(HashInit, []byte(k))); ok {
			t.Errorf("%q found, want absent", k)
		}
	}
}

func TestCodePointEntries(t *testing.T) {
	tb, err := NewTables(testVocab(), uncased)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		r       rune
		action  int
		class   int
		mapping []rune
	}{
		{"ascii upper", 'A', ActionMap, ClassOther, []rune{'a'}},
		{"ascii punct dollar", '$', ActionMap, ClassPunct, []rune{'$'}},
		{"e acute stripped", 'é', ActionMap, ClassOther, []rune{'e'}},
		{"dotted capital I", 'İ', ActionMap, ClassOther, []rune{'i'}},
		{"sharp s capital", 'ẞ', ActionMap, ClassOther, []rune{'ß'}},
		{"hangul syllable decomposes", '각', ActionMap, ClassOther, []rune{0x1100, 0x1161, 0x11A8}},
		{"lone combining acute", 0x301, ActionMap, ClassOther, nil},
		{"nbsp", 0xA0, ActionSpace, ClassWhitespace, []rune{0xA0}},
		{"ideographic space", 0x3000, ActionSpace, ClassWhitespace, []rune{0x3000}},
		{"tab", '\t', ActionSpace, ClassWhitespace, []rune{'\t'}},
		{"nul", 0, ActionDrop, ClassOther, []rune{0}},
		{"bom", 0xFEFF, ActionDrop, ClassOther, []rune{0xFEFF}},
		{"replacement char", 0xFFFD, ActionDrop, ClassOther, []rune{0xFFFD}},
		{"private use", 0xE000, ActionDrop, ClassOther, []rune{0xE000}},
		{"unassigned kept", 0x378, ActionMap, ClassOther, []rune{0x378}},
		{"next line is a control", 0x85, ActionDrop, ClassWhitespace, []rune{0x85}},
		{"cjk", '中', ActionIsolate, ClassOther, []rune{'中'}},
		{"cjk compatibility", 0xF900, ActionIsolate, ClassOther, []rune{0x8C48}},
		{"hiragana not isolated", 'あ', ActionMap, ClassOther, []rune{'あ'}},
		{"euro sign not punct", '€', ActionMap, ClassOther, []rune{'€'}},
		{"new punctuation (Unicode 14) is not punct for HF", 0x61D, ActionMap, ClassOther, []rune{0x61D}},
		{"old punctuation kept", 0x166D, ActionMap, ClassPunct, []rune{0x166D}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := tb.Entry(c.r)
			m := tb.Mapping(nil, c.r)
			if EntryAction(e) != c.action || EntryClass(e) != c.class || !slices.Equal(m, c.mapping) {
				t.Fatalf("U+%04X: action %d class %d mapping %U; want %d %d %U", c.r, EntryAction(e), EntryClass(e), m, c.action, c.class, c.mapping)
			}
		})
	}
}

func TestIdenticalPagesStoredOnce(t *testing.T) {
	tb, err := NewTables(testVocab(), uncased)
	if err != nil {
		t.Fatal(err)
	}
	// Planes 4-13 are unassigned: one page serves them all.
	if a, b := tb.PageIndex[0x40000>>PageBits], tb.PageIndex[0xDFF00>>PageBits]; a != b {
		t.Fatalf("unassigned pages %d and %d differ", a, b)
	}
	if pages := len(tb.Pages) >> PageBits; pages > 1000 {
		t.Fatalf("%d distinct pages of %d", pages, len(tb.PageIndex))
	}
}

func TestEncodeWords(t *testing.T) {
	tb, err := NewTables(testVocab(), uncased)
	if err != nil {
		t.Fatal(err)
	}
	e := tb.NewEncoder()
	cases := []struct {
		name string
		in   string
		want []int32
	}{
		{"greedy longest", "unaffable", []int32{3, 4, 5}},
		{"whole word", "affable", []int32{6}},
		{"punct splits", "a!a", []int32{1, 7, 1}},
		{"unmatched piece is one unk", "unaffablez", []int32{0}},
		{"cjk isolated", "a中a", []int32{1, 11, 1}},
		{"accent stripped and lowered", "ÉÉ", []int32{8, 10}},
		{"dropped control joins", "a\u200ba", []int32{1, 2}},
		{"100 chars", strings.Repeat("x", 100), slices.Repeat([]int32{13}, 100)[:100]},
		{"101 chars is unk", strings.Repeat("x", 101), []int32{0}},
		{"empty", "", nil},
	}
	cases[7].want[0] = 12
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.Encode(nil, c.in, 0)
			if !slices.Equal(got, c.want) {
				t.Fatalf("%q: got %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestNewTablesErrors(t *testing.T) {
	o := uncased
	o.UnkToken = "<missing>"
	if _, err := NewTables(testVocab(), o); err == nil || !strings.Contains(err.Error(), "<missing>") {
		t.Fatalf("missing unk: %v", err)
	}
	o = uncased
	o.MaxInputCharsPerWord = 0
	if _, err := NewTables(testVocab(), o); err == nil {
		t.Fatal("max_input_chars_per_word 0 accepted")
	}
}
