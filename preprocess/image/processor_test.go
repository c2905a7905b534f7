package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	stdimage "image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newProcessor(t testing.TB, s Spec, threads int) *Processor {
	t.Helper()
	p, err := NewProcessor(s, threads)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInputs: every file of testdata/bad fails alone, with an error
// wrapping preprocess.ErrBadInput, while good items of the same batch succeed.
func TestBadInputs(t *testing.T) {
	cases := []struct {
		file     string
		sentinel error  // also matched with errors.Is; nil: only ErrBadInput
		words    string // the message says this
	}{
		{"skimage_truncated.jpg", ErrTruncated, "truncated"},
		{"coffee_420_cut_20000.jpg", ErrTruncated, "truncated after 20000 bytes"},
		{"coffee_progressive_cut_30000.jpg", ErrTruncated, "truncated after 30000 bytes"},
		{"coffee_rgb16_cut.png", ErrTruncated, "truncated"},
		{"chelsea_cut.gif", ErrTruncated, "truncated"},
		{"coffee_cut.bmp", nil, "bmp"},
		{"chelsea_palette_rle8.bmp", ErrUnsupported, "unsupported"},
		{"coffee_cb_only_subsampled.jpg", ErrUnsupported, "unsupported"},
		{"../regress/coffee_fatal_marker_after_warning.jpg", nil, "jpeg: cannot decode"}, // found by FuzzProcess (turbojpeg)
		{"text.txt", ErrUnsupported, "unsupported image format"},
		{"empty.jpg", ErrEmpty, "empty"},
		{"coffee_cut.ppm", ErrTruncated, "pnm: truncated after 5000 bytes (300x200 PPM needs 180064)"},
		{"rgb16.ppm", ErrUnsupported, "maximum value 65535 is not read"},
		{"plain_p3.ppm", ErrUnsupported, "P3 (plain or bitmap netpbm) is not read"},
		{"coffee_animated.webp", ErrUnsupported, "animated WebP is not read"},
	}
	good := readFile(t, filepath.Join("testdata", "corpus", "rocket.jpg"))
	p := newProcessor(t, DefaultSpec(), 2)
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			bad := readFile(t, filepath.Join("testdata", "bad", c.file))
			items := []preprocess.Item{{ID: "good-1", Data: good}, {ID: c.file, Data: bad}, {ID: "good-2", Data: good}}
			b, err := p.Process(context.Background(), items)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Failed) != 1 || b.Failed[0].Index != 1 || b.Failed[0].ID != c.file {
				t.Fatalf("Failed = %+v, want only item 1 (%s)", b.Failed, c.file)
			}
			e := b.Failed[0].Err
			if !errors.Is(e, preprocess.ErrBadInput) {
				t.Errorf("error %q does not wrap preprocess.ErrBadInput", e)
			}
			if c.sentinel != nil && !errors.Is(e, c.sentinel) {
				t.Errorf("error %q does not wrap %v", e, c.sentinel)
			}
			if !strings.Contains(e.Error(), c.words) {
				t.Errorf("error %q does not say %q", e, c.words)
			}
			if b.Len() != 2 || b.IDs[0] != "good-1" || b.IDs[1] != "good-2" {
				t.Fatalf("IDs = %v, want [good-1 good-2]", b.IDs)
			}
			rb := p.RowBytes()
			if !bytes.Equal(b.Tensors[0].Data[:rb], b.Tensors[0].Data[rb:2*rb]) {
				t.Fatal("the two rows of the same good image differ")
			}
			if _, err := DecodeRGB(bad, DefaultSpec()); !errors.Is(err, preprocess.ErrBadInput) {
				t.Errorf("DecodeRGB: %v, want a bad-input error", err)
			}
		})
	}
}

// TestTruncatedJPEGNotGrey: cutting a JPEG anywhere inside its scan data
// gives an error, never an image.
func TestTruncatedJPEGNotGrey(t *testing.T) {
	for _, name := range []string{"coffee_420.jpg", "coffee_progressive.jpg", "chelsea_gray.jpg", "coffee_cmyk.jpg"} {
		data := readFile(t, filepath.Join("testdata", "corpus", name))
		for _, frac := range []float64{0.3, 0.6, 0.9, 0.999} {
			n := int(float64(len(data)) * frac)
			if _, err := DecodeRGB(data[:n], DefaultSpec()); !errors.Is(err, ErrTruncated) {
				t.Errorf("%s cut at %d of %d bytes: err = %v, want ErrTruncated", name, n, len(data), err)
			}
		}
	}
}

