// Command sweep checks stoker's tokenizers against the Hugging Face oracle
// on every Unicode code point: it writes one document per code point
// ("a" + c + "a" and c alone), runs the oracle and reports each code point
// where the ids differ.
//
//	go run ./preprocess/text/testdata/sweep TOKENIZER.json
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"

	"github.com/stoker-ml/stoker/preprocess/text"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sweep TOKENIZER.json")
		os.Exit(2)
	}
	tok, err := text.LoadTokenizer(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var docs []string
	var cps []rune
	for r := rune(1); r < 0x110000; r++ {
		if r >= 0xD800 && r <= 0xDFFF || r == '\n' {
			continue
		}
		docs = append(docs, "a"+string(r)+"a", string(r))
		cps = append(cps, r, r)
	}
	var in bytes.Buffer
	for _, d := range docs {
		in.WriteString(d)
		in.WriteByte('\n')
	}
	oracle := os.Getenv("ORACLE")
	if oracle == "" {
		oracle = "/work/shared/tools/oracle-tokenize"
	}
	cmd := exec.Command(oracle, os.Args[1])
	cmd.Stdin = &in
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle:", err)
		os.Exit(1)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	bad := 0
	for i := 0; sc.Scan(); i++ {
		var g struct {
			IDs    []int32  `json:"ids"`
			Tokens []string `json:"tokens"`
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			panic(err)
		}
		got := tok.Encode(docs[i], true)
		if !slices.Equal(got.IDs, g.IDs) {
			bad++
			fmt.Printf("U+%04X %q got %v want %v %q\n", cps[i], docs[i], got.IDs, g.IDs, g.Tokens)
		}
	}
	fmt.Fprintf(os.Stderr, "%d of %d documents differ\n", bad, len(docs))
}
