//go:build cuda

package gpu

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess/text"
	"github.com/stoker-ml/stoker/preprocess/text/texttest"
)

// TestNewTextProcessorBeyondKernelLimits: on a device, NewTextProcessor
// refuses a tokenizer beyond the kernels' limits with an error wrapping
// ErrUnsupportedTokenizer (the service then runs it on the CPU), and the
// Device stays usable.
func TestNewTextProcessorBeyondKernelLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := kernels.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for _, c := range beyondKernelLimits {
		t.Run(c.name, func(t *testing.T) {
			spec := text.DefaultSpec()
			spec.Tokenizer = texttest.WriteBERT(t, c.mutate)
			p, err := NewTextProcessor(spec, dev, 1)
			if err == nil {
				p.Close()
			}
			if !errors.Is(err, ErrUnsupportedTokenizer) || !errors.Is(err, kernels.ErrWordPieceLimit) ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewTextProcessor = %v; want ErrUnsupportedTokenizer and kernels.ErrWordPieceLimit saying %q", err, c.want)
			}
		})
	}
	p, err := NewTextProcessor(text.DefaultSpec(), dev, 1)
	if err != nil {
		t.Fatalf("the bundled tokenizer after the refusals: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

// TestFakeDriverWordPieceTablesSynchronized: the tables are uploaded with
// a synchronous cuMemcpyHtoD from pageable memory, which on a GPU may
// return before the DMA ends; the slots' streams are non-blocking, so
// LoadWordPiece must synchronise the context before the first
// wp_tokenize. fakecuda refuses stream work on device memory such an
// upload wrote until cuCtxSynchronize, so without it the first batch fails.
func TestFakeDriverWordPieceTablesSynchronized(t *testing.T) {
	fake := kernelstest.RequireFakeDriver(t)
	fake.SetDelay(t, 200*time.Microsecond)
	i := slices.IndexFunc(fakeDriverPipelines(), func(pl gpuPipeline) bool { return pl.name == "text" })
	pl := fakeDriverPipelines()[i]
	before := fake.Stats(kernelstest.LiveResources...)
	syncs := fake.Stat("cuCtxSynchronize")
	process, closeAll := openFake(t, pl)
	if n := fake.Stat("cuCtxSynchronize") - syncs; n < 1 {
		t.Errorf("LoadWordPiece made %d cuCtxSynchronize calls; want at least 1, after the tables' upload", n)
	}
	items := pl.items(t)
	got, err := process(context.Background(), items)
	if err != nil {
		t.Fatalf("first batch: %v", err)
	}
	pl.check(t, items, got)
	if err := closeAll(); err != nil {
		t.Fatal(err)
	}
	fake.CheckReleased(t, before)
}