func TestLimits(t *testing.T) {
	data := readFile(t, filepath.Join("testdata", "corpus", "rocket.jpg")) // 640x427
	cases := []struct {
		name      string
		maxBytes  int64
		maxPixels int64
		want      string // "" means it succeeds
	}{
		{"no limits", 0, 0, ""},
		{"at the byte limit", int64(len(data)), 0, ""},
		{"over the byte limit", int64(len(data)) - 1, 0, "over image.max_bytes"},
		{"at the pixel limit", 0, 640 * 427, ""},
		{"over the pixel limit", 0, 640*427 - 1, "640x427 is 273280 pixels, over image.max_pixels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSpec()
			s.MaxBytes, s.MaxPixels = c.maxBytes, c.maxPixels
			_, err := DecodeRGB(data, s)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr, wantReason := ErrTooLarge, preprocess.ReasonTooLarge
			if c.maxPixels > 0 {
				wantErr, wantReason = ErrTooManyPixels, preprocess.ReasonTooManyPixels
			}
			if !errors.Is(err, wantErr) || !errors.Is(err, preprocess.ErrBadInput) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %v saying %q", err, wantErr, c.want)
			}
			if got := preprocess.ReasonOf(err); got != wantReason {
				t.Fatalf("reason %q, want %q", got, wantReason)
			}
		})
	}
}

// TestMaxPixelsBeforeDecoding: a header claiming a huge image is refused
// without decoding (the body here is garbage that would fail to decode).
func TestMaxPixelsBeforeDecoding(t *testing.T) {
	var buf bytes.Buffer
	m := stdimage.NewGray(stdimage.Rect(0, 0, 8, 8))
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	// IHDR width and height are at bytes 16..24; claim 60000x60000.
	binary.BigEndian.PutUint32(data[16:], 60000)
	binary.BigEndian.PutUint32(data[20:], 60000)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	s := DefaultSpec()
	s.MaxPixels = 50_000_000
	_, err := DecodeRGB(data, s)
	if !errors.Is(err, ErrTooManyPixels) || !strings.Contains(err.Error(), "60000x60000") {
		t.Fatalf("err = %v, want the pixel limit naming 60000x60000", err)
	}
}

// TestDTypesAndLayouts checks every dtype and layout against the float32
// NCHW output of the same image, converted independently here.
func TestDTypesAndLayouts(t *testing.T) {
	data := readFile(t, filepath.Join("testdata", "corpus", "coffee_250x167_upscale.png"))
	ref := newProcessor(t, DefaultSpec(), 1)
	rb, err := ref.Process(context.Background(), []preprocess.Item{{ID: "x", Data: data}})
	if err != nil || len(rb.Failed) > 0 {
		t.Fatal(err, rb.Failed)
	}
	want := floats(rb.Tensors[0].Data)
	golden, _ := goldenTensor(t, "coffee_250x167_upscale.png")
	if maxd, _, _ := diffStats(want, golden); maxd != 0 {
		t.Fatalf("reference output differs from the golden by %g", maxd)
	}
	levels := goldenLevels(t, "coffee_250x167_upscale.png")
	const side = 224
	cases := []struct {
		name   string
		layout Layout
		dtype  preprocess.DType
	}{
		{"nchw f16", NCHW, preprocess.Float16},
		{"nchw bf16", NCHW, preprocess.BFloat16},
		{"nchw u8", NCHW, preprocess.Uint8},
		{"nhwc f32", NHWC, preprocess.Float32},
		{"nhwc f16", NHWC, preprocess.Float16},
		{"nhwc u8", NHWC, preprocess.Uint8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSpec()
			s.Layout, s.DType = c.layout, c.dtype
			p := newProcessor(t, s, 1)
			b, err := p.Process(context.Background(), []preprocess.Item{{ID: "x", Data: data}})
			if err != nil || len(b.Failed) > 0 {
				t.Fatal(err, b.Failed)
			}
			tt := b.Tensors[0]
			wantShape := []int{1, 3, side, side}
			if c.layout == NHWC {
				wantShape = []int{1, side, side, 3}
			}
			if tt.DType != c.dtype || len(tt.Shape) != 4 || tt.Shape[1] != wantShape[1] || tt.Shape[3] != wantShape[3] || len(tt.Data) != 3*side*side*c.dtype.Size() {
				t.Fatalf("tensor %s %v with %d bytes", tt.DType, tt.Shape, len(tt.Data))
			}
			for ch := 0; ch < 3; ch++ {
				for y := 0; y < side; y++ {
					for x := 0; x < side; x++ {
						src := ch*side*side + y*side + x
						at := src
						if c.layout == NHWC {
							at = (y*side+x)*3 + ch
						}
						var ok bool
						switch c.dtype {
						case preprocess.Float32:
							ok = math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[at*4:])) == want[src]
						case preprocess.Float16:
							ok = binary.LittleEndian.Uint16(tt.Data[at*2:]) == preprocess.Float16Bits(want[src])
						case preprocess.BFloat16:
							ok = binary.LittleEndian.Uint16(tt.Data[at*2:]) == preprocess.BFloat16Bits(want[src])
						case preprocess.Uint8:
							ok = tt.Data[at] == levels[src]
						}
						if !ok {
							t.Fatalf("element c=%d y=%d x=%d differs from the float32 NCHW reference", ch, y, x)
						}
					}
				}
			}
		})
	}
}

