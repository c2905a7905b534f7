package metrics

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stoker-ml/stoker/preprocess"
)

type layout int

const (
	nchw layout = iota
	nhwc
)

const (
	f32  = preprocess.Float32
	f16  = preprocess.Float16
	bf16 = preprocess.BFloat16
	u8   = preprocess.Uint8
)

// putElement writes v as one element of dtype d.
func putElement(t testing.TB, b []byte, d preprocess.DType, v float64) {
	switch d {
	case f32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v)))
	case f16:
		binary.LittleEndian.PutUint16(b, preprocess.Float16Bits(float32(v)))
	case bf16:
		binary.LittleEndian.PutUint16(b, preprocess.BFloat16Bits(float32(v)))
	case u8:
		b[0] = uint8(v)
	default:
		t.Fatalf("putElement: dtype %s", d)
	}
}

// imageBatch makes a 4×4 image per row whose channel c is the constant
// values[row][c], with original_size {10*(row+1), 20*(row+1)}.
func imageBatch(t testing.TB, l layout, d preprocess.DType, values [][3]float64) *preprocess.Batch {
	return imageBatchFunc(t, l, d, len(values), 4, 4, func(row, c, y, x int) float64 { return values[row][c] })
}

func imageBatchFunc(t testing.TB, l layout, d preprocess.DType, rows, h, w int, value func(row, c, y, x int) float64) *preprocess.Batch {
	shape := []int{rows, 3, h, w}
	if l == nhwc {
		shape = []int{rows, h, w, 3}
	}
	size := d.Size()
	data := make([]byte, rows*3*h*w*size)
	b := &preprocess.Batch{Pipeline: "image", RowFacts: map[string][]any{}}
	for r := range rows {
		for c := range 3 {
			for y := range h {
				for x := range w {
					i := r*3*h*w + c*h*w + y*w + x // NCHW
					if l == nhwc {
						i = r*3*h*w + (y*w+x)*3 + c
					}
					putElement(t, data[i*size:], d, value(r, c, y, x))
				}
			}
		}
		b.IDs = append(b.IDs, "img")
		b.RowFacts[FactOriginalSize] = append(b.RowFacts[FactOriginalSize], [2]int{10 * (r + 1), 20 * (r + 1)})
	}
	b.Tensors = []preprocess.Tensor{{Name: TensorPixelValues, DType: d, Shape: shape, Data: data}}
	return b
}

// textBatch makes int64 input_ids and attention_mask [rows, L]; each row's
// ids are followed by padding (id 0, mask 0) up to L.
func textBatch(rows [][]int64, L int) *preprocess.Batch {
	b := &preprocess.Batch{Pipeline: "text", RowFacts: map[string][]any{}}
	ids := make([]byte, len(rows)*L*8)
	mask := make([]byte, len(rows)*L*8)
	for r, row := range rows {
		for j, id := range row {
			binary.LittleEndian.PutUint64(ids[(r*L+j)*8:], uint64(id))
			binary.LittleEndian.PutUint64(mask[(r*L+j)*8:], 1)
		}
		b.IDs = append(b.IDs, "doc")
		b.RowFacts[FactNumTokens] = append(b.RowFacts[FactNumTokens], len(row))
	}
	shape := []int{len(rows), L}
	b.Tensors = []preprocess.Tensor{
		{Name: TensorInputIDs, DType: preprocess.Int64, Shape: shape, Data: ids},
		{Name: TensorAttentionMask, DType: preprocess.Int64, Shape: shape, Data: mask},
	}
	return b
}

func channel(t *testing.T, v *prometheus.GaugeVec, pipeline, ch string) float64 {
	t.Helper()
	return testutil.ToFloat64(v.WithLabelValues(pipeline, ch))
}

