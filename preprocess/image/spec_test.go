package image

import (
	"fmt"
	stdimage "image"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Spec)
		want   string // substring of the error; "" means valid
	}{
		{"default", func(*Spec) {}, ""},
		{"crop equals resize", func(s *Spec) { s.Crop = 256 }, ""},
		{"nhwc bf16", func(s *Spec) { s.Layout = NHWC; s.DType = preprocess.BFloat16 }, ""},
		{"crop larger than resize", func(s *Spec) { s.Crop = 300 }, "image.crop: 300 is larger than image.resize 256"},
		{"zero resize", func(s *Spec) { s.Resize = 0 }, "image.resize"},
		{"huge resize", func(s *Spec) { s.Resize = 1 << 20 }, "image.resize"},
		{"negative crop", func(s *Spec) { s.Crop = -1 }, "image.crop"},
		{"bad layout", func(s *Spec) { s.Layout = "CHW" }, "image.layout"},
		{"int64 dtype", func(s *Spec) { s.DType = preprocess.Int64 }, "image.dtype"},
		{"zero std", func(s *Spec) { s.Std[1] = 0 }, "image.std[1]"},
		{"negative max bytes", func(s *Spec) { s.MaxBytes = -1 }, "image.max_bytes"},
		{"negative max pixels", func(s *Spec) { s.MaxPixels = -5 }, "image.max_pixels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSpec()
			c.change(&s)
			err := s.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// The expected sizes are torchvision 0.14's, worked out by hand from
// F.resize (short side 256, long side int(256*long/short)) and
// F.center_crop (int(round((size-224)/2.0)), Python rounding half to even).
func TestResizedSizeAndCropOffset(t *testing.T) {
	cases := []struct {
		name         string
		w, h         int
		rw, rh       int
		cropX, cropY int
	}{
		{"landscape 640x427", 640, 427, 383, 256, 80, 16},         // 383.7 truncated; 79.5 rounds to 80
		{"portrait 427x640", 427, 640, 256, 383, 16, 80},          // transposed
		{"square", 500, 500, 256, 256, 16, 16},                    //
		{"exact 2x", 512, 768, 256, 384, 16, 80},                  //
		{"upscale 200x133", 200, 133, 384, 256, 80, 16},           // 256*200/133 = 384.96
		{"wide 4000x300", 4000, 300, 3413, 256, 1594, 16},         // 3413.33; (3413-224)/2 = 1594.5 -> 1594
		{"odd half 257x225", 257, 225, 292, 256, 34, 16},          // 292.4; 34
		{"half to even up", 1230, 830, 379, 256, 78, 16},          // 379.37; (379-224)/2 = 77.5 -> 78
		{"tiny 64x43", 64, 43, 381, 256, 78, 16},                  // 381.02; 78.5 -> 78
		{"tall 300x4000", 300, 4000, 256, 3413, 16, 1594},         //
		{"resize equals short side", 451, 256, 451, 256, 114, 16}, // 113.5 -> 114
	}
	s := DefaultSpec()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rw, rh := s.ResizedSize(c.w, c.h)
			if rw != c.rw || rh != c.rh {
				t.Fatalf("ResizedSize(%d,%d) = %d,%d, want %d,%d", c.w, c.h, rw, rh, c.rw, c.rh)
			}
			x, y := s.CropOffset(rw, rh)
			if x != c.cropX || y != c.cropY {
				t.Fatalf("CropOffset(%d,%d) = %d,%d, want %d,%d", rw, rh, x, y, c.cropX, c.cropY)
			}
		})
	}
}

