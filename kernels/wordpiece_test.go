package kernels

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestWordPiecePTXMatchesLauncher checks the committed wordpiece.ptx: it
// is marked generated, targets sm_75, and its two entry points take the
// parameters, in the order and widths, that wordpiece_cuda.go passes.
func TestWordPiecePTXMatchesLauncher(t *testing.T) {
	b, err := os.ReadFile("wordpiece.ptx")
	if err != nil {
		t.Fatal(err)
	}
	ptx := string(b)
	first, _, _ := strings.Cut(ptx, "\n")
	if !strings.HasPrefix(first, "// Code generated ") || !strings.HasSuffix(first, "DO NOT EDIT.") {
		t.Errorf("first line %q is not a generated-code marker", first)
	}
	if !strings.Contains(ptx, ".target sm_75") {
		t.Error("PTX does not target sm_75 (compute_75)")
	}
	for _, c := range []struct{ entry, want string }{
		// tables, batch, spans_off, nspans, cap, ids, counts
		{"wp_tokenize", "u64 u64 u64 u32 u32 u64 u64"},
		// tables, batch, rows_off, pieces_off, nrows, width, room, ids, counts, cap, out, lengths
		{"wp_assemble", "u64 u64 u64 u64 u32 u32 u32 u64 u64 u32 u64 u64"},
	} {
		entry := regexp.MustCompile(`(?s)\.entry ` + c.entry + `\((.*?)\)`).FindStringSubmatch(ptx)
		if entry == nil {
			t.Errorf("no .entry %s in the PTX", c.entry)
			continue
		}
		var types []string
		for _, m := range regexp.MustCompile(`\.param \.(\w+) `).FindAllStringSubmatch(entry[1], -1) {
			types = append(types, m[1])
		}
		if got := strings.Join(types, " "); got != c.want {
			t.Errorf("%s parameters %q, want %q", c.entry, got, c.want)
		}
	}
}

// validTables is a minimal valid set of tables: every code point maps to
// itself, a vocabulary of "a" (id 5) and "[UNK]" (id 1).
func validTables() *WordPieceTables {
	t := &WordPieceTables{
		PageIndex:        make([]uint16, 0x110000>>8),
		Pages:            make([]uint32, 256),
		Slots:            make([]uint32, 8),
		KeyOffsets:       []uint32{0, 1, 6},
		KeyBytes:         []byte("a[UNK]"),
		EntryIDs:         []int32{5, 1},
		ContinuingPrefix: "##",
		MaxKeyLen:        5,
		MaxInputChars:    100,
		UnkID:            1,
	}
	for i := range t.Pages {
		t.Pages[i] = 0x80 | 1<<4
	}
	t.Slots[1], t.Slots[4] = 1, 2
	return t
}

func TestWordPieceTablesValidate(t *testing.T) {
	if err := validTables().Validate(); err != nil {
		t.Fatalf("valid tables: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*WordPieceTables)
		want   string
		limit  bool // beyond a kernel limit: wraps ErrWordPieceLimit
	}{
		{"short page index", func(t *WordPieceTables) { t.PageIndex = t.PageIndex[:10] }, "page index has 10 entries", false},
		{"page out of range", func(t *WordPieceTables) { t.PageIndex[3] = 1 }, "names page 1 of 1", false},
		{"slots not a power of two", func(t *WordPieceTables) { t.Slots = make([]uint32, 6) }, "not a power of two", false},
		{"full hash table", func(t *WordPieceTables) { t.Slots = []uint32{1, 2} }, "no empty slot", false},
		{"slot past the entries", func(t *WordPieceTables) { t.Slots[0] = 9 }, "names entry 8 of 2", false},
		{"key offsets past the bytes", func(t *WordPieceTables) { t.KeyOffsets[2] = 60 }, "key bytes [1, 60) of 6", false},
		{"expansion past the end", func(t *WordPieceTables) { t.Pages[7] = 2<<4 | 3<<8 }, "expands to [3, 5) of 0", false},
		{"mapping not a code point", func(t *WordPieceTables) { t.Pages[7] = 1<<4 | 0x110000<<8 }, "not a code point", false},
		{"max chars not positive", func(t *WordPieceTables) { t.MaxInputChars = 0 }, "max_input_chars_per_word 0", false},
		{"max chars over the kernel's", func(t *WordPieceTables) { t.MaxInputChars = 300 }, "max_input_chars_per_word 300 is outside the kernel's 1..256", true},
		{"empty vocabulary", func(t *WordPieceTables) { t.MaxKeyLen = 0 }, "0 bytes", false},
		{"key longer than the kernel's", func(t *WordPieceTables) { t.MaxKeyLen = 200 }, "200 bytes is outside the kernel's 1..128", true},
		{"too many specials", func(t *WordPieceTables) { t.Prefix = make([]int32, 9); t.PrefixTypes = make([]int32, 9) }, "9 special tokens", true},
		{"too many specials after", func(t *WordPieceTables) { t.Suffix = make([]int32, 9); t.SuffixTypes = make([]int32, 9) }, "9 after", true},
		{"types missing", func(t *WordPieceTables) { t.Suffix = []int32{3} }, "differ in number", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := validTables()
			c.mutate(tb)
			err := tb.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, c.want)
			}
			if got := errors.Is(err, ErrWordPieceLimit); got != c.limit {
				t.Errorf("errors.Is(%v, ErrWordPieceLimit) = %v, want %v", err, got, c.limit)
			}
		})
	}
}

func TestTextJobValidate(t *testing.T) {
	tb := validTables()
	tb.Prefix, tb.PrefixTypes = []int32{2}, []int32{0}
	cases := []struct {
		name string
		job  TextJob
		want string
	}{
		{"no room", TextJob{Room: 0, Width: 4}, "room for 0"},
		{"narrow", TextJob{Room: 4, Width: 4}, "width 4 is less than room 4 plus 1"},
		{"invalid UTF-8", TextJob{Room: 2, Width: 3, Docs: [][]byte{[]byte("a\xff")}}, "document 0 is not valid UTF-8"},
		{"pieces per row", TextJob{Room: 2, Width: 3, Docs: [][]byte{nil}, Pieces: [][]TextPiece{}}, "pieces for 0 rows"},
		{"piece inside a code point", TextJob{Room: 2, Width: 3, Docs: [][]byte{[]byte("é")},
			Pieces: [][]TextPiece{{{Start: 0, End: 1, Added: -1}}}}, "not a run of whole code points"},
		{"piece past the end", TextJob{Room: 2, Width: 3, Docs: [][]byte{[]byte("ab")},
			Pieces: [][]TextPiece{{{Start: 1, End: 3, Added: -1}}}}, "[1, 3)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.job.validate(tb)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("validate = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
