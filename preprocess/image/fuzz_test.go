package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// The fuzz targets cover every decoding entry point: DecodeRGB (the format
// sniffer and each decoder with PIL-compatible conversion) and the
// Processor's path, which decodes only the region the crop needs. Seeds are
// the corpus and bad files of each format (files over 64 KB are left out
// to keep executions fast); crashers found are committed under
// testdata/fuzz/<Target>/ and replayed by plain `go test`.
//
//	go test ./preprocess/image -run '^$' -fuzz '^FuzzDecodeJPEG$' -fuzztime 10m

// fuzzSpec bounds the work per input: at most 1 megapixel, 4 MB.
func fuzzSpec() Spec {
	s := DefaultSpec()
	s.MaxPixels = 1 << 20
	s.MaxBytes = 4 << 20
	return s
}

func addSeeds(f *testing.F, exts ...string) {
	f.Helper()
	for _, dir := range []string{"corpus", "bad", "regress"} {
		names, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, n := range names {
			ext := strings.ToLower(filepath.Ext(n))
			keep := len(exts) == 0
			for _, e := range exts {
				keep = keep || ext == e
			}
			st, err := os.Stat(n)
			if !keep || err != nil || st.Size() > 64<<10 {
				continue
			}
			data, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// checkDecode decodes data and checks the invariants every outcome must keep.
func checkDecode(t *testing.T, data []byte) {
	s := fuzzSpec()
	img, err := DecodeRGB(data, s)
	if err != nil {
		if !errors.Is(err, preprocess.ErrBadInput) {
			t.Fatalf("error does not wrap ErrBadInput: %v", err)
		}
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
		return
	}
	if img.Width <= 0 || img.Height <= 0 || int64(img.Width)*int64(img.Height) > s.MaxPixels || len(img.Pix) != img.Width*img.Height*3 {
		t.Fatalf("decoded %dx%d with %d bytes of pixels", img.Width, img.Height, len(img.Pix))
	}
	p, err := NewProcessor(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TransformRGB(make([]byte, p.RowBytes()), img); err != nil {
		t.Fatalf("TransformRGB of a decoded image: %v", err)
	}
}

func FuzzDecodeRGB(f *testing.F) {
	addSeeds(f)
	f.Fuzz(checkDecode)
}

func FuzzDecodeJPEG(f *testing.F) {
	addSeeds(f, ".jpg")
	f.Fuzz(checkDecode)
}

func FuzzDecodePNG(f *testing.F) {
	addSeeds(f, ".png")
	f.Fuzz(checkDecode)
}

func FuzzDecodeGIF(f *testing.F) {
	addSeeds(f, ".gif")
	f.Fuzz(checkDecode)
}

func FuzzDecodeBMP(f *testing.F) {
	addSeeds(f, ".bmp")
	f.Fuzz(checkDecode)
}

func FuzzDecodeWebP(f *testing.F) {
	addSeeds(f, ".webp")
	f.Fuzz(checkDecode)
}

func FuzzDecodePNM(f *testing.F) {
	addSeeds(f, ".ppm", ".pgm")
	f.Add([]byte("P6 1 1 255\n\x01\x02\x03"))
	f.Add([]byte("P5\n#c\n2#d\n1\n255\n\x00\xff"))
	f.Fuzz(checkDecode)
}

// FuzzProcess runs the Processor's path (region decoding) and checks that
// it agrees with DecodeRGB+TransformRGB on every input both accept.
func FuzzProcess(f *testing.F) {
	addSeeds(f, ".jpg", ".png", ".webp")
	s := fuzzSpec()
	p, err := NewProcessor(s, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := p.Process(context.Background(), []preprocess.Item{{ID: "fuzz", Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		img, derr := DecodeRGB(data, s)
		if len(b.Failed) > 0 {
			if !errors.Is(b.Failed[0].Err, preprocess.ErrBadInput) {
				t.Fatalf("error does not wrap ErrBadInput: %v", b.Failed[0].Err)
			}
			if derr == nil {
				t.Fatalf("Process failed (%v) where DecodeRGB succeeded", b.Failed[0].Err)
			}
			return
		}
		if derr != nil {
			t.Fatalf("Process succeeded where DecodeRGB failed: %v", derr)
		}
		row := make([]byte, p.RowBytes())
		if err := p.TransformRGB(row, img); err != nil {
			t.Fatal(err)
		}
		if string(row) != string(b.Tensors[0].Data) {
			t.Fatal("Process and DecodeRGB+TransformRGB disagree")
		}
	})
}