func TestObserveBatchChannelStats(t *testing.T) {
	// Two images per case: channel r is 1 then 3 (mean 2, std 1), g is
	// 0.5 twice (mean 0.5, std 0), b is -2 then 2 (mean 0, std 2).
	values := [][3]float64{{1, 0.5, -2}, {3, 0.5, 2}}
	wantMean := map[string]float64{"r": 2, "g": 0.5, "b": 0}
	wantStd := map[string]float64{"r": 1, "g": 0, "b": 2}
	// uint8 cannot hold the negative values: its own case below.
	cases := []struct {
		name   string
		layout layout
		dtype  preprocess.DType
	}{
		{"NCHW float32", nchw, f32},
		{"NHWC float32", nhwc, f32},
		{"NCHW float16", nchw, f16},
		{"NHWC bfloat16", nhwc, bf16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(prometheus.NewRegistry())
			m.ObserveBatch("image", imageBatch(t, tc.layout, tc.dtype, values))
			for _, ch := range channelNames {
				if got := channel(t, m.ImageChannelMean, "image", ch); math.Abs(got-wantMean[ch]) > 1e-9 {
					t.Errorf("channel %s mean = %v, want %v", ch, got, wantMean[ch])
				}
				if got := channel(t, m.ImageChannelStd, "image", ch); math.Abs(got-wantStd[ch]) > 1e-6 {
					t.Errorf("channel %s std = %v, want %v", ch, got, wantStd[ch])
				}
			}
		})
	}
	// uint8 tensors hold resized pixels: ObserveBatch normalises them.
	uint8Cases := []struct {
		name      string
		set       bool
		mean, std [3]float32
		values    [][3]float64
		want      map[string][2]float64 // channel → mean, std
	}{
		{
			// (v/255 - 0.5)/0.5 = 2v/255 - 1: r 0 and 255 → -1 and 1;
			// g 51 twice → -0.6; b 255 twice → 1.
			name: "uint8 with its normalisation", set: true,
			mean: [3]float32{0.5, 0.5, 0.5}, std: [3]float32{0.5, 0.5, 0.5},
			values: [][3]float64{{0, 51, 255}, {255, 51, 255}},
			want:   map[string][2]float64{"r": {0, 1}, "g": {-0.6, 0}, "b": {1, 0}},
		},
		{
			// ImageNet statistics by default: 255 → (1 - mean)/std.
			name:   "uint8 with the default normalisation",
			values: [][3]float64{{255, 255, 255}},
			want: map[string][2]float64{
				"r": {(1 - 0.485) / 0.229, 0}, "g": {(1 - 0.456) / 0.224, 0}, "b": {(1 - 0.406) / 0.225, 0},
			},
		},
	}
	for _, tc := range uint8Cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(prometheus.NewRegistry())
			if tc.set {
				m.SetImageNormalization("image", tc.mean, tc.std)
			}
			m.ObserveBatch("image", imageBatch(t, nchw, u8, tc.values))
			for ch, want := range tc.want {
				if got := channel(t, m.ImageChannelMean, "image", ch); math.Abs(got-want[0]) > 1e-6 {
					t.Errorf("channel %s mean = %v, want %v", ch, got, want[0])
				}
				if got := channel(t, m.ImageChannelStd, "image", ch); math.Abs(got-want[1]) > 1e-6 {
					t.Errorf("channel %s std = %v, want %v", ch, got, want[1])
				}
			}
		})
	}
}

// TestObserveBatchSampling checks the strided sample of a large image
// against the exact statistics of a horizontal ramp.
func TestObserveBatchSampling(t *testing.T) {
	const h, w = 224, 224
	m := New(prometheus.NewRegistry())
	// Channel c at column x is x/(w-1) + c: a uniform ramp over [c, c+1],
	// mean c+0.5 and std sqrt((w+1)/(12(w-1))) ≈ 0.2899.
	m.ObserveBatch("image", imageBatchFunc(t, nchw, f32, 1, h, w, func(_, c, _, x int) float64 {
		return float64(x)/float64(w-1) + float64(c)
	}))
	wantStd := math.Sqrt(float64(w+1) / (12 * float64(w-1)))
	for c, ch := range channelNames {
		if got, want := channel(t, m.ImageChannelMean, "image", ch), float64(c)+0.5; math.Abs(got-want) > 0.02 {
			t.Errorf("channel %s mean = %v, want %v ± 0.02", ch, got, want)
		}
		if got := channel(t, m.ImageChannelStd, "image", ch); math.Abs(got-wantStd) > 0.02 {
			t.Errorf("channel %s std = %v, want %v ± 0.02", ch, got, wantStd)
		}
	}
}

