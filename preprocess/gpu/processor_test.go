//go:build cgo

package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdimage "image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.uber.org/goleak"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// emulator runs the kernel body on the CPU (kernels.EmulateResizeCropNormalize),
// poisoning the output first so that an unwritten element shows.
type emulator struct{}

func (emulator) ResizeCropNormalize(ctx context.Context, j *kernels.Job) error {
	kernelstest.Poison(j.Dst, 0xff)
	return kernels.EmulateResizeCropNormalize(j)
}

// failing is a device that fails every batch.
type failing struct{ err error }

func (f failing) ResizeCropNormalize(context.Context, *kernels.Job) error { return f.err }

// encode returns a w×h random image encoded as PNG (lossless) or JPEG.
func encode(t *testing.T, rng *rand.Rand, w, h int, asJPEG bool) []byte {
	t.Helper()
	m := stdimage.NewNRGBA(stdimage.Rect(0, 0, w, h))
	pix := kernelstest.RandomPixels(rng, w, h)
	for i := 0; i < w*h; i++ {
		copy(m.Pix[4*i:], pix[3*i:3*i+3])
		m.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	var err error
	if asJPEG {
		err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90})
	} else {
		err = png.Encode(&buf, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testItems(t *testing.T) []preprocess.Item {
	rng := rand.New(rand.NewPCG(7, 7))
	// 300×200 twice: the second image's plans come from the cache.
	sizes := [][2]int{{64, 64}, {300, 200}, {97, 480}, {640, 427}, {300, 200}}
	var items []preprocess.Item
	for i, s := range sizes {
		items = append(items, preprocess.Item{ID: fmt.Sprintf("img-%d", i), Data: encode(t, rng, s[0], s[1], i%2 == 1)})
		if i == 1 {
			items = append(items, preprocess.Item{ID: "not-an-image", Data: []byte("hello, world")})
		}
	}
	items = append(items, preprocess.Item{ID: "empty", Data: nil})
	return items
}

// compareBatches checks a GPU-path batch against the CPU Processor's for
// the same items: metadata, failures and tensor. Tensor values must be
// within issue 5's tolerance, and bit-identical when exact (always for
// uint8).
func compareBatches(t *testing.T, spec image.Spec, got, want *preprocess.Batch, exact bool) {
	t.Helper()
	if got.Pipeline != want.Pipeline || !reflect.DeepEqual(got.IDs, want.IDs) ||
		!reflect.DeepEqual(got.RowFacts, want.RowFacts) {
		t.Errorf("batch metadata differs:\n got %q %v %v\nwant %q %v %v",
			got.Pipeline, got.IDs, got.RowFacts, want.Pipeline, want.IDs, want.RowFacts)
	}
	if len(got.Failed) != len(want.Failed) {
		t.Fatalf("got %d failed items, want %d: %v", len(got.Failed), len(want.Failed), got.Failed)
	}
	for i := range want.Failed {
		g, w := got.Failed[i], want.Failed[i]
		if g.Index != w.Index || g.ID != w.ID || g.Err.Error() != w.Err.Error() || !errors.Is(g.Err, preprocess.ErrBadInput) {
			t.Errorf("failed item %d: got %d %q %v, want %d %q %v (wrapping ErrBadInput)", i, g.Index, g.ID, g.Err, w.Index, w.ID, w.Err)
		}
	}
	if len(got.Tensors) != 1 || len(want.Tensors) != 1 {
		t.Fatalf("got %d tensors, want 1 (CPU gave %d)", len(got.Tensors), len(want.Tensors))
	}
	gt, wt := got.Tensors[0], want.Tensors[0]
	if gt.Name != wt.Name || gt.DType != wt.DType || !reflect.DeepEqual(gt.Shape, wt.Shape) {
		t.Errorf("tensor %s %s %v, want %s %s %v", gt.Name, gt.DType, gt.Shape, wt.Name, wt.DType, wt.Shape)
	}
	_, kd, _ := KernelFormat(spec)
	diff := kernelstest.Compare(kd, gt.Data, wt.Data)
	if len(gt.Data) != len(wt.Data) || !diff.WithinTolerance() || (diff.Mismatched != 0 && (exact || kd == kernels.Uint8)) {
		t.Errorf("tensor data (%d bytes, CPU %d): %v", len(gt.Data), len(wt.Data), diff)
	} else if diff.Mismatched != 0 {
		t.Logf("tensor data within tolerance, not bit-identical: %v", diff)
	}
}

// checkProcessor runs items through the CPU Processor and through a GPU
// Processor on r for every layout and dtype, and compares the batches;
// then it fills the GPU batch's tensor with 0xAB, releases it and runs the
// items again, so that recycled memory full of garbage must be
// overwritten everywhere.
func checkProcessor(t *testing.T, r runner, items []preprocess.Item, exact bool) {
	for _, l := range []image.Layout{image.NCHW, image.NHWC} {
		for _, d := range []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.BFloat16, preprocess.Uint8} {
			spec := image.DefaultSpec()
			spec.Layout, spec.DType = l, d
			t.Run(fmt.Sprintf("%s/%s", l, d), func(t *testing.T) {
				cpu, err := image.NewProcessor(spec, 2)
				if err != nil {
					t.Fatal(err)
				}
				want, err := cpu.Process(context.Background(), items)
				if err != nil {
					t.Fatal(err)
				}
				p, err := newProcessor(spec, r, 2)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 {
					got, err := p.Process(context.Background(), items)
					if err != nil {
						t.Fatal(err)
					}
					compareBatches(t, spec, got, want, exact)
					kernelstest.Poison(got.Tensors[0].Data, 0xab)
					got.Release()
				}
			})
		}
	}
}

func TestProcessMatchesCPUProcessor(t *testing.T) {
	checkProcessor(t, emulator{}, testItems(t), true)
}

func TestGPUFailureFailsBatchTransiently(t *testing.T) {
	boom := errors.New("launch failed")
	p, err := newProcessor(image.DefaultSpec(), failing{err: fmt.Errorf("%w: %w", kernels.ErrDeviceLost, boom)}, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Process(context.Background(), testItems(t))
	if err == nil {
		t.Fatalf("Process returned a batch (%d rows) although the device failed", b.Len())
	}
	if errors.Is(err, preprocess.ErrBadInput) {
		t.Errorf("device failure %v wraps ErrBadInput; it must be transient", err)
	}
	if !errors.Is(err, boom) || !errors.Is(err, kernels.ErrDeviceLost) {
		t.Errorf("error %v does not wrap the device's error", err)
	}
}

func TestAllItemsBadNeedsNoDevice(t *testing.T) {
	p, err := newProcessor(image.DefaultSpec(), failing{err: errors.New("must not be called")}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Process(context.Background(), []preprocess.Item{{ID: "x", Data: []byte("junk")}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 || len(b.Failed) != 1 || b.Tensors[0].Shape[0] != 0 {
		t.Errorf("got %d rows, %d failed, shape %v; want 0 rows, 1 failed, shape [0 ...]", b.Len(), len(b.Failed), b.Tensors[0].Shape)
	}
}

func TestCancelledContext(t *testing.T) {
	p, err := newProcessor(image.DefaultSpec(), emulator{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Process(ctx, testItems(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Process with a cancelled context returned %v, want context.Canceled", err)
	}
}

func TestNewProcessorRejectsBadSpec(t *testing.T) {
	spec := image.DefaultSpec()
	spec.Crop = 0
	if _, err := newProcessor(spec, emulator{}, 1); err == nil {
		t.Error("newProcessor accepted crop 0")
	}
	if _, err := newProcessor(image.DefaultSpec(), emulator{}, -1); err == nil {
		t.Error("newProcessor accepted -1 threads")
	}
}

func TestPlanCacheSharesPlansBySize(t *testing.T) {
	spec := image.DefaultSpec()
	var c planCache
	a, b := c.get(spec, 640, 427), c.get(spec, 640, 427)
	if a != b {
		t.Error("the same size was planned twice")
	}
	if want := planImage(spec, 640, 427); !reflect.DeepEqual(a, want) {
		t.Errorf("cached plan differs from a fresh one")
	}
	if c.get(spec, 427, 640) == a {
		t.Error("a different size got the same plan")
	}
}

// The GPU path's decoding holds each image's estimated memory against the
// spec's DecodeMemory: four decompression bombs (~300 MB each by estimate)
// on 4 threads under a 400 MB budget are decoded one at a time.
func TestDecodeMemoryBoundsTheGPUPathsDecoding(t *testing.T) {
	const budget = 400 << 20
	spec := image.DefaultSpec()
	spec.DecodeMemory = budget
	p, err := newProcessor(spec, emulator{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	bomb, err := os.ReadFile(filepath.Join("..", "image", "testdata", "bad", "bomb_progressive_4000x4000.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	items := make([]preprocess.Item, 4)
	for i := range items {
		items[i] = preprocess.Item{ID: fmt.Sprintf("bomb-%d", i), Data: bomb}
	}
	if _, err := p.Process(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if peak := p.budget.Peak(); peak < 200<<20 || peak > budget {
		t.Fatalf("the decode budget held at most %d MB at once, want one bomb's estimate (200..400 MB)", peak>>20)
	}
}
