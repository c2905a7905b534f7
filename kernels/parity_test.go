package kernels_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/gpu"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// specs is every layout × dtype on torchvision's 256/224, and a 113/100
// variant whose output is not a multiple of the block size, so that
// threads past the right and bottom edges are exercised.
func specs() []image.Spec {
	var out []image.Spec
	for _, l := range []image.Layout{image.NCHW, image.NHWC} {
		for _, d := range []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.BFloat16, preprocess.Uint8} {
			s := image.DefaultSpec()
			s.Layout, s.DType = l, d
			out = append(out, s)
		}
	}
	// The edge variant needs only each layout once and each dtype once.
	for _, v := range []struct {
		l image.Layout
		d preprocess.DType
	}{{image.NCHW, preprocess.Float32}, {image.NHWC, preprocess.Float16}, {image.NCHW, preprocess.BFloat16}, {image.NHWC, preprocess.Uint8}} {
		s := image.DefaultSpec()
		s.Resize, s.Crop, s.Layout, s.DType = 113, 100, v.l, v.d
		out = append(out, s)
	}
	return out
}

func specName(s image.Spec) string {
	return fmt.Sprintf("%d-%d/%s/%s", s.Resize, s.Crop, s.Layout, s.DType)
}

// runFunc runs one job: the emulator or a device.
type runFunc func(j *kernels.Job) error

// checkBatch runs the kernel (run) over imgs as one batch and compares
// every element with image.Processor.TransformRGB. The output is poisoned
// first (0xFF: NaN for the float types; for uint8 a second run poisoned
// with 0x00 must agree, so an unwritten element cannot pass both). Every
// dtype must be within issue 5's tolerance; uint8 must be bit-identical,
// and so must the float types when exactFloats.
func checkBatch(t *testing.T, spec image.Spec, imgs []*image.RGB, names []string, run runFunc, exactFloats bool) {
	t.Helper()
	cpu, err := image.NewProcessor(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	rb := cpu.RowBytes()
	want := make([]byte, len(imgs)*rb)
	for i, img := range imgs {
		if err := cpu.TransformRGB(want[i*rb:(i+1)*rb], img); err != nil {
			t.Fatalf("%s: CPU path: %v", names[i], err)
		}
	}
	_, dt, err := gpu.KernelFormat(spec)
	if err != nil {
		t.Fatal(err)
	}
	poisons := []byte{0xff}
	if dt == kernels.Uint8 {
		poisons = append(poisons, 0x00)
	}
	for _, poison := range poisons {
		got := make([]byte, len(want))
		kernelstest.Poison(got, poison)
		j, err := gpu.NewJob(spec, imgs, got)
		if err != nil {
			t.Fatal(err)
		}
		if err := run(j); err != nil {
			t.Fatal(err)
		}
		for i := range imgs {
			d := kernelstest.Compare(dt, got[i*rb:(i+1)*rb], want[i*rb:(i+1)*rb])
			if !d.WithinTolerance() {
				t.Errorf("%s %dx%d (poison %#x): outside tolerance: %v", names[i], imgs[i].Width, imgs[i].Height, poison, d)
			}
			if d.Mismatched != 0 && (exactFloats || dt == kernels.Uint8) {
				t.Errorf("%s %dx%d (poison %#x): not bit-identical to the CPU path: %v", names[i], imgs[i].Width, imgs[i].Height, poison, d)
			} else if d.Mismatched != 0 {
				t.Logf("%s %dx%d: within tolerance, not bit-identical: %v", names[i], imgs[i].Width, imgs[i].Height, d)
			}
		}
	}
}

// randomImages is a fixed-seed set of random images of sizes 64..4000 px.
func randomImages(t *testing.T) ([]*image.RGB, []string) {
	seed := uint64(5)
	rng := rand.New(rand.NewPCG(seed, 1))
	// Mostly small images, a few extreme aspect ratios and one large one;
	// all within 64..4000 px per side.
	sizes := [][2]int{{64, 64}, {97, 131}, {256, 256}, {333, 517}, {640, 480}}
	if !testing.Short() { // under -race these take a minute
		sizes = append(sizes, [2]int{64, 4000}, [2]int{4000, 71}, [2]int{1500, 1001})
	}
	for i := 0; i < 4; i++ {
		sizes = append(sizes, [2]int{64 + int(rng.UintN(600)), 64 + int(rng.UintN(600))})
	}
	imgs := make([]*image.RGB, len(sizes))
	names := make([]string, len(sizes))
	for i, s := range sizes {
		imgs[i] = &image.RGB{Width: s[0], Height: s[1], Pix: kernelstest.RandomPixels(rng, s[0], s[1])}
		names[i] = fmt.Sprintf("random image %d (seed %d)", i, seed)
	}
	return imgs, names
}

// corpusDir holds the image package's real test images, when present.
const corpusDir = "../preprocess/image/testdata"

// corpusImages decodes the real test images (skipping the test when there
// are none); under -short only a sample.
func corpusImages(t *testing.T) ([]*image.RGB, []string) {
	var imgs []*image.RGB
	var names []string
	err := filepath.WalkDir(corpusDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if testing.Short() && len(imgs) >= 8 { // -race -short: a sample
			return fs.SkipAll
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		img, err := image.DecodeRGB(data, image.DefaultSpec())
		if err != nil {
			return nil // the corpus also holds files meant to fail decoding
		}
		imgs = append(imgs, img)
		names = append(names, path)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(imgs) == 0 {
		t.Skipf("no decodable images under %s", corpusDir)
	}
	t.Logf("%d real images from %s", len(imgs), corpusDir)
	return imgs, names
}
