package bpe

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestNextPiece(t *testing.T) {
	// Expected splits follow GPT-2's expression by hand (alternatives in order).
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"words", "hello world", []string{"hello", " world"}},
		{"contractions", "it's we're I'll", []string{"it", "'s", " we", "'re", " I", "'ll"}},
		{"upper contraction is not one", "IT'S", []string{"IT", "'", "S"}},
		{"apostrophes run", "''s", []string{"''", "s"}},
		{"spaces before word", "a   b", []string{"a", "  ", " b"}},
		{"trailing spaces", "a   ", []string{"a", "   "}},
		{"newlines", "x\n\ny", []string{"x", "\n", "\n", "y"}},
		{"tab before word", "a\tb", []string{"a", "\t", "b"}},
		{"numbers", "abc123 456", []string{"abc", "123", " 456"}},
		{"symbols", "a!!! ?b", []string{"a", "!!!", " ?", "b"}},
		{"space then nbsp", "a \u00a0b", []string{"a", " ", "\u00a0", "b"}},
		{"unicode letters", "straße ü", []string{"straße", " ü"}},
		{"lone space", " ", []string{" "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for i := 0; i < len(c.in); {
				j := nextPiece(c.in, i)
				if j <= i {
					t.Fatalf("no progress at %d", i)
				}
				got = append(got, c.in[i:j])
				i = j
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%q: got %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// toy vocabulary over bytes a, b, c plus merges.
func toyModel(t *testing.T, merges [][2]string) *Model {
	t.Helper()
	vocab := map[string]int{}
	for b, r := range ByteToRune() {
		vocab[string(r)] = b
	}
	for _, m := range merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = len(vocab)
		}
	}
	m, err := NewModel(vocab, merges)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMergePriority(t *testing.T) {
	// Ranks: "b c" first, then "a b", then "a bc".
	m := toyModel(t, [][2]string{{"b", "c"}, {"a", "b"}, {"a", "bc"}})
	id := func(s string) int32 { return int32(256 + slices.Index([]string{"bc", "ab", "abc"}, s)) }
	cases := []struct {
		name string
		in   string
		want []int32
	}{
		{"lowest rank first", "abc", []int32{id("abc")}},
		{"leftmost on ties", "aab", []int32{'a', id("ab")}},
		{"ties left to right", "abab", []int32{id("ab"), id("ab")}},
		{"no merge", "ca", []int32{'c', 'a'}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := m.NewEncoder(-1).merge(nil, c.in)
			if !slices.Equal(got, c.want) {
				t.Fatalf("%q: got %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestCacheStaysBounded(t *testing.T) {
	m := toyModel(t, [][2]string{{"a", "b"}})
	e := m.NewEncoder(10)
	for i := range 1000 {
		e.Encode(nil, fmt.Sprintf(" ab%d abab%dx", i, i), 0)
		if e.CacheLen() > 10 {
			t.Fatalf("cache holds %d words, bound 10", e.CacheLen())
		}
	}
	// A cached word gives the same ids as a fresh encoder.
	want := m.NewEncoder(-1).Encode(nil, " abab", 0)
	e.Encode(nil, " abab", 0)
	if got := e.Encode(nil, " abab", 0); !slices.Equal(got, want) {
		t.Fatalf("cached %v, uncached %v", got, want)
	}
}

func TestNewModelErrors(t *testing.T) {
	vocab := map[string]int{}
	for b, r := range ByteToRune() {
		vocab[string(r)] = b
	}
	if _, err := NewModel(vocab, [][2]string{{"a", "b"}}); err == nil || !strings.Contains(err.Error(), "merge 0") {
		t.Fatalf("merge into missing token: %v", err)
	}
	delete(vocab, "a")
	if _, err := NewModel(vocab, nil); err == nil || !strings.Contains(err.Error(), "0x61") {
		t.Fatalf("missing byte: %v", err)
	}
}
