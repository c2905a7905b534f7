package text

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// The goldens in testdata were made by testdata/make_goldens.sh with the
// Hugging Face oracle (tokenizers 0.23.2) over testdata/corpus.txt.gz.

type goldenRow struct {
	I       int     `json:"i"`
	IDs     []int32 `json:"ids"`
	TypeIDs []int32 `json:"type_ids"`
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

// corpus returns the test corpus, one document per line as the oracle split it.
func corpus(t testing.TB) [][]byte {
	corpusOnce.Do(func() {
		data := readGz(t, "testdata/corpus.txt.gz")
		docs := bytes.Split(data, []byte("\n"))
		if len(docs) > 0 && len(docs[len(docs)-1]) == 0 {
			docs = docs[:len(docs)-1]
		}
		corpusDocs = docs
	})
	return corpusDocs
}

func readGolden(t testing.TB, name string) []goldenRow {
	t.Helper()
	data := readGz(t, filepath.Join("testdata", name))
	var rows []goldenRow
	sc := bufio.NewScanner(bytes.NewReader(data))
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

// casedBERTJSON is bert-base-uncased.json with lowercase and strip_accents
// off, as make_goldens.sh builds it.
func casedBERTJSON(t testing.TB) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bundledBERT, &m); err != nil {
		t.Fatal(err)
	}
	n := m["normalizer"].(map[string]any)
	n["lowercase"] = false
	n["strip_accents"] = false
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type goldenCase struct {
	name string // golden file stem
	json func(testing.TB) []byte
}

var goldenCases = []goldenCase{
	{"bert-base-uncased", func(testing.TB) []byte { return bundledBERT }},
	{"bert-cased", casedBERTJSON},
	{"gpt2", func(t testing.TB) []byte {
		b, err := os.ReadFile("tokenizers/gpt2.json")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
}

func quote(doc []byte) string {
	s := fmt.Sprintf("%q", doc)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func clip(ids []int32) string {
	if len(ids) > 40 {
		return fmt.Sprint(ids[:40]) + "…"
	}
	return fmt.Sprint(ids)
}

// TestEncodeMatchesGolden compares Tokenizer.Encode with the oracle on
// every document of the corpus, without truncation.
func TestEncodeMatchesGolden(t *testing.T) {
	docs := corpus(t)
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			tok, err := ParseTokenizer(gc.json(t))
			if err != nil {
				t.Fatal(err)
			}
			golden := readGolden(t, "golden-"+gc.name+".jsonl.gz")
			if len(golden) != len(docs) {
				t.Fatalf("golden has %d rows, corpus %d documents", len(golden), len(docs))
			}
			same, shown := 0, 0
			for i, doc := range docs {
				enc := tok.Encode(string(doc), true)
				g := golden[i]
				if slices.Equal(enc.IDs, g.IDs) && slices.Equal(enc.TypeIDs, g.TypeIDs) {
					same++
					continue
				}
				if shown < 10 {
					shown++
					t.Errorf("document %d %s\n got  %s\n want %s", i, quote(doc), clip(enc.IDs), clip(g.IDs))
				}
			}
			pct := 100 * float64(same) / float64(len(docs))
			t.Logf("%s: %d of %d documents identical (%.3f %%)", gc.name, same, len(docs), pct)
			if same != len(docs) {
				t.Errorf("%s: %.3f %% identical, want 100 %%", gc.name, pct)
			}
		})
	}
}

// TestProcessorMatchesGolden runs the Processor (max_length 128,
// truncation, both padding modes, both id types) over the corpus and
// compares every row with what HF's rules make of the oracle's truncated
// ids: padding on the right with the pad id, mask 1 on tokens, type id 0 on
// padding.
func TestProcessorMatchesGolden(t *testing.T) {
	docs := corpus(t)
	dir := t.TempDir()
	for _, gc := range goldenCases {
		path := filepath.Join(dir, gc.name+".json")
		if err := os.WriteFile(path, gc.json(t), 0o600); err != nil {
			t.Fatal(err)
		}
		golden := readGolden(t, "golden-"+gc.name+"-128.jsonl.gz")
		for _, pc := range []struct {
			pad    Padding
			idType preprocess.DType
		}{{PadLongest, preprocess.Int64}, {PadMaxLength, preprocess.Int32}} {
			t.Run(fmt.Sprintf("%s/%s/%s", gc.name, pc.pad, pc.idType), func(t *testing.T) {
				spec := DefaultSpec()
				spec.Tokenizer = path
				spec.Padding = pc.pad
				spec.IDType = pc.idType
				spec.InvalidUTF8 = ReplaceInvalid
				p, err := NewProcessor(spec, 2)
				if err != nil {
					t.Fatal(err)
				}
				same, shown := 0, 0
				const batch = 500
				for s := 0; s < len(docs); s += batch {
					items := make([]preprocess.Item, 0, batch)
					for i := s; i < min(s+batch, len(docs)); i++ {
						items = append(items, preprocess.Item{ID: fmt.Sprint(i), Data: docs[i]})
					}
					b, err := p.Process(context.Background(), items)
					if err != nil {
						t.Fatal(err)
					}
					if len(b.Failed) > 0 || b.Len() != len(items) {
						t.Fatalf("batch at %d: %d rows, failures %v", s, b.Len(), b.Failed)
					}
					want := expectedRows(golden[s:s+len(items)], spec.MaxLength, pc.pad, p.Tokenizer().PadID())
					for r := range items {
						got := rowOf(b, r)
						if slices.Equal(got[0], want[r][0]) && slices.Equal(got[1], want[r][1]) && slices.Equal(got[2], want[r][2]) &&
							b.RowFacts["num_tokens"][r] == len(golden[s+r].IDs) {
							same++
							continue
						}
						if shown < 10 {
							shown++
							t.Errorf("document %d %s\n got  %v num_tokens %v\n want %v num_tokens %d", s+r, quote(docs[s+r]),
								trimRow(got), b.RowFacts["num_tokens"][r], trimRow(want[r]), len(golden[s+r].IDs))
						}
					}
					// The next batches are written over this one's memory,
					// filled with garbage: an element left unwritten shows.
					for _, ts := range b.Tensors {
						for i := range ts.Data {
							ts.Data[i] = 0xab
						}
					}
					b.Release()
				}
				pct := 100 * float64(same) / float64(len(docs))
				t.Logf("%d of %d rows identical (%.3f %%)", same, len(docs), pct)
				if same != len(docs) {
					t.Errorf("%.3f %% identical, want 100 %%", pct)
				}
			})
		}
	}
}

// expectedRows pads golden rows per HF's padding rules.
func expectedRows(g []goldenRow, maxLen int, pad Padding, padID int32) [][3][]int32 {
	L := maxLen
	if pad == PadLongest {
		L = 0
		for _, r := range g {
			L = max(L, len(r.IDs))
		}
	}
	out := make([][3][]int32, len(g))
	for i, r := range g {
		ids, mask, types := make([]int32, L), make([]int32, L), make([]int32, L)
		for j := range L {
			ids[j] = padID
			if j < len(r.IDs) {
				ids[j], mask[j], types[j] = r.IDs[j], 1, r.TypeIDs[j]
			}
		}
		out[i] = [3][]int32{ids, mask, types}
	}
	return out
}

// rowOf reads row r of the three tensors as int32s.
func rowOf(b *preprocess.Batch, r int) [3][]int32 {
	var out [3][]int32
	for k, name := range []string{InputIDs, AttentionMask, TokenTypeIDs} {
		var tt preprocess.Tensor
		for _, x := range b.Tensors {
			if x.Name == name {
				tt = x
			}
		}
		L := tt.Shape[1]
		row := make([]int32, L)
		for j := range L {
			switch tt.DType {
			case preprocess.Int64:
				row[j] = int32(int64(binary.LittleEndian.Uint64(tt.Data[(r*L+j)*8:])))
			case preprocess.Int32:
				row[j] = int32(binary.LittleEndian.Uint32(tt.Data[(r*L+j)*4:]))
			}
		}
		out[k] = row
	}
	return out
}

// trimRow drops the padding of a row (ids, mask, types) for printing,
// keeping the first two padded positions.
func trimRow(row [3][]int32) [3][]int32 {
	n := 0
	for _, m := range row[1] {
		if m != 0 {
			n++
		}
	}
	n = min(n+2, len(row[1]))
	return [3][]int32{row[0][:n], row[1][:n], row[2][:n]}
}
