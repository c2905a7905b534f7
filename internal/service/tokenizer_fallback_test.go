//go:build cuda

package service

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/internal/config"
	"github.com/stoker-ml/stoker/internal/worker"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
	"github.com/stoker-ml/stoker/preprocess/text/texttest"
)

// TestTextTokenizerBeyondGPUFallsBackToCPU: on device cuda (the GPU, or
// kernels/fakecuda standing in for it: make test-cuda-fake), a text
// pipeline whose tokenizer the WordPiece kernels cannot take — a BERT
// tokenizer.json with max_input_chars_per_word 300, over the kernels'
// 256, or GPT-2's byte-level BPE — gets the CPU text processor and a
// warning that names the reason, instead of failing to start.
func TestTextTokenizerBeyondGPUFallsBackToCPU(t *testing.T) {
	cases := []struct {
		name, tokenizer, reason string
	}{
		{"max_input_chars_per_word 300", bertWithMaxChars(t, 300), "max_input_chars_per_word 300 is outside the kernel's 1..256"},
		{"GPT-2", "../../preprocess/text/tokenizers/gpt2.json", "WordPiece (BERT) tokenizers only"},
	}
	items := []preprocess.Item{{ID: "a", Data: []byte("hello world")}, {ID: "b", Data: []byte(strings.Repeat("x", 280) + " end")}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := text.DefaultSpec()
			spec.Tokenizer = c.tokenizer
			pl := &config.Pipeline{Name: "texts", Text: &spec, Threads: 1}
			var logged bytes.Buffer
			proc, err := newProcessor(pl, DeviceCUDA, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatalf("newProcessor on cuda: %v; want the CPU text processor", err)
			}
			defer proc.Close()
			if _, ok := unwrap(proc).(*text.Processor); !ok {
				t.Fatalf("newProcessor on cuda gave a %T; want the CPU *text.Processor", unwrap(proc))
			}
			if d, ok := proc.(worker.DeviceReporter); !ok || d.Device() != DeviceCPU {
				t.Errorf("the fallback processor does not report device cpu (%T), so its batches would be counted under cuda", proc)
			}
			for _, want := range []string{"level=WARN", "pipeline=texts", c.reason} {
				if !strings.Contains(logged.String(), want) {
					t.Errorf("log %q does not say %q", logged.String(), want)
				}
			}
			got, err := proc.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			cpu, err := text.NewProcessor(spec, 1)
			if err != nil {
				t.Fatal(err)
			}
			want, err := cpu.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != len(items) || len(got.Failed) != 0 || !sameTensors(got, want) {
				t.Errorf("the fallback processor's batch differs from the CPU text processor's")
			}

			// The exported constructor does the same (its warning goes to
			// slog.Default()).
			proc2, err := NewProcessor(pl, DeviceCUDA)
			if err != nil {
				t.Fatalf("NewProcessor on cuda: %v; want the CPU text processor", err)
			}
			defer proc2.Close()
			if _, ok := unwrap(proc2).(*text.Processor); !ok {
				t.Errorf("NewProcessor on cuda gave a %T; want the CPU *text.Processor", unwrap(proc2))
			}
		})
	}
}

// bertWithMaxChars writes the bundled BERT tokenizer.json with
// max_input_chars_per_word set to n and returns its path.
func bertWithMaxChars(t *testing.T, n int) string {
	return texttest.WriteBERT(t, func(tok map[string]any) {
		tok["model"].(map[string]any)["max_input_chars_per_word"] = n
	})
}

// sameTensors reports whether two batches hold the same tensors, byte for
// byte.
func sameTensors(a, b *preprocess.Batch) bool {
	return slices.EqualFunc(a.Tensors, b.Tensors, func(x, y preprocess.Tensor) bool {
		return x.Name == y.Name && x.DType == y.DType && slices.Equal(x.Shape, y.Shape) && bytes.Equal(x.Data, y.Data)
	})
}
