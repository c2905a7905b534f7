package text

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/preprocess"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSpecValidate(t *testing.T) {
	mod := func(f func(*Spec)) Spec { s := DefaultSpec(); f(&s); return s }
	cases := []struct {
		name string
		spec Spec
		want string // substring of the error; "" for valid
	}{
		{"default", DefaultSpec(), ""},
		{"zero max length", mod(func(s *Spec) { s.MaxLength = 0 }), "text.max_length: must be positive, got 0"},
		{"negative max length", mod(func(s *Spec) { s.MaxLength = -3 }), "text.max_length: must be positive, got -3"},
		{"bad padding", mod(func(s *Spec) { s.Padding = "left" }), `text.padding: must be "longest" or "max_length", got "left"`},
		{"bad invalid utf8", mod(func(s *Spec) { s.InvalidUTF8 = "ignore" }), `text.invalid_utf8`},
		{"float ids", mod(func(s *Spec) { s.IDType = preprocess.Float32 }), `text.id_dtype: must be int64 or int32, got "F32"`},
		{"int32 ids", mod(func(s *Spec) { s.IDType = preprocess.Int32 }), ""},
		{"negative max bytes", mod(func(s *Spec) { s.MaxBytes = -1 }), "text.max_bytes"},
		{"max_length padding", mod(func(s *Spec) { s.Padding = PadMaxLength }), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.spec.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestAppendReplacingInvalid(t *testing.T) {
	// Expected values are Python 3's bytes.decode("utf-8", errors="replace").
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"valid", "abc", "abc"},
		{"valid euro", "\xe2\x82\xac", "€"},
		{"truncated 3-byte", "\xe2\x82", "\uFFFD"},
		{"truncated 3-byte then ascii", "\xe2\x82a", "\uFFFDa"},
		{"lone continuation", "\x80", "\uFFFD"},
		{"overlong", "\xc0\xaf", "\uFFFD\uFFFD"},
		{"surrogate", "\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"over U+10FFFF", "\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"truncated emoji", "\xf0\x9f\x98", "\uFFFD"},
		{"truncated emoji then x", "\xf0\x9f\x98x", "\uFFFDx"},
		{"latin-1", "caf\xe9", "caf\uFFFD"},
		{"ff fe", "\xff\xfe", "\uFFFD\uFFFD"},
		{"E0 overlong", "\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"},
		{"truncated 4-byte then valid", "\xf1\x80\x80\xc3\xa9", "\uFFFDé"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(appendReplacingInvalid(nil, []byte(c.in))); got != c.want {
				t.Fatalf("%q: got %q, want %q", c.in, got, c.want)
			}
			if valid := firstInvalid([]byte(c.in)) < 0; valid != (c.in == c.want) {
				t.Fatalf("%q: firstInvalid says valid=%v", c.in, valid)
			}
		})
	}
}

