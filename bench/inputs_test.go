package bench

import (
	"bytes"
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	stokerimage "github.com/stoker-ml/stoker/preprocess/image"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"b.txt":         "second\r\n\nthird\n",
		"a.txt":         "first",
		"sub/c.txt":     "deep",
		".hidden":       "skipped",
		".git/config":   "skipped too",
		"sub/.d/ignore": "skipped",
	})
	tests := []struct {
		name    string
		paths   []string
		lines   bool
		wantIDs []string
		wantDat []string
	}{
		{"directory, one item per file, in name order", []string{dir}, false,
			[]string{"a.txt", "b.txt", "sub/c.txt"}, []string{"first", "second\r\n\nthird\n", "deep"}},
		{"one item per non-empty line", []string{filepath.Join(dir, "b.txt")}, true,
			[]string{"b.txt:1", "b.txt:3"}, []string{"second", "third"}},
		{"files and directories mixed", []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "sub")}, false,
			[]string{"a.txt", "sub/c.txt"}, []string{"first", "deep"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, err := LoadFiles(tc.paths, tc.lines)
			if err != nil {
				t.Fatal(err)
			}
			var ids, data []string
			for _, it := range items {
				rel, err := filepath.Rel(dir, it.ID)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, filepath.ToSlash(rel))
				data = append(data, string(it.Data))
			}
			if !slices.Equal(ids, tc.wantIDs) || !slices.Equal(data, tc.wantDat) {
				t.Errorf("got ids %q data %q, want %q %q", ids, data, tc.wantIDs, tc.wantDat)
			}
		})
	}
}

func TestLoadFilesErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := LoadFiles([]string{empty}, false); !errors.Is(err, ErrNoInputs) {
		t.Errorf("empty directory: err = %v, want ErrNoInputs", err)
	}
	missing := filepath.Join(empty, "nope.jpg")
	_, err := LoadFiles([]string{missing}, false)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want one naming %s and wrapping ErrNotExist", err, missing)
	}
}

func TestSamples(t *testing.T) {
	imgs, err := Samples(KindImage)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("samples/images")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(ents) || len(imgs) == 0 {
		t.Errorf("%d image samples, want one per file of samples/images (%d)", len(imgs), len(ents))
	}
	for _, it := range imgs {
		disk, err := os.ReadFile(filepath.Join("samples/images", it.ID))
		if err != nil || !bytes.Equal(disk, it.Data) {
			t.Errorf("sample %s differs from the file on disk (err %v)", it.ID, err)
		}
	}
	texts, err := Samples(KindText)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("samples/texts.txt")
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.TrimSuffix(l, "\r") != "" {
			nonEmpty++
		}
	}
	if len(texts) != nonEmpty {
		t.Errorf("%d text samples, want %d (non-empty lines of texts.txt)", len(texts), nonEmpty)
	}
	if _, err := Samples("audio"); err == nil {
		t.Error("Samples(audio) succeeded, want an error")
	}
}

func TestSyntheticImages(t *testing.T) {
	sizes := []Size{{64, 48}, {33, 100}}
	for _, format := range []string{FormatJPEG, FormatPNG} {
		t.Run(format, func(t *testing.T) {
			items, err := SyntheticImages(sizes, format, 2, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 4 {
				t.Fatalf("%d items, want 4", len(items))
			}
			for i, it := range items {
				cfg, got, err := image.DecodeConfig(bytes.NewReader(it.Data))
				if err != nil {
					t.Fatalf("item %s: %v", it.ID, err)
				}
				want := sizes[i/2]
				if cfg.Width != want.W || cfg.Height != want.H || got != format {
					t.Errorf("item %s: %s %dx%d, want %s %v", it.ID, got, cfg.Width, cfg.Height, format, want)
				}
			}
			again, err := SyntheticImages(sizes, format, 2, 7)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again[3].Data, items[3].Data) {
				t.Error("same seed gave different bytes")
			}
			if bytes.Equal(items[0].Data, items[1].Data) {
				t.Error("two images of the same size are identical")
			}
		})
	}
	if _, err := SyntheticImages(sizes, "gif", 1, 1); err == nil {
		t.Error("format gif accepted, want an error")
	}
}

// TestSyntheticPPMHoldsThePNGsPixels checks that the PPM images are the
// same pixels as the PNG images of the same seed, as stoker decodes them.
func TestSyntheticPPMHoldsThePNGsPixels(t *testing.T) {
	sizes := []Size{{64, 48}, {33, 100}}
	ppm, err := SyntheticImages(sizes, FormatPPM, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	lossless, err := SyntheticImages(sizes, FormatPNG, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	spec := stokerimage.DefaultSpec()
	for i := range ppm {
		got, err := stokerimage.DecodeRGB(ppm[i].Data, spec)
		if err != nil {
			t.Fatalf("item %s: %v", ppm[i].ID, err)
		}
		want, err := stokerimage.DecodeRGB(lossless[i].Data, spec)
		if err != nil {
			t.Fatalf("item %s: %v", lossless[i].ID, err)
		}
		if got.Width != sizes[i/2].W || got.Height != sizes[i/2].H || !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("item %s: %dx%d, not the pixels of %s", ppm[i].ID, got.Width, got.Height, lossless[i].ID)
		}
	}
}

func TestSyntheticTexts(t *testing.T) {
	items := SyntheticTexts([]int{3, 64, 1000}, 3, 1)
	if len(items) != 9 {
		t.Fatalf("%d items, want 9", len(items))
	}
	for i, it := range items {
		limit := []int{3, 64, 1000}[i/3]
		if len(it.Data) == 0 || len(it.Data) > limit || !utf8.Valid(it.Data) {
			t.Errorf("item %s: %d bytes (limit %d), valid UTF-8 %v", it.ID, len(it.Data), limit, utf8.Valid(it.Data))
		}
		if limit == 1000 && len(it.Data) < 900 {
			t.Errorf("item %s: %d bytes, want close to 1000", it.ID, len(it.Data))
		}
	}
	if !bytes.Equal(SyntheticTexts([]int{200}, 1, 5)[0].Data, SyntheticTexts([]int{200}, 1, 5)[0].Data) {
		t.Error("same seed gave different texts")
	}
}

func TestParseLists(t *testing.T) {
	sizes := []struct {
		name, in string
		want     []Size
		wantErr  bool
	}{
		{"two sizes", "640x480, 1920x1080", []Size{{640, 480}, {1920, 1080}}, false},
		{"missing height", "640", nil, true},
		{"zero", "0x10", nil, true},
	}
	for _, tc := range sizes {
		t.Run("sizes/"+tc.name, func(t *testing.T) {
			got, err := ParseSizes(tc.in)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("ParseSizes(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
	ints := []struct {
		name, in string
		want     []int
		wantErr  bool
	}{
		{"batch sizes", "1,8,64,256", []int{1, 8, 64, 256}, false},
		{"negative", "1,-2", nil, true},
		{"not a number", "x", nil, true},
	}
	for _, tc := range ints {
		t.Run("ints/"+tc.name, func(t *testing.T) {
			got, err := ParseInts(tc.in)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("ParseInts(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}