func TestPlanAxis(t *testing.T) {
	cases := []struct {
		name                     string
		in, resized, offset, out int
		taps                     int // PIL's window: 2*ceil(max(1, in/resized))+1
	}{
		{"downscale 1200->256", 1200, 256, 16, 224, 2*5 + 1},
		{"exact 2x", 512, 256, 16, 224, 2*2 + 1},
		{"same size", 256, 256, 16, 224, 3},
		{"upscale 133->256", 133, 256, 16, 224, 3},
		{"wide axis", 4000, 3413, 1594, 224, 2*2 + 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PlanAxis(c.in, c.resized, c.offset, c.out)
			if p.Out != c.out || p.Taps != c.taps {
				t.Fatalf("Out, Taps = %d, %d; want %d, %d", p.Out, p.Taps, c.out, c.taps)
			}
			if len(p.Start) != c.out || len(p.Count) != c.out || len(p.Coeffs) != c.out*c.taps {
				t.Fatalf("array lengths %d %d %d", len(p.Start), len(p.Count), len(p.Coeffs))
			}
			for i := 0; i < c.out; i++ {
				start, n := int(p.Start[i]), int(p.Count[i])
				if start < 0 || n < 1 || n > p.Taps || start+n > c.in {
					t.Fatalf("sample %d: window [%d,%d) of %d inputs, taps %d", i, start, start+n, c.in, p.Taps)
				}
				// The window is centred on the output sample's centre in input coordinates.
				centre := (float64(c.offset+i) + 0.5) * float64(c.in) / float64(c.resized)
				if centre < float64(start) || centre > float64(start+n) {
					t.Fatalf("sample %d: centre %.2f outside window [%d,%d)", i, centre, start, start+n)
				}
				sum := int32(0)
				for j, k := range p.Coeffs[i*p.Taps : (i+1)*p.Taps] {
					if k < 0 || (j >= n && k != 0) {
						t.Fatalf("sample %d: coefficient %d is %d", i, j, k)
					}
					sum += k
				}
				// Each weight is rounded on its own: the sum is within one unit per tap.
				if d := sum - 1<<PrecisionBits; d < -int32(n) || d > int32(n) {
					t.Fatalf("sample %d: coefficients sum to %d, want %d±%d", i, sum, 1<<PrecisionBits, n)
				}
			}
			if c.in == c.resized {
				for i := 0; i < c.out; i++ {
					if p.Coeffs[i*p.Taps] != 1<<PrecisionBits || p.Start[i] != int32(c.offset+i) {
						t.Fatalf("same size: sample %d starts at %d with weight %d, want identity", i, p.Start[i], p.Coeffs[i*p.Taps])
					}
				}
			}
		})
	}
}

// TestVerticalKernelsAgree compares the AVX2 vertical kernel (when the CPU
// has it) with the pure-Go one on random rows, weights and lengths,
// including lengths that are not a multiple of 8 and sums that clip.
func TestVerticalKernelsAgree(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 kernel in this build or on this CPU; the Go kernel is covered by the golden tests")
	}
	rng := uint32(12345)
	next := func() uint32 { rng = rng*1664525 + 1013904223; return rng >> 8 }
	for _, rowLen := range []int{8, 9, 15, 16, 381, 672} {
		for _, taps := range []int{1, 2, 3, 7, 20} {
			between := make([]uint8, (taps+2)*rowLen)
			for i := range between {
				between[i] = uint8(next())
			}
			k := make([]int32, taps)
			left := int32(1 << PrecisionBits)
			for j := range k {
				k[j] = int32(next()) % (left/int32(taps-j) + 1)
				left -= k[j]
			}
			k[taps-1] += left + int32(taps) // a little over 1<<22: exercises clipping at 255
			acc := make([]uint64, rowLen/2+1)
			got := make([]uint8, rowLen)
			want := make([]uint8, rowLen)
			verticalRow(got, acc, between, 1, rowLen, k)
			verticalRowGo(want, acc, between, 1, rowLen, k)
			for x := range want {
				if got[x] != want[x] {
					t.Fatalf("rowLen %d taps %d: sample %d: AVX2 %d, Go %d", rowLen, taps, x, got[x], want[x])
				}
			}
		}
	}
}

