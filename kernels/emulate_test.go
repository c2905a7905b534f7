//go:build cgo

package kernels_test

import (
	"testing"

	"github.com/stoker-ml/stoker/kernels"
)

// The emulation runs the CPU path's integer arithmetic and the same
// float32 operations in the same order, so it must be bit-identical.

func TestRandomImagesMatchCPU(t *testing.T) {
	imgs, names := randomImages(t)
	for _, spec := range specs() {
		t.Run(specName(spec), func(t *testing.T) {
			checkBatch(t, spec, imgs, names, kernels.EmulateResizeCropNormalize, true)
		})
	}
}

func TestRealImagesMatchCPU(t *testing.T) {
	imgs, names := corpusImages(t)
	for _, spec := range specs() {
		t.Run(specName(spec), func(t *testing.T) {
			checkBatch(t, spec, imgs, names, kernels.EmulateResizeCropNormalize, true)
		})
	}
}

func TestRejectsInvalidJob(t *testing.T) {
	j := &kernels.Job{OutW: 4, OutH: 4, Dst: make([]byte, 4*4*3*4),
		Images: []kernels.Image{{Width: 2, Height: 2, Pix: make([]byte, 12)}}}
	if err := kernels.EmulateResizeCropNormalize(j); err == nil {
		t.Fatal("ResizeCropNormalize accepted an image without plans")
	}
}