// TestObserveBatchWindow checks that old images fade: after a full window
// of images at 1, k images at 5 leave the mean at 5 - 4(1-1/N)^k.
func TestObserveBatchWindow(t *testing.T) {
	m := New(prometheus.NewRegistry())
	fill := func(v float64, n int) {
		for range n {
			m.ObserveBatch("image", imageBatch(t, nchw, f32, [][3]float64{{v, v, v}}))
		}
	}
	fill(1, DriftWindowItems)
	if got := channel(t, m.ImageChannelMean, "image", "r"); math.Abs(got-1) > 1e-9 {
		t.Fatalf("after %d images at 1: mean %v", DriftWindowItems, got)
	}
	const k = 1000
	fill(5, k)
	want := 5 - 4*math.Pow(1-1.0/DriftWindowItems, k)
	if got := channel(t, m.ImageChannelMean, "image", "r"); math.Abs(got-want) > 1e-6 {
		t.Errorf("mean = %v, want %v", got, want)
	}
}

func TestObserveBatchImageSizes(t *testing.T) {
	m := New(prometheus.NewRegistry())
	// Rows have original sizes {10,20}, {20,40}, {30,60}.
	m.ObserveBatch("image", imageBatch(t, nchw, f32, make([][3]float64, 3)))
	for name, c := range map[string]prometheus.Collector{
		"stoker_image_input_height_pixels": m.ImageHeightPixels,
		"stoker_image_input_width_pixels":  m.ImageWidthPixels,
	} {
		mfs, err := testutil.CollectAndLint(c)
		if err != nil || len(mfs) != 0 {
			t.Errorf("%s: lint %v %v", name, mfs, err)
		}
	}
	h := histogramOf(t, m.ImageHeightPixels, "image")
	w := histogramOf(t, m.ImageWidthPixels, "image")
	if h.count != 3 || h.sum != 60 || w.count != 3 || w.sum != 120 {
		t.Errorf("heights count %d sum %v, widths count %d sum %v; want 3 60 and 3 120", h.count, h.sum, w.count, w.sum)
	}
}

type histo struct {
	count uint64
	sum   float64
}

func histogramOf(t *testing.T, v *prometheus.HistogramVec, pipeline string) histo {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(v)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					return histo{m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	return histo{}
}

func TestObserveBatchText(t *testing.T) {
	rows := [][]int64{
		{101, 2023, 100, 102}, // [CLS] word [UNK] [SEP]
		{101, 100, 100, 7, 8, 102},
	}
	t.Run("with unknown id", func(t *testing.T) {
		m := New(prometheus.NewRegistry())
		m.SetUnknownTokenID("text", 100)
		m.ObserveBatch("text", textBatch(rows, 8))
		if got := testutil.ToFloat64(m.TextTokensTotal.WithLabelValues("text")); got != 10 {
			t.Errorf("tokens = %v, want 10", got)
		}
		if got := testutil.ToFloat64(m.TextUnknownTokensTotal.WithLabelValues("text")); got != 3 {
			t.Errorf("unknown tokens = %v, want 3", got)
		}
		if h := histogramOf(t, m.TextItemTokens, "text"); h.count != 2 || h.sum != 10 {
			t.Errorf("token lengths count %d sum %v, want 2 and 10", h.count, h.sum)
		}
	})
	t.Run("without unknown id", func(t *testing.T) {
		m := New(prometheus.NewRegistry())
		m.ObserveBatch("text", textBatch(rows, 8))
		if got := testutil.ToFloat64(m.TextTokensTotal.WithLabelValues("text")); got != 10 {
			t.Errorf("tokens = %v, want 10", got)
		}
		if n := testutil.CollectAndCount(m.TextUnknownTokensTotal); n != 0 {
			t.Errorf("unknown-token series = %d, want none until SetUnknownTokenID", n)
		}
	})
	t.Run("padding id equal to unknown id is not counted", func(t *testing.T) {
		m := New(prometheus.NewRegistry())
		m.SetUnknownTokenID("text", 0) // textBatch pads with id 0, mask 0
		m.ObserveBatch("text", textBatch([][]int64{{5, 0, 6}}, 8))
		if got := testutil.ToFloat64(m.TextUnknownTokensTotal.WithLabelValues("text")); got != 1 {
			t.Errorf("unknown tokens = %v, want 1 (only the unmasked 0)", got)
		}
	})
}

// TestObserveBatchIgnoresOddInput checks that nothing is recorded, and
// nothing panics, for batches ObserveBatch cannot read.
func TestObserveBatchIgnoresOddInput(t *testing.T) {
	idsOnly := textBatch([][]int64{{1, 2}}, 2)
	idsOnly.Tensors = idsOnly.Tensors[:1]
	cases := []struct {
		name string
		b    *preprocess.Batch
	}{
		{"nil", nil},
		{"empty", &preprocess.Batch{}},
		{"two channels", &preprocess.Batch{IDs: []string{"a"}, Tensors: []preprocess.Tensor{{Name: TensorPixelValues, DType: f32, Shape: []int{1, 2, 2, 2}, Data: make([]byte, 32)}}}},
		{"short data", &preprocess.Batch{IDs: []string{"a"}, Tensors: []preprocess.Tensor{{Name: TensorPixelValues, DType: f32, Shape: []int{1, 3, 2, 2}, Data: make([]byte, 4)}}}},
		{"unknown dtype", &preprocess.Batch{IDs: []string{"a"}, Tensors: []preprocess.Tensor{{Name: TensorPixelValues, DType: "F64", Shape: []int{1, 3, 1, 1}, Data: make([]byte, 24)}}}},
		{"ids without mask", idsOnly},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(prometheus.NewRegistry())
			m.ObserveBatch("p", tc.b)
			for name, c := range map[string]prometheus.Collector{"mean": m.ImageChannelMean, "tokens": m.TextTokensTotal} {
				if n := testutil.CollectAndCount(c); n != 0 {
					t.Errorf("%s: %d series recorded from an unreadable batch", name, n)
				}
			}
		})
	}
}

