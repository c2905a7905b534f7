//go:build cgo

package kernels_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess/text/wordpiece"
)

// smallVocab is a vocabulary with whole words, ## continuations, CJK and
// accented entries, so that random text exercises matches, back-offs and
// [UNK].
func smallVocab() map[string]int {
	words := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "ab", "abc", "##b", "##c", "##bc", "##a",
		"é", "##é", "straße", "strasse", "i", "##̇", "中", "文", "!", ",", ".", "ω", "##ω", "σ", "ς", "x", "##x", "##xx"}
	v := map[string]int{}
	for i, w := range words {
		v[w] = i * 3 // ids need not be dense
	}
	return v
}

// alphabet holds the pieces random documents are made of: ASCII, spaces of
// several kinds, punctuation, controls that clean_text drops, accents
// (precomposed and combining), İ and ẞ (lowercase changes length), CJK,
// Greek and emoji.
var alphabet = []string{"a", "b", "c", "x", "A", "B", " ", "  ", "\t", "\n", "\u3000", "\u00a0", "!", ",", ".", "-",
	"\x00", "\x01", "\u200b", "\ufffd", "é", "e\u0301", "\u0301", "İ", "ẞ", "ß", "中", "文", "Ω", "Σ", "ς", "😀", "[CLS]", "\u1FEF", "\u037E"}

func randomDoc(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// TestEmulatedWordPieceMatchesEncoder runs the emulated kernels on random
// documents (each also split in two pieces around an added token) and
// compares each row with what wordpiece.Encoder gives on the CPU, for
// every normaliser setting, several room sizes and both id widths.
func TestEmulatedWordPieceMatchesEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	var docs [][]byte
	for i := range 400 {
		docs = append(docs, []byte(randomDoc(rng, rng.IntN(40+i))))
	}
	docs = append(docs, []byte(strings.Repeat("ab", 60)), []byte(strings.Repeat("é", 101)), nil)
	for _, lower := range []bool{true, false} {
		for _, maxChars := range []int{100, 4} {
			opt := wordpiece.Options{CleanText: true, HandleChineseChars: true, StripAccents: lower, Lowercase: lower,
				UnkToken: "[UNK]", ContinuingPrefix: "##", MaxInputCharsPerWord: maxChars}
			tables, err := wordpiece.NewTables(smallVocab(), opt)
			if err != nil {
				t.Fatal(err)
			}
			kt := &kernels.WordPieceTables{PageIndex: tables.PageIndex, Pages: tables.Pages, Expansions: tables.Expansions,
				Slots: tables.Slots, KeyOffsets: tables.KeyOffsets, KeyBytes: tables.KeyBytes, EntryIDs: tables.EntryIDs,
				ContinuingPrefix: "##", PrefixHash: tables.PrefixHash, MaxKeyLen: tables.MaxKeyLen, MaxInputChars: maxChars,
				UnkID: tables.UnkID, Prefix: []int32{6}, PrefixTypes: []int32{0}, Suffix: []int32{9, 9}, SuffixTypes: []int32{1, 2},
				SeqType: 3, PadID: 0, PadTypeID: 7}
			enc := tables.NewEncoder()
			for _, room := range []int{1, 5, 40} {
				for _, int64s := range []bool{true, false} {
					name := fmt.Sprintf("lower=%v/max_chars=%d/room=%d/int64=%v", lower, maxChars, room, int64s)
					t.Run(name, func(t *testing.T) {
						checkEmulated(t, kt, enc, docs, room, int64s)
					})
				}
			}
		}
	}
}

