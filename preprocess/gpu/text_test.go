//go:build cgo

package gpu

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// The text test data (corpus and Hugging Face goldens) belongs to package
// text; see preprocess/text/testdata/README.md.
const textTestdata = "../text/testdata"

// emulatedWordPiece runs the WordPiece kernels' bodies on the CPU
// (kernels.EmulateWordPiece, output poisoned first).
type emulatedWordPiece struct{ t *kernels.WordPieceTables }

func (e emulatedWordPiece) Tokenize(_ context.Context, j *kernels.TextJob) error {
	return kernels.EmulateWordPiece(e.t, j)
}

// failingWordPiece fails every batch.
type failingWordPiece struct{ err error }

func (f failingWordPiece) Tokenize(context.Context, *kernels.TextJob) error { return f.err }

// emulatedTextProcessor is a TextProcessor whose kernels run in the
// emulator.
func emulatedTextProcessor(t testing.TB, spec text.Spec, threads int) *TextProcessor {
	t.Helper()
	p, err := newTextProcessor(spec, threads)
	if err != nil {
		t.Fatal(err)
	}
	p.run = emulatedWordPiece{p.model.kernel}
	return p
}

func readGz(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(z); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	corpusOnce sync.Once
	corpusDocs [][]byte
)

// textCorpus is the CPU text issue's multilingual and hostile corpus, one
// document per line.
func textCorpus(t testing.TB) [][]byte {
	corpusOnce.Do(func() {
		docs := bytes.Split(readGz(t, filepath.Join(textTestdata, "corpus.txt.gz")), []byte("\n"))
		if len(docs) > 0 && len(docs[len(docs)-1]) == 0 {
			docs = docs[:len(docs)-1]
		}
		corpusDocs = docs
	})
	return corpusDocs
}

// corpusItems returns the corpus as items; in -short mode every 7th
// document plus the last 63 (the hostile lines).
func corpusItems(t testing.TB) []preprocess.Item {
	docs := textCorpus(t)
	var items []preprocess.Item
	for i, d := range docs {
		if testing.Short() && i%7 != 0 && i < len(docs)-63 {
			continue
		}
		items = append(items, preprocess.Item{ID: fmt.Sprint(i), Data: d})
	}
	return items
}

type goldenRow struct {
	I       int     `json:"i"`
	IDs     []int32 `json:"ids"`
	TypeIDs []int32 `json:"type_ids"`
}

