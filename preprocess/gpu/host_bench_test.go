//go:build cgo

package gpu

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// packOnly does what a Device does on the host for a batch, packing the
// job into a buffer, and launches nothing.
type packOnly struct{ buf []byte }

func (p *packOnly) ResizeCropNormalize(_ context.Context, j *kernels.Job) error {
	n := j.Packing().Size
	if cap(p.buf) < n {
		p.buf = make([]byte, n)
	}
	j.Pack(p.buf[:n], 1)
	return nil
}

// BenchmarkHostSide measures the GPU image Processor's work on the CPU
// for a batch of the ~1 MP bench JPEGs: decode, plan and pack (the
// kernel is not run), on 1 thread.
func BenchmarkHostSide(b *testing.B) {
	names, err := filepath.Glob(filepath.Join("..", "image", "testdata", "corpus", "bench_*.jpg"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no bench images: %v", err)
	}
	var items []preprocess.Item
	for len(items) < 16 {
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				b.Fatal(err)
			}
			items = append(items, preprocess.Item{ID: n, Data: data})
		}
	}
	items = items[:16]
	p, err := newProcessor(image.DefaultSpec(), &packOnly{}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Process(context.Background(), items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "images/s")
}
