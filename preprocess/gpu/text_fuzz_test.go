//go:build cgo

package gpu

import (
	"context"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
)

// FuzzEmulatedText feeds arbitrary bytes (as two documents: the input and
// the input repeated) through the emulated GPU text path and the CPU
// Processor, with replacement of invalid UTF-8 and a short max_length so
// that truncation happens: every field of the batches must agree.
//
//	go test ./preprocess/gpu -run '^$' -fuzz FuzzEmulatedText -fuzztime 5m
func FuzzEmulatedText(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "[CLS]x[SEP]", "İẞ中文 café\u0301", "a\u1FEFb", "\xff\xfe[PAD]",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		f.Add([]byte(s))
	}
	spec := text.DefaultSpec()
	spec.MaxLength, spec.InvalidUTF8 = 12, text.ReplaceInvalid
	gpuP := emulatedTextProcessor(f, spec, 1)
	cpuP, err := text.NewProcessor(spec, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items := []preprocess.Item{{ID: "a", Data: data}, {ID: "b", Data: append(append([]byte(nil), data...), data...)}}
		got, err := gpuP.Process(context.Background(), items)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cpuP.Process(context.Background(), items)
		if err != nil {
			t.Fatal(err)
		}
		if same := compareTextBatches(t, got, want); same != want.Len() {
			t.Errorf("%q: %d of %d rows differ", data, want.Len()-same, want.Len())
		}
	})
}
