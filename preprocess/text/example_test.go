package text_test

import (
	"context"
	"fmt"

	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
)

func ExampleTokenizer_Encode() {
	tok, err := text.DefaultTokenizer() // bundled bert-base-uncased
	if err != nil {
		panic(err)
	}
	enc := tok.Encode("Hello, world!", true)
	fmt.Println(enc.IDs, enc.TypeIDs)
	// Output: [101 7592 1010 2088 999 102] [0 0 0 0 0 0]
}

func ExampleProcessor_Process() {
	spec := text.DefaultSpec()
	spec.MaxLength = 16
	p, err := text.NewProcessor(spec, 2)
	if err != nil {
		panic(err)
	}
	b, err := p.Process(context.Background(), []preprocess.Item{
		{ID: "a", Data: []byte("Hello, world!")},
		{ID: "b", Data: []byte("caf\xe9")}, // Latin-1, not UTF-8
	})
	if err != nil {
		panic(err)
	}
	for _, t := range b.Tensors {
		fmt.Println(t.Name, t.DType, t.Shape)
	}
	fmt.Println(b.IDs, b.RowFacts["num_tokens"])
	fmt.Println(b.Failed[0].Error())
	// Output:
	// input_ids I64 [1 6]
	// attention_mask I64 [1 6]
	// token_type_ids I64 [1 6]
	// [a] [6]
	// item "b": invalid UTF-8 at byte 3 (text.invalid_utf8 is reject)
}