// goldenLevels returns the golden's uint8 levels in CHW order.
func goldenLevels(t *testing.T, name string) []uint8 {
	t.Helper()
	m, err := png.Decode(bytes.NewReader(readFile(t, filepath.Join("testdata", "golden", name+".png"))))
	if err != nil {
		t.Fatal(err)
	}
	rgba := m.(*stdimage.RGBA)
	side := rgba.Rect.Dx()
	out := make([]uint8, 3*side*side)
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			for c := 0; c < 3; c++ {
				out[c*side*side+y*side+x] = rgba.Pix[y*rgba.Stride+x*4+c]
			}
		}
	}
	return out
}

// TestBatchOrderAndFacts: rows follow the input order whatever the number
// of threads, and original_size is [height, width] of each row.
func TestBatchOrderAndFacts(t *testing.T) {
	names := []string{"rocket.jpg", "chelsea_64x43.png", "coffee_4000x300_wide.jpg", "camera_gray.png", "chelsea.gif"}
	sizes := [][2]int{{427, 640}, {43, 64}, {300, 4000}, {512, 512}, {300, 451}}
	var items []preprocess.Item
	for _, n := range names {
		items = append(items, preprocess.Item{ID: n, Data: readFile(t, filepath.Join("testdata", "corpus", n))})
	}
	one := newProcessor(t, DefaultSpec(), 1)
	want, err := one.Process(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{1, 2, 3, 8} {
		p := newProcessor(t, DefaultSpec(), threads)
		b, err := p.Process(context.Background(), items)
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() != len(names) || len(b.Failed) != 0 {
			t.Fatalf("threads %d: %d rows, failed %v", threads, b.Len(), b.Failed)
		}
		for i, n := range names {
			if b.IDs[i] != n || b.RowFacts["original_size"][i] != sizes[i] {
				t.Fatalf("threads %d row %d: %s %v, want %s %v", threads, i, b.IDs[i], b.RowFacts["original_size"][i], n, sizes[i])
			}
		}
		if !bytes.Equal(b.Tensors[0].Data, want.Tensors[0].Data) {
			t.Fatalf("threads %d: output differs from one thread", threads)
		}
		if b.Tensors[0].Shape[0] != len(names) || b.Pipeline != "image" || b.Tensors[0].Name != "pixel_values" {
			t.Fatalf("threads %d: tensor %s %v pipeline %q", threads, b.Tensors[0].Name, b.Tensors[0].Shape, b.Pipeline)
		}
		dec, tr := b.Timings[preprocess.StageDecode], b.Timings[preprocess.StageTransform]
		if dec <= 0 || tr <= 0 || len(b.Timings) != 2 {
			t.Fatalf("threads %d: timings %v, want decode and transform", threads, b.Timings)
		}
	}
}

func TestProcessCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := newProcessor(t, DefaultSpec(), 2)
	items := []preprocess.Item{{ID: "a", Data: readFile(t, filepath.Join("testdata", "corpus", "rocket.jpg"))}}
	if _, err := p.Process(ctx, items); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestTransformRGBMatchesProcess: decoding with DecodeRGB and transforming
// with TransformRGB is the Processor's path, split in two.
func TestTransformRGBMatchesProcess(t *testing.T) {
	p := newProcessor(t, DefaultSpec(), 1)
	for _, name := range []string{"coffee_420.jpg", "rocket_300x4000_tall.jpg", "chelsea_lossless.webp", "coffee_cmyk.jpg"} {
		data := readFile(t, filepath.Join("testdata", "corpus", name))
		img, err := DecodeRGB(data, DefaultSpec())
		if err != nil {
			t.Fatal(err)
		}
		row := make([]byte, p.RowBytes())
		if err := p.TransformRGB(row, img); err != nil {
			t.Fatal(err)
		}
		b, err := p.Process(context.Background(), []preprocess.Item{{ID: name, Data: data}})
		if err != nil || len(b.Failed) > 0 {
			t.Fatal(err, b.Failed)
		}
		if !bytes.Equal(row, b.Tensors[0].Data) {
			t.Errorf("%s: TransformRGB(DecodeRGB) differs from Process", name)
		}
	}
	if err := p.TransformRGB(make([]byte, 10), &RGB{Width: 2, Height: 2, Pix: make([]byte, 12)}); err == nil {
		t.Error("TransformRGB accepted a destination of the wrong size")
	}
	if err := p.TransformRGB(make([]byte, p.RowBytes()), &RGB{Width: 2, Height: 2, Pix: make([]byte, 5)}); err == nil {
		t.Error("TransformRGB accepted a short pixel buffer")
	}
}

// TestFancyUpsamplingMatters shows what the chroma upsampler buys: Go's own
// conversion (sample repetition, Go's YCbCr formula) is much further from
// torchvision than the package's on a 4:2:0 file.
func TestFancyUpsamplingMatters(t *testing.T) {
	name := "coffee_420.jpg"
	data := readFile(t, filepath.Join("testdata", "corpus", name))
	m, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := m.Bounds()
	img := &RGB{Width: b.Dx(), Height: b.Dy(), Pix: make([]byte, b.Dx()*b.Dy()*3)}
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bb, _ := m.At(x, y).RGBA()
			img.Pix[(y*b.Dx()+x)*3], img.Pix[(y*b.Dx()+x)*3+1], img.Pix[(y*b.Dx()+x)*3+2] = uint8(r>>8), uint8(g>>8), uint8(bb>>8)
		}
	}
	p := newProcessor(t, DefaultSpec(), 1)
	row := make([]byte, p.RowBytes())
	if err := p.TransformRGB(row, img); err != nil {
		t.Fatal(err)
	}
	golden, _ := goldenTensor(t, name)
	naive, _, _ := diffStats(floats(row), golden)
	ours, err := DecodeRGB(data, DefaultSpec())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TransformRGB(row, ours); err != nil {
		t.Fatal(err)
	}
	fancy, _, _ := diffStats(floats(row), golden)
	t.Logf("%s: max difference with Go's conversion %.3f, with the package's %.3f", name, naive, fancy)
	if !(fancy < naive/2) {
		t.Fatalf("fancy upsampling max %.3f is not clearly better than repetition %.3f", fancy, naive)
	}
}

