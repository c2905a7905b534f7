package kernels_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess/gpu"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// BenchmarkPack measures the host side of the GPU stage: copying each
// image's window into the (pinned, on a GPU) staging buffer with the
// descriptors and plans, for batches of 1155×866 images → 256/224.
// Compare worker counts with benchstat; bytes/s is packed bytes.
func BenchmarkPack(b *testing.B) {
	const batch = 32
	rng := rand.New(rand.NewPCG(2, 2))
	imgs := make([]*image.RGB, batch)
	for i := range imgs {
		imgs[i] = &image.RGB{Width: 1155, Height: 866, Pix: kernelstest.RandomPixels(rng, 1155, 866)}
	}
	spec := image.DefaultSpec()
	j, err := gpu.NewJob(spec, imgs, make([]byte, batch*3*224*224*4))
	if err != nil {
		b.Fatal(err)
	}
	if err := j.Validate(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, j.Packing().Size)
	for _, workers := range []int{1, 2, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(j.Packing().Size))
			b.ReportAllocs()
			for b.Loop() {
				j.Pack(buf, workers)
			}
			b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "items/s")
		})
	}
	b.ReportMetric(float64(j.Packing().Size)/batch/1e6, "MB/item")
}

// BenchmarkNewJob measures planning a batch on the host (image.PlanAxis
// per image and axis).
func BenchmarkNewJob(b *testing.B) {
	const batch = 256
	imgs := make([]*image.RGB, batch)
	for i := range imgs {
		imgs[i] = &image.RGB{Width: 1155 + i%7, Height: 866, Pix: make([]byte, (1155+i%7)*866*3)}
	}
	spec := image.DefaultSpec()
	dst := make([]byte, batch*3*224*224*4)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gpu.NewJob(spec, imgs, dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "items/s")
}
