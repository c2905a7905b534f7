package bench

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/stoker-ml/stoker/preprocess"
)

//go:embed samples/images samples/texts.txt
var samples embed.FS

// ErrNoInputs is returned when the inputs given hold no item.
var ErrNoInputs = errors.New("no inputs")

// Kinds of input, matching the pipeline kinds.
const (
	KindImage = "image"
	KindText  = "text"
)

// Samples returns the bundled samples for a kind of pipeline: the images
// of bench/samples/images (one of them a truncated JPEG, which a processor
// reports as failed) or the lines of bench/samples/texts.txt (one of them
// invalid UTF-8). They are compiled into the binary.
func Samples(kind string) ([]preprocess.Item, error) {
	switch kind {
	case KindImage:
		ents, err := samples.ReadDir("samples/images")
		if err != nil {
			return nil, fmt.Errorf("bundled samples: %w", err)
		}
		var items []preprocess.Item
		for _, e := range ents {
			data, err := samples.ReadFile("samples/images/" + e.Name())
			if err != nil {
				return nil, fmt.Errorf("bundled sample %s: %w", e.Name(), err)
			}
			items = append(items, preprocess.Item{ID: e.Name(), Data: data})
		}
		return items, nil
	case KindText:
		data, err := samples.ReadFile("samples/texts.txt")
		if err != nil {
			return nil, fmt.Errorf("bundled samples: %w", err)
		}
		return splitLines("texts.txt", data), nil
	}
	return nil, fmt.Errorf("bundled samples: unknown kind %q (want image or text)", kind)
}

// LoadFiles reads the items named by paths: each file is one item, a
// directory contributes its files (recursively, in name order, skipping
// names that start with a dot). With lines, every non-empty line of every
// file is one item instead, named "FILE:LINE".
func LoadFiles(paths []string, lines bool) ([]preprocess.Item, error) {
	var items []preprocess.Item
	for _, p := range paths {
		files, err := listFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", f, err)
			}
			if lines {
				items = append(items, splitLines(f, data)...)
			} else {
				items = append(items, preprocess.Item{ID: f, Data: data})
			}
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("inputs %s: %w", strings.Join(paths, ", "), ErrNoInputs)
	}
	return items, nil
}

func listFiles(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", p, err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if q != p && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, q)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("input directory %s: %w", p, err)
	}
	slices.Sort(files)
	return files, nil
}

// splitLines makes one item per non-empty line (a trailing \r dropped).
func splitLines(name string, data []byte) []preprocess.Item {
	var items []preprocess.Item
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			continue
		}
		items = append(items, preprocess.Item{ID: name + ":" + strconv.Itoa(n), Data: slices.Clone(line)})
	}
	return items
}

// Size is an image size in pixels.
type Size struct{ W, H int }

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.W, s.H) }

// ParseSizes reads "640x480,1920x1080".
func ParseSizes(s string) ([]Size, error) {
	var out []Size
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		w, h, ok := strings.Cut(f, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi <= 0 || hi <= 0 {
			return nil, fmt.Errorf("image size %q: want WIDTHxHEIGHT with positive integers, e.g. 640x480", f)
		}
		out = append(out, Size{wi, hi})
	}
	return out, nil
}

// ParseInts reads a comma-separated list of positive integers ("1,8,64").
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Image encodings SyntheticImages can produce.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatPPM  = "ppm" // binary PPM: pixels already decoded, so a run measures the transform alone
)

// SyntheticImages makes perItem images of each size, encoded as format
// (FormatJPEG at quality 90, FormatPNG or FormatPPM). Their pixels are smooth
// gradients plus seeded noise, so they compress about as well as photos;
// the same seed gives the same bytes. IDs read "synthetic-640x480-0.jpg".
func SyntheticImages(sizes []Size, format string, perItem int, seed uint64) ([]preprocess.Item, error) {
	if format != FormatJPEG && format != FormatPNG && format != FormatPPM {
		return nil, fmt.Errorf("synthetic image format %q: want jpeg, png or ppm", format)
	}
	rng := rand.New(rand.NewPCG(seed, 0x570ce4))
	var items []preprocess.Item
	for _, sz := range sizes {
		for k := range perItem {
			img := image.NewRGBA(image.Rect(0, 0, sz.W, sz.H))
			fx, fy := rng.Float64()*4+1, rng.Float64()*4+1
			for y := range sz.H {
				for x := range sz.W {
					u, v := float64(x)/float64(sz.W), float64(y)/float64(sz.H)
					n := uint8(rng.IntN(24))
					img.SetRGBA(x, y, color.RGBA{
						R: uint8(200*u*fx) + n, G: uint8(200*v*fy) + n, B: uint8(100*(u+v)) + n, A: 255,
					})
				}
			}
			var buf bytes.Buffer
			var err error
			ext := "jpg"
			switch format {
			case FormatPNG:
				ext = "png"
				err = png.Encode(&buf, img)
			case FormatPPM:
				ext = "ppm"
				fmt.Fprintf(&buf, "P6\n%d %d\n255\n", sz.W, sz.H)
				for i := 0; i < len(img.Pix); i += 4 {
					buf.Write(img.Pix[i : i+3])
				}
			default:
				err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
			}
			if err != nil {
				return nil, fmt.Errorf("synthetic image %v: %w", sz, err)
			}
			items = append(items, preprocess.Item{ID: fmt.Sprintf("synthetic-%v-%d.%s", sz, k, ext), Data: buf.Bytes()})
		}
	}
	return items, nil
}

// syntheticWords are the words synthetic texts are made of: common English
// words (which WordPiece keeps whole) and a few rarer ones it splits.
var syntheticWords = strings.Fields(`the of and to in is was for that with on as by at from
his her they this which are be have had not but one all were we when there can an your more
some time will into only other new year been would about preprocessing tensor tokenizer
throughput unbelievably semiconductor photosynthesis Zürich naïve café, data. "quoted" (aside)`)

// SyntheticTexts makes perItem texts of each length in bytes (each ends at
// a word boundary at or before the length, so it is valid UTF-8). The same
// seed gives the same texts. IDs read "synthetic-256-0".
func SyntheticTexts(lengths []int, perItem int, seed uint64) []preprocess.Item {
	rng := rand.New(rand.NewPCG(seed, 0x7e47))
	var items []preprocess.Item
	for _, n := range lengths {
		for k := range perItem {
			var b strings.Builder
			for {
				w := syntheticWords[rng.IntN(len(syntheticWords))]
				extra := len(w)
				if b.Len() > 0 {
					extra++
				}
				if b.Len()+extra > n {
					break
				}
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(w)
			}
			if b.Len() == 0 { // shorter than any word: pad with letters
				b.WriteString(strings.Repeat("a", n))
			}
			items = append(items, preprocess.Item{ID: fmt.Sprintf("synthetic-%d-%d", n, k), Data: []byte(b.String())})
		}
	}
	return items
}

// TotalBytes is the sum of the items' sizes.
func TotalBytes(items []preprocess.Item) int64 {
	var n int64
	for _, it := range items {
		n += int64(len(it.Data))
	}
	return n
}
