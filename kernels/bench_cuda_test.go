//go:build cuda

package kernels_test

// Benchmarks of the GPU stage on the lent machine (bench/gpu/run_device.sh
// runs them from a prebuilt test binary). Compare runs with benchstat.
//
//	BenchmarkCeilings       pinned H2D / D2H and device memory bandwidth
//	BenchmarkGPUStage       batch 256 of ~1 MP decoded images -> 224x224,
//	                        upload + kernel + download, 3 batches in flight
//	BenchmarkCPUStage       the same batches through image.Processor's
//	                        TransformRGB on GOMAXPROCS goroutines
//
// Both stage benchmarks report items/s; their ratio is the GPU speed-up.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/gpu"
	"github.com/stoker-ml/stoker/preprocess/image"
)

const benchBatch = 256

// benchImages is benchBatch random images of about one megapixel in the
// aspect ratios of photos (4:3, 3:2, 1:1, 3:4), built once.
var benchImages = sync.OnceValue(func() []*image.RGB {
	rng := rand.New(rand.NewPCG(1, 1))
	sizes := [][2]int{{1155, 866}, {1224, 816}, {1000, 1000}, {866, 1155}}
	imgs := make([]*image.RGB, benchBatch)
	for i := range imgs {
		s := sizes[i%len(sizes)]
		imgs[i] = &image.RGB{Width: s[0], Height: s[1], Pix: kernelstest.RandomPixels(rng, s[0], s[1])}
	}
	return imgs
})

func decodedBytes(imgs []*image.RGB) int64 {
	var n int64
	for _, m := range imgs {
		n += int64(len(m.Pix))
	}
	return n
}

func BenchmarkCeilings(b *testing.B) {
	dev := openDevice(b)
	var c kernels.Ceilings
	var err error
	for b.Loop() {
		if c, err = dev.MeasureCeilings(context.Background(), 512<<20, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(c.HostToDevice/1e9, "H2D-GB/s")
	b.ReportMetric(c.DeviceToHost/1e9, "D2H-GB/s")
	b.ReportMetric(c.DeviceMemory/1e9, "DRAM-GB/s")
}

func BenchmarkGPUStage(b *testing.B) {
	for _, dt := range []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.Uint8} {
		b.Run(fmt.Sprint(dt), func(b *testing.B) { benchGPUStage(b, dt) })
	}
}

func benchGPUStage(b *testing.B, dt preprocess.DType) {
	const slots = 3
	dev := openDevice(b, kernels.Options{Slots: slots})
	ceil, err := dev.MeasureCeilings(context.Background(), 512<<20, 10)
	if err != nil {
		b.Fatal(err)
	}
	spec := image.DefaultSpec()
	spec.DType = dt
	imgs := benchImages()
	// One job (and output buffer) per pipeline goroutine, built once: the
	// stage measured is pack + upload + kernel + download.
	jobs := make([]*kernels.Job, slots)
	timings := make([]kernels.Timing, slots)
	for i := range jobs {
		dst := make([]byte, benchBatch*3*spec.Crop*spec.Crop*dt.Size())
		if jobs[i], err = gpu.NewJob(spec, imgs, dst); err != nil {
			b.Fatal(err)
		}
		jobs[i].Timing = &timings[i]
		if err := dev.ResizeCropNormalize(context.Background(), jobs[i]); err != nil { // warm-up, grows buffers
			b.Fatal(err)
		}
	}
	var upload, kernel, download time.Duration
	var mu sync.Mutex
	var next atomic.Int64
	b.SetBytes(decodedBytes(imgs))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, slots)
	for g := 0; g < slots; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := dev.ResizeCropNormalize(context.Background(), jobs[g]); err != nil {
					errs[g] = err
					return
				}
				mu.Lock()
				upload += timings[g].Upload
				kernel += timings[g].Kernel
				download += timings[g].Download
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	t := timings[0]
	perBatch := wall.Seconds() / n
	b.ReportMetric(n*benchBatch/wall.Seconds(), "items/s")
	b.ReportMetric(upload.Seconds()*1e3/n, "upload-ms/batch")
	b.ReportMetric(kernel.Seconds()*1e3/n, "kernel-ms/batch")
	b.ReportMetric(download.Seconds()*1e3/n, "download-ms/batch")
	b.ReportMetric(float64(t.InputBytes)/1e6, "uploaded-MB/batch")
	b.ReportMetric(float64(t.OutputBytes)/1e6, "downloaded-MB/batch")
	// The target: the overlapped stage moves its input at >= 80 %
	// of the measured pinned H2D bandwidth.
	b.ReportMetric(float64(t.InputBytes)/perBatch/ceil.HostToDevice, "stage-of-H2D-ceiling")
	b.ReportMetric(float64(t.InputBytes)/(upload.Seconds()/n)/ceil.HostToDevice, "upload-of-H2D-ceiling")
	b.ReportMetric(float64(t.KernelReadBytes+t.KernelWriteBytes)/(kernel.Seconds()/n)/ceil.DeviceMemory, "kernel-of-DRAM-ceiling")
	b.ReportMetric(ceil.HostToDevice/1e9, "H2D-ceiling-GB/s")
	b.ReportMetric((upload+kernel+download).Seconds()/n/perBatch, "overlap")
}

func BenchmarkCPUStage(b *testing.B) {
	for _, dt := range []preprocess.DType{preprocess.Float32, preprocess.Float16, preprocess.Uint8} {
		b.Run(fmt.Sprint(dt), func(b *testing.B) {
			spec := image.DefaultSpec()
			spec.DType = dt
			cpu, err := image.NewProcessor(spec, 0)
			if err != nil {
				b.Fatal(err)
			}
			imgs := benchImages()
			rb := cpu.RowBytes()
			dst := make([]byte, benchBatch*rb)
			b.SetBytes(decodedBytes(imgs))
			b.ReportAllocs()
			threads := runtime.GOMAXPROCS(0)
			for b.Loop() {
				var wg sync.WaitGroup
				var next atomic.Int64
				for g := 0; g < threads; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := int(next.Add(1)) - 1; i < len(imgs); i = int(next.Add(1)) - 1 {
							if err := cpu.TransformRGB(dst[i*rb:(i+1)*rb], imgs[i]); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N)*benchBatch/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(threads), "threads")
		})
	}
}