func gpt2(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := LoadTokenizer("tokenizers/gpt2.json")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bert(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := DefaultTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Ids below were produced by the HF oracle (tools/oracle-tokenize,
// tokenizers 0.23.2), not by this package.
func TestEncodeKnownIDs(t *testing.T) {
	cases := []struct {
		name string
		tok  func(testing.TB) *Tokenizer
		doc  string
		want []int32
	}{
		{"bert hello", bert, "hello world", []int32{101, 7592, 2088, 102}},
		{"bert literal specials", bert, "[CLS] x[SEP]", []int32{101, 101, 1060, 102, 102}},
		{"bert lowercase specials are text", bert, "[cls]", []int32{101, 1031, 18856, 2015, 1033, 102}},
		{"bert accents", bert, "trägt", []int32{101, 19817, 8490, 2102, 102}},
		{"bert empty", bert, "", []int32{101, 102}},
		{"gpt2 VIII", gpt2, " VIII", []int32{25197}},
		{"gpt2 endoftext", gpt2, "a<|endoftext|>b", []int32{64, 50256, 65}},
		{"gpt2 empty", gpt2, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.tok(t).Encode(c.doc, true)
			if !slices.Equal(got.IDs, c.want) {
				t.Fatalf("%q: got %v, want %v", c.doc, got.IDs, c.want)
			}
			if len(got.TypeIDs) != len(got.IDs) {
				t.Fatalf("type ids %v for ids %v", got.TypeIDs, got.IDs)
			}
		})
	}
}

func TestEncodeWithoutSpecial(t *testing.T) {
	tok := bert(t)
	with, without := tok.Encode("hello world", true), tok.Encode("hello world", false)
	if !slices.Equal(with.IDs[1:len(with.IDs)-1], without.IDs) || len(without.IDs) != len(with.IDs)-2 {
		t.Fatalf("with specials %v, without %v", with.IDs, without.IDs)
	}
}

func TestParseTokenizerRefuses(t *testing.T) {
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(bundledBERT, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		json []byte
		want string
	}{
		{"not json", []byte("{"), "tokenizer.json"},
		{"unigram", edit(func(m map[string]any) { m["model"].(map[string]any)["type"] = "Unigram" }), `model "Unigram"`},
		{"sequence normalizer", edit(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Sequence"} }), `normalizer "Sequence"`},
		{"whitespace pre-tokenizer", edit(func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }), `pre_tokenizer "Whitespace"`},
		{"lstrip added token", edit(func(m map[string]any) {
			m["added_tokens"].([]any)[0].(map[string]any)["lstrip"] = true
		}), "lstrip"},
		{"unk missing", edit(func(m map[string]any) { m["model"].(map[string]any)["unk_token"] = "<nope>" }), "unk_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTokenizer(c.json)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
	_, err := ParseTokenizer(cases[1].json)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unsupported model: %v does not wrap ErrUnsupported", err)
	}
}

func items(docs ...string) []preprocess.Item {
	out := make([]preprocess.Item, len(docs))
	for i, d := range docs {
		out[i] = preprocess.Item{ID: fmt.Sprintf("doc%d", i), Data: []byte(d)}
	}
	return out
}

func TestProcessorBadInput(t *testing.T) {
	long := strings.Repeat("word ", 200)
	cases := []struct {
		name     string
		spec     func(*Spec)
		docs     []string
		failed   []int // indexes expected in Batch.Failed
		reason   string
		wantRows int
	}{
		{"invalid utf8 rejected", func(*Spec) {}, []string{"ok", "caf\xe9", "fine"}, []int{1}, "invalid UTF-8 at byte 3", 2},
		{"invalid utf8 replaced", func(s *Spec) { s.InvalidUTF8 = ReplaceInvalid }, []string{"ok", "caf\xe9"}, nil, "", 2},
		{"over max bytes", func(s *Spec) { s.MaxBytes = 5 }, []string{"short", "longer one"}, []int{1}, "over text.max_bytes 5", 1},
		{"too long without truncation", func(s *Spec) { s.Truncation = false }, []string{long, "x"}, []int{0}, "text.truncation is off", 1},
		{"too long with truncation", func(*Spec) {}, []string{long, "x"}, nil, "", 2},
		{"all bad", func(s *Spec) { s.MaxBytes = 1 }, []string{"ab", "cd"}, []int{0, 1}, "max_bytes", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := DefaultSpec()
			c.spec(&spec)
			p, err := NewProcessor(spec, 2)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.Process(context.Background(), items(c.docs...))
			if err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, f := range b.Failed {
				idx = append(idx, f.Index)
				if !errors.Is(&f, preprocess.ErrBadInput) || !strings.Contains(f.Error(), c.reason) || f.ID != fmt.Sprintf("doc%d", f.Index) {
					t.Errorf("failure %v: want ErrBadInput with %q", &f, c.reason)
				}
			}
			if !slices.Equal(idx, c.failed) {
				t.Fatalf("failed %v, want %v", idx, c.failed)
			}
			if b.Len() != c.wantRows || len(b.RowFacts["num_tokens"]) != c.wantRows {
				t.Fatalf("%d rows, want %d", b.Len(), c.wantRows)
			}
			for _, tt := range b.Tensors {
				if tt.Shape[0] != c.wantRows || len(tt.Data) != tt.NumElements()*tt.DType.Size() {
					t.Fatalf("tensor %s shape %v with %d bytes", tt.Name, tt.Shape, len(tt.Data))
				}
			}
		})
	}
}

func TestProcessorShapes(t *testing.T) {
	docs := []string{"a b c", "a", strings.Repeat("long ", 300)}
	cases := []struct {
		name   string
		spec   func(*Spec)
		wantL  int
		tokens []any
	}{
		{"longest", func(*Spec) {}, 128, []any{5, 3, 128}},
		{"longest short batch", func(s *Spec) { s.MaxLength = 512 }, 302, []any{5, 3, 302}},
		{"max_length", func(s *Spec) { s.Padding = PadMaxLength; s.MaxLength = 16 }, 16, []any{5, 3, 16}},
		{"int32", func(s *Spec) { s.IDType = preprocess.Int32; s.MaxLength = 8 }, 8, []any{5, 3, 8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := DefaultSpec()
			c.spec(&spec)
			p, err := NewProcessor(spec, 0)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.Process(context.Background(), items(docs...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.RowFacts["num_tokens"], c.tokens) {
				t.Fatalf("num_tokens %v, want %v", b.RowFacts["num_tokens"], c.tokens)
			}
			if len(b.Tensors) != 3 {
				t.Fatalf("%d tensors", len(b.Tensors))
			}
			if d := b.Timings[preprocess.StageDecode]; d <= 0 || len(b.Timings) != 1 {
				t.Fatalf("timings %v, want the batch as tokenising", b.Timings)
			}
			for _, tt := range b.Tensors {
				if !slices.Equal(tt.Shape, []int{3, c.wantL}) || tt.DType != spec.IDType {
					t.Fatalf("%s: shape %v dtype %s, want [3 %d] %s", tt.Name, tt.Shape, tt.DType, c.wantL, spec.IDType)
				}
			}
			// Row 1 is [CLS] a [SEP] then padding: mask 1 1 1 0 …, last id [SEP].
			row := rowOf(b, 1)
			if !slices.Equal(row[0][:4], []int32{101, 1037, 102, 0}) || !slices.Equal(row[1][:4], []int32{1, 1, 1, 0}) {
				t.Fatalf("row 1 = %v", row)
			}
			// The truncated row ends with [SEP].
			if last := rowOf(b, 2)[0][c.wantL-1]; c.tokens[2] == c.wantL && last != 102 {
				t.Fatalf("truncated row ends with %d, want [SEP] 102", last)
			}
		})
	}
}

func TestProcessorCancelled(t *testing.T) {
	p, err := NewProcessor(DefaultSpec(), 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Process(ctx, items("a", "b")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestNewProcessorErrors(t *testing.T) {
	cases := []struct {
		name    string
		spec    func(*Spec)
		threads int
		want    string
	}{
		{"invalid spec", func(s *Spec) { s.MaxLength = 0 }, 1, "text.max_length"},
		{"max length below specials", func(s *Spec) { s.MaxLength = 2 }, 1, "special tokens"},
		{"missing file", func(s *Spec) { s.Tokenizer = "/nonexistent/tokenizer.json" }, 1, "no such file"},
		{"negative threads", func(*Spec) {}, -1, "threads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := DefaultSpec()
			c.spec(&spec)
			_, err := NewProcessor(spec, c.threads)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

// TestProcessorConcurrentUse runs one Processor from several goroutines
// (meaningful under -race) and checks every result against Encode.
func TestProcessorConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("tokenizers/gpt2.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gpt2.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := DefaultSpec()
	spec.Tokenizer = path
	p, err := NewProcessor(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	docs := corpus(t)[:400]
	its := make([]preprocess.Item, len(docs))
	for i, d := range docs {
		its[i] = preprocess.Item{ID: fmt.Sprint(i), Data: d}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := its[g*50 : g*50+200]
			out, err := p.Process(context.Background(), batch)
			if err != nil {
				errs <- err
				return
			}
			row := 0
			for i, it := range batch {
				if slices.ContainsFunc(out.Failed, func(f preprocess.ItemError) bool { return f.Index == i }) {
					continue
				}
				want := p.Tokenizer().Encode(string(it.Data), true).IDs
				want = want[:min(len(want), spec.MaxLength)]
				got := rowOf(out, row)[0][:len(want)]
				if !slices.Equal(got, want) {
					errs <- fmt.Errorf("item %s: got %v, want %v", it.ID, got, want)
					return
				}
				row++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
