// Command sugarmecheck compares github.com/sugarme/tokenizer with a golden
// file of the Hugging Face oracle, document by document, and prints the
// agreement, the documents that panic it, the slowest document and the
// first differences. It is how the figures in .notes/sugarme.md were made:
//
//	go run ./preprocess/text/testdata/sugarmecheck [-max-bytes N] TOKENIZER.json LINES.txt GOLDEN.jsonl
//
// Documents over -max-bytes (0: no limit) are not given to sugarme and are
// counted as not run (its Unigram takes minutes on a 64 KB line).
//
// LINES.txt holds one document per line (invalid UTF-8 is replaced by U+FFFD
// per byte here, which can differ from the oracle on invalid lines only).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

type row struct {
	IDs     []int    `json:"ids"`
	TypeIDs []int    `json:"type_ids"`
	Tokens  []string `json:"tokens"`
}

func main() {
	maxBytes := flag.Int("max-bytes", 0, "documents over this many bytes are not run (0: no limit)")
	flag.Parse()
	if err := run(flag.Args(), *maxBytes); err != nil {
		fmt.Fprintln(os.Stderr, "sugarmecheck:", err)
		os.Exit(1)
	}
}

func run(args []string, maxBytes int) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: sugarmecheck TOKENIZER.json LINES.txt GOLDEN.jsonl")
	}
	tk, err := pretrained.FromFile(args[0])
	if err != nil {
		return err
	}
	data, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	docs := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	gf, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	var gold []row
	sc := bufio.NewScanner(bytes.NewReader(gf))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return err
		}
		gold = append(gold, r)
	}
	if len(gold) != len(docs) {
		return fmt.Errorf("%d documents, %d golden rows", len(docs), len(gold))
	}
	same, panics, errs, shown, skipped := 0, 0, 0, 0, 0
	var worst time.Duration
	worstDoc := -1
	start := time.Now()
	for i, d := range docs {
		if maxBytes > 0 && len(d) > maxBytes {
			skipped++
			continue
		}
		d = strings.ToValidUTF8(d, "\uFFFD")
		t0 := time.Now()
		ids, toks, err := encode(tk, d)
		el := time.Since(t0)
		if el > worst {
			worst, worstDoc = el, i
		}
		if el > time.Second {
			fmt.Printf("doc %d: %v for %d bytes\n", i, el.Round(time.Millisecond), len(d))
		}
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "panic"):
			panics++
			fmt.Printf("doc %d: %v\n", i, err)
			continue
		case err != nil:
			errs++
			fmt.Printf("doc %d: error %v\n", i, err)
			continue
		}
		if slices.Equal(ids, gold[i].IDs) {
			same++
			continue
		}
		if shown < 12 {
			shown++
			fmt.Printf("doc %d %q\n  hf:      %v\n  sugarme: %v\n", i, trim(d), trimTok(gold[i].Tokens), trimTok(toks))
		}
	}
	run := len(docs) - skipped
	fmt.Printf("%s: %d of %d identical (%.3f %%), %d panics, %d errors, %d not run; total %v; slowest doc %d: %v (%d bytes)\n",
		args[0], same, run, 100*float64(same)/float64(run), panics, errs, skipped, time.Since(start).Round(time.Millisecond), worstDoc, worst, len(docs[max(worstDoc, 0)]))
	return nil
}

func encode(tk *tokenizer.Tokenizer, d string) (ids []int, toks []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	en, err := tk.EncodeSingle(d, true)
	if err != nil {
		return nil, nil, err
	}
	return en.Ids, en.Tokens, nil
}

func trim(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func trimTok(t []string) []string {
	if len(t) > 30 {
		return t[:30]
	}
	return t
}
