package gpu

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/text"
	"github.com/stoker-ml/stoker/preprocess/text/texttest"
)

// beyondKernelLimits are BERT tokenizers the CPU text.Processor loads but
// the WordPiece kernels do not take, each with what the error must name.
var beyondKernelLimits = []struct {
	name   string
	mutate func(tok map[string]any)
	want   string
}{
	{"max_input_chars_per_word 300", func(tok map[string]any) {
		tok["model"].(map[string]any)["max_input_chars_per_word"] = 300
	}, "max_input_chars_per_word 300 is outside the kernel's 1..256"},
	{"vocabulary entry of 200 bytes", func(tok map[string]any) {
		vocab := tok["model"].(map[string]any)["vocab"].(map[string]any)
		vocab[strings.Repeat("x", 200)] = len(vocab)
	}, "longest vocabulary entry of 200 bytes is outside the kernel's 1..128"},
	{"9 special tokens before the sequence", func(tok map[string]any) {
		special := func(id string) map[string]any {
			return map[string]any{"SpecialToken": map[string]any{"id": id, "type_id": 0}}
		}
		var single []any
		for range 9 {
			single = append(single, special("[CLS]"))
		}
		single = append(single, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, special("[SEP]"))
		tok["post_processor"] = map[string]any{
			"type":   "TemplateProcessing",
			"single": single,
			"pair":   single,
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{101}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{102}, "tokens": []string{"[SEP]"}},
			},
		}
	}, "9 special tokens before and 1 after the sequence, the kernel takes at most 8 each"},
}

// TestTokenizerBeyondKernelLimits: a WordPiece tokenizer the CPU runs but
// the kernels cannot take is refused with an error that wraps
// ErrUnsupportedTokenizer and kernels.ErrWordPieceLimit and names the
// limit and the value, so that the service runs it on the CPU. (The
// cuda-tagged TestNewTextProcessorBeyondKernelLimits checks the same
// through NewTextProcessor on a device.)
func TestTokenizerBeyondKernelLimits(t *testing.T) {
	for _, c := range beyondKernelLimits {
		t.Run(c.name, func(t *testing.T) {
			spec := text.DefaultSpec()
			spec.Tokenizer = texttest.WriteBERT(t, c.mutate)
			cpu, err := text.NewProcessor(spec, 1)
			if err != nil {
				t.Fatalf("the CPU text processor refuses the tokenizer: %v", err)
			}
			b, err := cpu.Process(context.Background(), []preprocess.Item{{ID: "a", Data: []byte("hello world")}})
			if err != nil || b.Len() != 1 || len(b.Failed) != 0 {
				t.Fatalf("the CPU text processor: batch %v, error %v", b, err)
			}
			_, err = newTextProcessor(spec, 1)
			if !errors.Is(err, ErrUnsupportedTokenizer) || !errors.Is(err, kernels.ErrWordPieceLimit) {
				t.Fatalf("newTextProcessor = %v; want an error wrapping ErrUnsupportedTokenizer and kernels.ErrWordPieceLimit", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("newTextProcessor = %q; want it to say %q", err, c.want)
			}
		})
	}
	t.Run("GPT-2 is unsupported too", func(t *testing.T) {
		spec := text.DefaultSpec()
		spec.Tokenizer = "../text/tokenizers/gpt2.json"
		_, err := newTextProcessor(spec, 1)
		if !errors.Is(err, ErrNotWordPiece) || !errors.Is(err, ErrUnsupportedTokenizer) || errors.Is(err, kernels.ErrWordPieceLimit) {
			t.Errorf("newTextProcessor(gpt2) = %v; want ErrNotWordPiece, which is an ErrUnsupportedTokenizer", err)
		}
	})
}