func checkEmulated(t *testing.T, kt *kernels.WordPieceTables, enc *wordpiece.Encoder, docs [][]byte, room int, int64s bool) {
	const added = 77
	// Every document twice: whole, and cut in the middle (at a code point
	// boundary) around the added token id 77.
	j := &kernels.TextJob{Room: room, Width: room + 3 + 2, Int64: int64s}
	var want [][]int32
	for _, d := range docs {
		full := enc.Encode(nil, string(d), 0)
		cut := len(d) / 2
		for cut > 0 && cut < len(d) && d[cut]&0xC0 == 0x80 {
			cut--
		}
		split := append(enc.Encode(nil, string(d[:cut]), 0), added)
		split = append(split, enc.Encode(nil, string(d[cut:]), 0)...)
		j.Docs = append(j.Docs, d, d)
		j.Pieces = append(j.Pieces, []kernels.TextPiece{{Start: 0, End: len(d), Added: -1}},
			[]kernels.TextPiece{{Start: 0, End: cut, Added: -1}, {Added: added}, {Start: cut, End: len(d), Added: -1}})
		want = append(want, full, split)
	}
	if err := kernels.EmulateWordPiece(kt, j); err != nil {
		t.Fatal(err)
	}
	if j.OutWidth != j.Width || j.Rows != len(j.Docs) {
		t.Fatalf("output %d rows of %d, want %d of %d", j.Rows, j.OutWidth, len(j.Docs), j.Width)
	}
	read := func(b []byte, i int) int32 {
		if int64s {
			return int32(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
		return int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	bad := 0
	for r, content := range want {
		over := len(content) > room
		content = content[:min(len(content), room)]
		ids := append(append([]int32{6}, content...), 9, 9)
		types := append(append([]int32{0}, slices.Repeat([]int32{3}, len(content))...), 1, 2)
		ok := j.Over[r] == over && int(j.Lengths[r]) == len(ids)
		for c := 0; c < j.Width; c++ {
			id, mask, typ := int32(0), int32(0), int32(7)
			if c < len(ids) {
				id, mask, typ = ids[c], 1, types[c]
			}
			k := r*j.Width + c
			ok = ok && read(j.IDs, k) == id && read(j.Mask, k) == mask && read(j.TypeIDs, k) == typ
		}
		if !ok {
			if bad++; bad <= 3 {
				t.Errorf("row %d %q: over %v (want %v), length %d, want ids %v", r, j.Docs[r], j.Over[r], over, j.Lengths[r], ids)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows differ from wordpiece.Encoder", bad, len(want))
	}
}

// TestEmulatedWordPiecePadLongestDropOver checks the host side of a run:
// with PadLongest the tensors are cut to the longest kept row, and with
// DropOver the rows over Room are left out.
func TestEmulatedWordPiecePadLongestDropOver(t *testing.T) {
	tables, err := wordpiece.NewTables(smallVocab(), wordpiece.Options{CleanText: true, UnkToken: "[UNK]",
		ContinuingPrefix: "##", MaxInputCharsPerWord: 100})
	if err != nil {
		t.Fatal(err)
	}
	kt := &kernels.WordPieceTables{PageIndex: tables.PageIndex, Pages: tables.Pages, Expansions: tables.Expansions,
		Slots: tables.Slots, KeyOffsets: tables.KeyOffsets, KeyBytes: tables.KeyBytes, EntryIDs: tables.EntryIDs,
		ContinuingPrefix: "##", PrefixHash: tables.PrefixHash, MaxKeyLen: tables.MaxKeyLen, MaxInputChars: 100,
		UnkID: tables.UnkID, Prefix: []int32{6}, PrefixTypes: []int32{0}, Suffix: []int32{9}, SuffixTypes: []int32{0}}
	// "a a a a a a" is 6 ids: over a room of 5; "a b" is 2, "ab" 1.
	j := &kernels.TextJob{Docs: [][]byte{[]byte("a b"), []byte("a a a a a a"), []byte("ab")}, Room: 5, Width: 7,
		PadLongest: true, DropOver: true}
	if err := kernels.EmulateWordPiece(kt, j); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(j.Over, []bool{false, true, false}) || !slices.Equal(j.Lengths, []int32{4, 7, 3}) {
		t.Errorf("over %v lengths %v, want [false true false] [4 7 3]", j.Over, j.Lengths)
	}
	if j.Rows != 2 || j.OutWidth != 4 {
		t.Fatalf("%d rows of %d, want 2 of 4", j.Rows, j.OutWidth)
	}
	var ids []int32
	for k := 0; k < 8; k++ {
		ids = append(ids, int32(binary.LittleEndian.Uint32(j.IDs[4*k:])))
	}
	if want := []int32{6, 12, 15, 9, 6, 18, 9, 0}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}