func readGolden(t testing.TB, name string) []goldenRow {
	t.Helper()
	var rows []goldenRow
	sc := bufio.NewScanner(bytes.NewReader(readGz(t, filepath.Join(textTestdata, name))))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r goldenRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.I != len(rows) {
			t.Fatalf("%s: row %d has i=%d", name, len(rows), r.I)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// tokenizerFiles writes bert-base-uncased and the cased variant the
// goldens were made with (lowercase and strip_accents off) to a temporary
// directory and returns their paths by golden name.
func tokenizerFiles(t testing.TB) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../text/tokenizers/bert-base-uncased.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	n := m["normalizer"].(map[string]any)
	n["lowercase"], n["strip_accents"] = false, false
	cased, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := map[string]string{"bert-base-uncased": filepath.Join(dir, "uncased.json"), "bert-cased": filepath.Join(dir, "cased.json")}
	if err := os.WriteFile(out["bert-base-uncased"], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out["bert-cased"], cased, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTextBatches checks every field of the GPU path's batch against
// the CPU Processor's for the same items, and returns how many rows are
// identical.
func compareTextBatches(t *testing.T, got, want *preprocess.Batch) int {
	t.Helper()
	if got.Pipeline != want.Pipeline {
		t.Errorf("pipeline %q, want %q", got.Pipeline, want.Pipeline)
	}
	if !slices.Equal(got.IDs, want.IDs) {
		t.Fatalf("row ids differ: got %d rows, want %d", len(got.IDs), len(want.IDs))
	}
	if len(got.Failed) != len(want.Failed) {
		t.Fatalf("%d failures, want %d: %v vs %v", len(got.Failed), len(want.Failed), got.Failed, want.Failed)
	}
	for k := range want.Failed {
		g, w := got.Failed[k], want.Failed[k]
		if g.Index != w.Index || g.ID != w.ID || g.Err.Error() != w.Err.Error() ||
			errors.Is(g.Err, preprocess.ErrBadInput) != errors.Is(w.Err, preprocess.ErrBadInput) ||
			preprocess.ReasonOf(g.Err) != preprocess.ReasonOf(w.Err) {
			t.Errorf("failure %d: got %d %q %v, want %d %q %v", k, g.Index, g.ID, g.Err, w.Index, w.ID, w.Err)
		}
	}
	if !slices.Equal(got.RowFacts["num_tokens"], want.RowFacts["num_tokens"]) || len(got.RowFacts) != len(want.RowFacts) {
		t.Errorf("row facts differ")
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for k := range want.Tensors {
		g, w := got.Tensors[k], want.Tensors[k]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("tensor %d: %s %s %v, want %s %s %v", k, g.Name, g.DType, g.Shape, w.Name, w.DType, w.Shape)
		}
	}
	same, shown := 0, 0
	for r := range want.IDs {
		ok := true
		for k := range want.Tensors {
			rb := want.Tensors[k].RowBytes()
			if !bytes.Equal(got.Tensors[k].Data[r*rb:(r+1)*rb], want.Tensors[k].Data[r*rb:(r+1)*rb]) {
				ok = false
			}
		}
		if ok {
			same++
			continue
		}
		if shown++; shown <= 5 {
			t.Errorf("row %d (item %s) differs:\n got  %v\n want %v", r, want.IDs[r], rowInts(got, r), rowInts(want, r))
		}
	}
	return same
}

// rowInts reads row r of the three tensors as int32s.
func rowInts(b *preprocess.Batch, r int) [3][]int32 {
	var out [3][]int32
	for k, tt := range b.Tensors {
		L := tt.Shape[1]
		row := make([]int32, L)
		for j := range L {
			if tt.DType == preprocess.Int64 {
				row[j] = int32(int64(binary.LittleEndian.Uint64(tt.Data[(r*L+j)*8:])))
			} else {
				row[j] = int32(binary.LittleEndian.Uint32(tt.Data[(r*L+j)*4:]))
			}
		}
		out[k] = row
	}
	return out
}

type textSpecCase struct {
	name string
	spec func(paths map[string]string) text.Spec
}

// textSpecCases covers both tokenizers of the goldens, both paddings, both
// id types, both invalid-UTF-8 policies, truncation off (so that long
// documents fail) and a byte limit.
var textSpecCases = []textSpecCase{
	{"uncased/longest/int64/replace", func(map[string]string) text.Spec {
		s := text.DefaultSpec()
		s.InvalidUTF8 = text.ReplaceInvalid
		return s
	}},
	{"uncased/max_length/int32/reject", func(p map[string]string) text.Spec {
		s := text.DefaultSpec()
		s.Tokenizer = p["bert-base-uncased"]
		s.Padding, s.IDType = text.PadMaxLength, preprocess.Int32
		return s
	}},
	{"cased/longest/int32/replace", func(p map[string]string) text.Spec {
		s := text.DefaultSpec()
		s.Tokenizer = p["bert-cased"]
		s.IDType, s.InvalidUTF8 = preprocess.Int32, text.ReplaceInvalid
		return s
	}},
	{"uncased/no-truncation/max_bytes/len-24", func(map[string]string) text.Spec {
		s := text.DefaultSpec()
		s.MaxLength, s.Truncation, s.MaxBytes = 24, false, 300
		return s
	}},
	{"cased/len-3/max_length", func(p map[string]string) text.Spec {
		s := text.DefaultSpec()
		s.Tokenizer = p["bert-cased"]
		s.MaxLength, s.Padding, s.InvalidUTF8 = 3, text.PadMaxLength, text.ReplaceInvalid
		return s
	}},
}

// TestEmulatedTextMatchesCPUProcessor runs the GPU text path, with the
// kernels emulated, over the whole corpus (every 7th document and the
// hostile ones with -short) in batches of 2,000 and compares each batch
// with the CPU Processor's: 100 % of rows and failures must be identical.
// Each batch's tensors are then filled with 0xAB and released, so the
// next batches get recycled memory full of garbage: a byte the path does
// not write shows.
func TestEmulatedTextMatchesCPUProcessor(t *testing.T) {
	items := corpusItems(t)
	paths := tokenizerFiles(t)
	for _, sc := range textSpecCases {
		t.Run(sc.name, func(t *testing.T) {
			spec := sc.spec(paths)
			gpuP := emulatedTextProcessor(t, spec, 2)
			cpuP, err := text.NewProcessor(spec, 2)
			if err != nil {
				t.Fatal(err)
			}
			const batch = 2000
			same, rows, failed := 0, 0, 0
			for s := 0; s < len(items); s += batch {
				part := items[s:min(s+batch, len(items))]
				got, err := gpuP.Process(context.Background(), part)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpuP.Process(context.Background(), part)
				if err != nil {
					t.Fatal(err)
				}
				same += compareTextBatches(t, got, want)
				rows += want.Len()
				failed += len(want.Failed)
				for _, ts := range got.Tensors {
					kernelstest.Poison(ts.Data, 0xab)
				}
				got.Release()
			}
			t.Logf("%d of %d rows identical (%d documents failed on both paths)", same, rows, failed)
			if same != rows {
				t.Errorf("%d of %d rows differ", rows-same, rows)
			}
		})
	}
}

// TestEmulatedTextMatchesGoldens compares the emulated GPU path with the
// Hugging Face oracle's ids at max_length 128 (committed goldens), for
// every corpus document, padding to max_length so that each row is the
// golden ids followed by padding.
func TestEmulatedTextMatchesGoldens(t *testing.T) {
	if testing.Short() {
		t.Skip("the CPU-parity test covers -short; the goldens need the whole corpus")
	}
	docs := textCorpus(t)
	paths := tokenizerFiles(t)
	for _, name := range []string{"bert-base-uncased", "bert-cased"} {
		t.Run(name, func(t *testing.T) {
			golden := readGolden(t, "golden-"+name+"-128.jsonl.gz")
			if len(golden) != len(docs) {
				t.Fatalf("golden has %d rows, corpus %d documents", len(golden), len(docs))
			}
			spec := text.DefaultSpec()
			spec.Tokenizer = paths[name]
			spec.Padding, spec.InvalidUTF8 = text.PadMaxLength, text.ReplaceInvalid
			p := emulatedTextProcessor(t, spec, 2)
			pad := p.model.kernel.PadID
			items := make([]preprocess.Item, len(docs))
			for i, d := range docs {
				items[i] = preprocess.Item{ID: fmt.Sprint(i), Data: d}
			}
			b, err := p.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			if b.Len() != len(docs) || len(b.Failed) > 0 {
				t.Fatalf("%d rows, failures %v", b.Len(), b.Failed)
			}
			same, shown := 0, 0
			for i, g := range golden {
				row := rowInts(b, i)
				ok := b.RowFacts["num_tokens"][i] == len(g.IDs)
				for j := range spec.MaxLength {
					id, mask, typ := pad, int32(0), int32(0)
					if j < len(g.IDs) {
						id, mask, typ = g.IDs[j], 1, g.TypeIDs[j]
					}
					ok = ok && row[0][j] == id && row[1][j] == mask && row[2][j] == typ
				}
				if ok {
					same++
				} else if shown++; shown <= 5 {
					t.Errorf("document %d %.80q:\n got  %v\n want %v", i, docs[i], row[0], g.IDs)
				}
			}
			t.Logf("%s: %d of %d documents identical to Hugging Face (%.3f %%)", name, same, len(docs), 100*float64(same)/float64(len(docs)))
			if same != len(docs) {
				t.Errorf("%d documents differ from Hugging Face", len(docs)-same)
			}
		})
	}
}

// TestEmulatedTextHostileCases runs hand-made documents that stress one
// rule each, alone and together in one batch, against the CPU Processor.
func TestEmulatedTextHostileCases(t *testing.T) {
	cases := hostileCases()
	paths := tokenizerFiles(t)
	for _, sc := range textSpecCases {
		spec := sc.spec(paths)
		gpuP := emulatedTextProcessor(t, spec, 2)
		cpuP, err := text.NewProcessor(spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		check := func(t *testing.T, items []preprocess.Item) {
			got, err := gpuP.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpuP.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			if same := compareTextBatches(t, got, want); same != want.Len() {
				t.Errorf("%d of %d rows differ", want.Len()-same, want.Len())
			}
		}
		var all []preprocess.Item
		for _, c := range cases {
			it := preprocess.Item{ID: c.name, Data: []byte(c.doc)}
			all = append(all, it)
			t.Run(sc.name+"/"+c.name, func(t *testing.T) { check(t, []preprocess.Item{it}) })
		}
		t.Run(sc.name+"/all in one batch", func(t *testing.T) { check(t, all) })
	}
}

func TestTextProcessorErrors(t *testing.T) {
	t.Run("GPU failure fails the batch", func(t *testing.T) {
		p := emulatedTextProcessor(t, text.DefaultSpec(), 1)
		p.run = failingWordPiece{fmt.Errorf("launch: %w", kernels.ErrDeviceLost)}
		_, err := p.Process(context.Background(), []preprocess.Item{{ID: "a", Data: []byte("hello")}})
		if !errors.Is(err, kernels.ErrDeviceLost) || errors.Is(err, preprocess.ErrBadInput) {
			t.Errorf("Process = %v, want an error wrapping ErrDeviceLost and not ErrBadInput", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		p := emulatedTextProcessor(t, text.DefaultSpec(), 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Process(ctx, []preprocess.Item{{ID: "a", Data: []byte("hello")}}); !errors.Is(err, context.Canceled) {
			t.Errorf("Process = %v, want context.Canceled", err)
		}
	})
	for _, pad := range []text.Padding{text.PadLongest, text.PadMaxLength} {
		t.Run("empty and all-failed batches/"+string(pad), func(t *testing.T) {
			spec := text.DefaultSpec()
			spec.Padding = pad
			gpuP := emulatedTextProcessor(t, spec, 1)
			cpuP, err := text.NewProcessor(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, items := range [][]preprocess.Item{nil, {{ID: "bad", Data: []byte("\xff")}}} {
				got, err := gpuP.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpuP.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				compareTextBatches(t, got, want)
			}
		})
	}
	t.Run("GPT-2 is not WordPiece", func(t *testing.T) {
		spec := text.DefaultSpec()
		spec.Tokenizer = "../text/tokenizers/gpt2.json"
		if _, err := newTextProcessor(spec, 1); !errors.Is(err, ErrNotWordPiece) {
			t.Errorf("newTextProcessor(gpt2) = %v, want ErrNotWordPiece", err)
		}
	})
	t.Run("bad spec", func(t *testing.T) {
		spec := text.DefaultSpec()
		spec.MaxLength = 0
		if _, err := newTextProcessor(spec, 1); err == nil {
			t.Error("newTextProcessor accepted max_length 0")
		}
	})
}

// TestReplaceInvalid checks the replacement of invalid UTF-8 against what
// Python's bytes.decode("utf-8", errors="replace") gives (values from
// Python 3.11).
func TestReplaceInvalid(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"valid", "héllo", "héllo"},
		{"lone continuation", "a\x80b", "a\ufffdb"},
		{"truncated 4-byte", "\xf0\x9f\x98", "\ufffd"},
		{"truncated 3-byte then ASCII", "\xe2\x82x", "\ufffdx"},
		{"surrogate", "\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"overlong", "\xc0\xaf", "\ufffd\ufffd"},
		{"E0 with low continuation", "\xe0\x80\x80", "\ufffd\ufffd\ufffd"},
		{"F4 over the maximum", "\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"F5", "\xf5\x80", "\ufffd\ufffd"},
		{"Latin-1", "caf\xe9", "caf\ufffd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := string(replaceInvalid([]byte(c.in))); got != c.want {
				t.Errorf("replaceInvalid(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestEmulatedTextEveryCodePoint runs every Unicode scalar value (every
// 17th with -short) between two "a"s, as one batch, through the emulated
// GPU path and the CPU Processor, for the uncased and the cased
// normaliser: the code-point tables are shared, this checks that the
// kernels read them as the CPU does (mappings, expansions, classes of the
// mapped code points, actions).
func TestEmulatedTextEveryCodePoint(t *testing.T) {
	step := rune(1)
	if testing.Short() {
		step = 17
	}
	var items []preprocess.Item
	for r := rune(1); r <= 0x10FFFF; r += step {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		items = append(items, preprocess.Item{ID: fmt.Sprintf("U+%04X", r), Data: []byte("a" + string(r) + "a")})
	}
	paths := tokenizerFiles(t)
	for _, name := range []string{"bert-base-uncased", "bert-cased"} {
		t.Run(name, func(t *testing.T) {
			spec := text.DefaultSpec()
			spec.Tokenizer, spec.MaxLength = paths[name], 16
			got, err := emulatedTextProcessor(t, spec, 2).Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			cpuP, err := text.NewProcessor(spec, 2)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpuP.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			same := compareTextBatches(t, got, want)
			t.Logf("%d of %d code points identical", same, want.Len())
			if same != want.Len() {
				t.Errorf("%d of %d code points differ", want.Len()-same, want.Len())
			}
		})
	}
}

// hostileCases are hand-made documents that stress one rule each.
func hostileCases() []struct{ name, doc string } {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	return []struct{ name, doc string }{
		{"empty", ""},
		{"only spaces and controls", " \t\n\r\x00\x01\u200b "},
		{"literal specials", "[CLS] hello [SEP][PAD]x[MASK][UNK] [cls]"},
		{"only specials past max_length", long("[CLS]", 300)},
		{"special inside a word", "ab[SEP]cd"},
		{"dotted capital I lengthens", "İstanbul İİİ"},
		{"capital sharp s", "STRAẞE ẞ"},
		{"final sigma", "ΟΔΟΣ ὈΔΥΣΣΕΎΣ"},
		{"accents", "Crème brûlée, naïve café — Ångström"},
		{"stacked combining marks", "a\u0301\u0302\u0303 \u0301\u0301"},
		{"CJK and compatibility ideographs", "中文字符\U00020000\U0002A700豈更"},
		{"Hangul", "한국어 텍스트"},
		{"word of 100 characters", long("a", 100)},
		{"word of 101 characters", long("a", 101)},
		{"accented word of 101 characters", long("é", 101)},
		{"word of 100 accented that NFD doubles", long("é", 100) + " x"},
		{"word of 257 characters", long("b", 257)},
		{"word of 20,000 characters", long("ab", 10000)},
		{"punctuation run", long("!", 500)},
		{"unknown piece", "qzxqzxqzx ≠ ☃"},
		{"emoji with ZWJ", "👩‍👩‍👧 👍🏽"},
		{"private use and noncharacters", "\ue000\uffff\U0010FFFF a"},
		{"unassigned code point", "\U000E0080 \u0378"},
		{"long document", long("the quick brown fox jumps over the lazy dog. ", 200)},
		{"invalid UTF-8", "caf\xe9 \xf0\x9f\x98 ok \xed\xa0\x80"},
		{"mapping of another class", "a\u1FEFb a\u037Eb a\u0387b"},
	}
}