// TestFloat16ToFloat32 checks the widening against preprocess.Float16Bits:
// every non-NaN half value must survive the round trip.
func TestFloat16ToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		f := float16ToFloat32(uint16(h))
		if f != f { // NaN
			if e := uint16(h) >> 10 & 0x1f; e != 0x1f || h&0x3ff == 0 {
				t.Fatalf("half %#04x widened to NaN", h)
			}
			continue
		}
		if back := preprocess.Float16Bits(f); back != uint16(h) {
			t.Fatalf("half %#04x → %v → %#04x", h, f, back)
		}
	}
	for _, tc := range []struct {
		h    uint16
		want float32
	}{{0x3c00, 1}, {0xc000, -2}, {0x0001, 1.0 / (1 << 24)}, {0x7bff, 65504}} {
		if got := float16ToFloat32(tc.h); got != tc.want {
			t.Errorf("half %#04x = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// BenchmarkObserveBatch measures the drift signals' cost per batch. Compare
// runs with benchstat (go test -bench ObserveBatch -count 10 > new.txt).
func BenchmarkObserveBatch(b *testing.B) {
	img := imageBatchFunc(b, nchw, f32, 64, 224, 224, func(r, c, y, x int) float64 { return float64(x+y+c+r) / 500 })
	ids := make([][]int64, 64)
	for i := range ids {
		for j := range 128 {
			ids[i] = append(ids[i], int64(j+i))
		}
	}
	txt := textBatch(ids, 128)
	// Reference: one full pass summing every element of the image tensor,
	// what exact (unsampled) statistics would cost at the least.
	b.Run("reference_full_pass_64x3x224x224_f32", func(b *testing.B) {
		t := img.Tensors[0]
		read := elementReader(t.DType)
		b.SetBytes(int64(len(t.Data)))
		b.ReportAllocs()
		var sink float64
		for b.Loop() {
			for i := 0; i < len(t.Data); i += 4 {
				sink += read(t.Data[i:])
			}
		}
		b.ReportMetric(float64(b.N*img.Len())/b.Elapsed().Seconds(), "items/s")
		_ = sink
	})
	for _, bc := range []struct {
		name  string
		batch *preprocess.Batch
	}{{"image_64x3x224x224_f32", img}, {"text_64x128_i64", txt}} {
		b.Run(bc.name, func(b *testing.B) {
			m := New(prometheus.NewRegistry())
			m.SetUnknownTokenID("p", 100)
			var size int
			for _, t := range bc.batch.Tensors {
				size += len(t.Data)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				m.ObserveBatch("p", bc.batch)
			}
			b.ReportMetric(float64(b.N*bc.batch.Len())/b.Elapsed().Seconds(), "items/s")
		})
	}
}