// TestNoStateLeaksBetweenItems: a worker that processed other images first
// gives the same result for an item as a fresh one, including for corrupt
// items a decoder abandons part way (a FuzzProcess finding: TurboJPEG wrote
// only some rows and the pooled buffer kept the previous image's pixels).
func TestNoStateLeaksBetweenItems(t *testing.T) {
	items := []string{"corpus/coffee_420.jpg", "regress/coffee_fatal_marker_after_warning.jpg", "corpus/chelsea_64x43.png", "corpus/rocket_200x133_upscale.jpg"}
	warm := readFile(t, filepath.Join("testdata", "corpus", "bench_retina_1200.jpg"))
	for _, name := range items {
		data := readFile(t, filepath.Join("testdata", name))
		fresh := newProcessor(t, DefaultSpec(), 1)
		want, err := fresh.Process(context.Background(), []preprocess.Item{{ID: name, Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		used := newProcessor(t, DefaultSpec(), 1)
		got, err := used.Process(context.Background(), []preprocess.Item{{ID: "warm", Data: warm}, {ID: name, Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Failed) > 0 {
			if len(got.Failed) != 1 || got.Failed[0].Index != 1 {
				t.Errorf("%s: fails alone (%v) but after another item: %v", name, want.Failed[0].Err, got.Failed)
			}
			continue
		}
		rb := used.RowBytes()
		if got.Len() != 2 || !bytes.Equal(got.Tensors[0].Data[rb:2*rb], want.Tensors[0].Data) {
			t.Errorf("%s: output after another item differs from a fresh processor's", name)
		}
	}
}
