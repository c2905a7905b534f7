package image

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// TestDecodeWindowIsTheRegionOfDecodeRGB decodes every corpus file with
// one reused Decoder, asking for a window that depends on the image's size,
// and checks it is exactly that region of what DecodeRGB gives.
func TestDecodeWindowIsTheRegionOfDecodeRGB(t *testing.T) {
	spec := DefaultSpec()
	var dec Decoder
	for _, path := range corpusFiles(t) {
		name := filepath.Base(path)
		if pureGoRefuses(name) && !TurboJPEG {
			continue
		}
		data := readFile(t, path)
		full, err := DecodeRGB(data, spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var x0, y0, x1, y1 int
		win, w, h, err := dec.DecodeWindow(data, spec, func(w, h int) (int, int, int, int) {
			x0, y0, x1, y1 = w/5, h/3, w-w/7, h
			return x0, y0, x1, y1
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w != full.Width || h != full.Height || win.Width != x1-x0 || win.Height != y1-y0 {
			t.Fatalf("%s: window %dx%d of %dx%d, want [%d,%d)x[%d,%d) of %dx%d", name, win.Width, win.Height, w, h, x0, x1, y0, y1, full.Width, full.Height)
		}
		for y := y0; y < y1; y++ {
			want := full.Pix[(y*full.Width+x0)*3 : (y*full.Width+x1)*3]
			if got := win.Pix[(y-y0)*win.Width*3 : (y-y0+1)*win.Width*3]; !bytes.Equal(got, want) {
				t.Fatalf("%s: window row %d differs from the image's row %d", name, y-y0, y)
			}
		}
	}
}

func TestDecodeWindowErrors(t *testing.T) {
	spec := DefaultSpec()
	var dec Decoder
	good := readFile(t, filepath.Join("testdata", "corpus", "coffee_300x200_comment.ppm"))
	if _, _, _, err := dec.DecodeWindow(good, spec, func(w, h int) (int, int, int, int) { return 0, 0, w + 1, h }); err == nil ||
		errors.Is(err, preprocess.ErrBadInput) || !strings.Contains(err.Error(), "not inside the 300x200 image") {
		t.Errorf("window past the right edge: %v, want an error that is not bad input", err)
	}
	bad := readFile(t, filepath.Join("testdata", "bad", "coffee_cut.ppm"))
	called := false
	_, _, _, err := dec.DecodeWindow(bad, spec, func(w, h int) (int, int, int, int) { called = true; return 0, 0, w, h })
	if !errors.Is(err, ErrTruncated) || called {
		t.Errorf("truncated PPM: %v (window asked: %v), want ErrTruncated before any window", err, called)
	}
}
