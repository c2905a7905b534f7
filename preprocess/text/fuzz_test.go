package text

import (
	"bytes"
	"slices"
	"testing"
	"unicode/utf8"
)

// Fuzz targets, one per model:
//
//	go test ./preprocess/text -run '^$' -fuzz FuzzBERT -fuzztime 10m
//	go test ./preprocess/text -run '^$' -fuzz FuzzGPT2 -fuzztime 10m
//
// Properties: no panic; every id within the vocabulary; at most one token
// per input byte (after replacing invalid UTF-8; plus the special tokens); encoding with a truncation
// limit gives a prefix of the full encoding; invalid UTF-8 is read exactly
// as its Python-style replacement is.

func addSeeds(f *testing.F) {
	docs := corpus(f)
	// The hostile lines are the corpus's last ones; add them and a sample of the rest.
	for i := max(0, len(docs)-63); i < len(docs); i++ {
		if len(docs[i]) <= 4096 {
			f.Add(docs[i])
		}
	}
	for i := 0; i < len(docs); i += 997 {
		f.Add(docs[i])
	}
}

func fuzzTokenizer(f *testing.F, tok *Tokenizer) {
	addSeeds(f)
	s := tok.newState()
	f.Fuzz(func(t *testing.T, data []byte) {
		enc := tok.Encode(string(data), true)
		for _, id := range enc.IDs {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d outside vocabulary of %d", id, tok.VocabSize())
			}
		}
		if len(enc.TypeIDs) != len(enc.IDs) {
			t.Fatalf("%d type ids for %d ids", len(enc.TypeIDs), len(enc.IDs))
		}
		doc := data
		if !utf8.Valid(data) {
			doc = appendReplacingInvalid(nil, data)
			if !utf8.Valid(doc) || !bytes.Contains(doc, []byte("\uFFFD")) {
				t.Fatalf("replacement of %q is %q", data, doc)
			}
			if again := tok.Encode(string(doc), true); !slices.Equal(again.IDs, enc.IDs) {
				t.Fatalf("invalid input gives %v, its replacement %v", enc.IDs, again.IDs)
			}
		}
		if n := len(enc.IDs) - tok.NumSpecialTokens(); n > len(doc) {
			t.Fatalf("%d tokens from %d bytes (after replacing invalid UTF-8)", n, len(doc))
		}
		full := tok.encodeContent(s, nil, string(doc), 0)
		for _, limit := range []int{1, 3, 17} {
			part := tok.encodeContent(s, nil, string(doc), limit)
			if len(part) < min(limit, len(full)) || len(part) > len(full) || !slices.Equal(part, full[:len(part)]) {
				t.Fatalf("limit %d: %v is not a prefix of %v", limit, part, full)
			}
		}
	})
}

func FuzzBERT(f *testing.F) { fuzzTokenizer(f, bert(f)) }

func FuzzGPT2(f *testing.F) { fuzzTokenizer(f, gpt2(f)) }

func FuzzCasedBERT(f *testing.F) {
	tok, err := ParseTokenizer(casedBERTJSON(f))
	if err != nil {
		f.Fatal(err)
	}
	fuzzTokenizer(f, tok)
}