// TestKernelsAgree runs the whole transform with the AVX2 kernels and with
// the Go kernels on random images of awkward sizes (row counts that are
// not multiples of 8, byte widths with a tail, upscaling, extreme aspect
// ratios, odd crops) and requires identical output.
func TestKernelsAgree(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 kernels in this build or on this CPU")
	}
	defer func() { useAVX2 = true }()
	rng := uint32(7)
	next := func() uint32 { rng = rng*1664525 + 1013904223; return rng >> 8 }
	cases := []struct {
		name         string
		w, h         int
		resize, crop int
	}{
		{"1200x800", 1200, 800, 256, 224},
		{"1201x803 odd", 1201, 803, 256, 224},
		{"upscale 100x70", 100, 70, 256, 224},
		{"wide 3000x260", 3000, 260, 256, 224},
		{"tall 259x2000", 259, 2000, 256, 224},
		{"odd crop", 777, 555, 160, 127},
		{"tiny crop", 50, 40, 9, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := &RGB{Width: c.w, Height: c.h, Pix: make([]byte, c.w*c.h*3)}
			for i := range img.Pix {
				img.Pix[i] = uint8(next())
			}
			s := DefaultSpec()
			s.Resize, s.Crop, s.DType = c.resize, c.crop, preprocess.Uint8
			p := newProcessor(t, s, 1)
			useAVX2 = true
			fast := make([]byte, p.RowBytes())
			if err := p.TransformRGB(fast, img); err != nil {
				t.Fatal(err)
			}
			useAVX2 = false
			slow := make([]byte, p.RowBytes())
			if err := p.TransformRGB(slow, img); err != nil {
				t.Fatal(err)
			}
			for i := range slow {
				if fast[i] != slow[i] {
					t.Fatalf("element %d: AVX2 %d, Go %d", i, fast[i], slow[i])
				}
			}
		})
	}
}

// TestColourConversionKernelsAgree converts random 4:2:0, 4:2:2 and 4:4:4
// planes with the AVX2 kernels and with the Go path, over whole images and
// over regions that start and end on odd and even columns, and requires
// identical pixels, edges included.
func TestColourConversionKernelsAgree(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 kernels in this build or on this CPU")
	}
	defer func() { useAVX2 = true }()
	for _, ratio := range []stdimage.YCbCrSubsampleRatio{stdimage.YCbCrSubsampleRatio420, stdimage.YCbCrSubsampleRatio422, stdimage.YCbCrSubsampleRatio444} {
		t.Run(ratio.String(), func(t *testing.T) { colourKernelsAgree(t, ratio) })
	}
}

func colourKernelsAgree(t *testing.T, ratio stdimage.YCbCrSubsampleRatio) {
	rng := uint32(99)
	next := func() uint32 { rng = rng*1664525 + 1013904223; return rng >> 8 }
	for _, c := range []struct{ w, h, x0, y0, x1, y1 int }{
		{1200, 800, 0, 0, 1200, 800},
		{1201, 803, 0, 0, 1201, 803},
		{1201, 803, 37, 11, 1164, 790},
		{1200, 800, 38, 12, 1163, 791},
		{640, 480, 1, 1, 639, 479},
		{35, 17, 0, 0, 35, 17},
		{36, 16, 3, 2, 34, 15},
		{6, 6, 0, 0, 6, 6},
	} {
		t.Run(fmt.Sprintf("%dx%d[%d,%d)-[%d,%d)", c.w, c.h, c.x0, c.x1, c.y0, c.y1), func(t *testing.T) {
			m := stdimage.NewYCbCr(stdimage.Rect(0, 0, c.w, c.h), ratio)
			for _, p := range [][]uint8{m.Y, m.Cb, m.Cr} {
				for i := range p {
					p[i] = uint8(next())
				}
			}
			// Saturated corners as well: colours whose conversion clamps.
			for i := 0; i < len(m.Cb)/4; i++ {
				m.Cb[i], m.Cr[i] = 255, 0
			}
			stride := c.w * 3
			fast, slow := make([]byte, stride*c.h), make([]byte, stride*c.h)
			var rs rowScratch
			useAVX2 = true
			yccToRGB(fast, stride, m, c.x0, c.y0, c.x1, c.y1, &rs)
			useAVX2 = false
			yccToRGB(slow, stride, m, c.x0, c.y0, c.x1, c.y1, &rs)
			for i := range slow {
				if fast[i] != slow[i] {
					t.Fatalf("pixel (%d, %d) channel %d: AVX2 %d, Go %d", (i%stride)/3, i/stride, i%3, fast[i], slow[i])
				}
			}
		})
	}
}
