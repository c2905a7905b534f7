//go:build cuda

package kernels_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
	"github.com/stoker-ml/stoker/preprocess/gpu"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// openDevice opens GPU 0 for one test and closes it when the test ends.
func openDevice(t testing.TB, opts ...kernels.Options) *kernels.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := kernels.Open(ctx, 0, opts...)
	if err != nil {
		t.Fatalf("open CUDA device 0: %v", err)
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("close %s: %v", dev.Name(), err)
		}
	})
	return dev
}

func deviceRun(dev *kernels.Device) runFunc {
	return func(j *kernels.Job) error { return dev.ResizeCropNormalize(context.Background(), j) }
}

// The device must be within issue 5's tolerance on every dtype and
// bit-identical on uint8; float differences are logged (with -fmad=false
// and IEEE division they are expected to be bit-identical too, which
// TestDeviceBitIdenticalToEmulation asserts).

func TestDeviceRandomImagesMatchCPU(t *testing.T) {
	dev := openDevice(t)
	t.Logf("device: %s", dev.Name())
	imgs, names := randomImages(t)
	for _, spec := range specs() {
		t.Run(specName(spec), func(t *testing.T) { checkBatch(t, spec, imgs, names, deviceRun(dev), false) })
	}
}

func TestDeviceRealImagesMatchCPU(t *testing.T) {
	dev := openDevice(t)
	imgs, names := corpusImages(t)
	for _, spec := range specs() {
		t.Run(specName(spec), func(t *testing.T) { checkBatch(t, spec, imgs, names, deviceRun(dev), false) })
	}
}

func TestDeviceBitIdenticalToEmulation(t *testing.T) {
	dev := openDevice(t)
	imgs, _ := randomImages(t)
	for _, spec := range specs() {
		t.Run(specName(spec), func(t *testing.T) {
			_, dt, err := gpu.KernelFormat(spec)
			if err != nil {
				t.Fatal(err)
			}
			n := len(imgs) * 3 * spec.Crop * spec.Crop * dt.Size()
			want, got := make([]byte, n), make([]byte, n)
			kernelstest.Poison(got, 0xff)
			je, err := gpu.NewJob(spec, imgs, want)
			if err != nil {
				t.Fatal(err)
			}
			if err := kernels.EmulateResizeCropNormalize(je); err != nil {
				t.Fatal(err)
			}
			jd, err := gpu.NewJob(spec, imgs, got)
			if err != nil {
				t.Fatal(err)
			}
			if err := dev.ResizeCropNormalize(context.Background(), jd); err != nil {
				t.Fatal(err)
			}
			if d := kernelstest.Compare(dt, got, want); d.Mismatched != 0 {
				t.Errorf("device vs emulation: %v", d)
			}
		})
	}
}

// TestDeviceConcurrentBatches runs more batches than slots from several
// goroutines, with growing sizes (so buffers grow while other slots are in
// flight), and checks every result against the emulation.
func TestDeviceConcurrentBatches(t *testing.T) {
	dev := openDevice(t, kernels.Options{Slots: 2})
	spec := image.DefaultSpec()
	const batches = 12
	var wg sync.WaitGroup
	errs := make([]error, batches)
	for b := 0; b < batches; b++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(b), 3))
			imgs := make([]*image.RGB, 1+b)
			for i := range imgs {
				w, h := 64+int(rng.UintN(100*uint(b+1))), 64+int(rng.UintN(700))
				imgs[i] = &image.RGB{Width: w, Height: h, Pix: kernelstest.RandomPixels(rng, w, h)}
			}
			n := len(imgs) * 3 * spec.Crop * spec.Crop * 4
			want, got := make([]byte, n), make([]byte, n)
			kernelstest.Poison(got, 0xff)
			je, err := gpu.NewJob(spec, imgs, want)
			if err == nil {
				err = kernels.EmulateResizeCropNormalize(je)
			}
			var jd *kernels.Job
			if err == nil {
				jd, err = gpu.NewJob(spec, imgs, got)
			}
			if err == nil {
				err = dev.ResizeCropNormalize(context.Background(), jd)
			}
			if err == nil {
				if d := kernelstest.Compare(kernels.Float32, got, want); d.Mismatched != 0 {
					err = fmt.Errorf("device vs emulation: %v", d)
				}
			}
			errs[b] = err
		}()
	}
	wg.Wait()
	for b, err := range errs {
		if err != nil {
			t.Errorf("batch %d: %v", b, err)
		}
	}
}

func TestDeviceClosed(t *testing.T) {
	ctx := context.Background()
	dev, err := kernels.Open(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	imgs, _ := randomImages(t)
	spec := image.DefaultSpec()
	j, err := gpu.NewJob(spec, imgs[:1], make([]byte, 3*224*224*4))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.ResizeCropNormalize(ctx, j); !errors.Is(err, kernels.ErrClosed) {
		t.Errorf("ResizeCropNormalize after Close = %v, want ErrClosed", err)
	}
}

func TestDeviceRejectsInvalidJob(t *testing.T) {
	dev := openDevice(t)
	j := &kernels.Job{OutW: 4, OutH: 4, Dst: make([]byte, 4*4*3*4),
		Images: []kernels.Image{{Width: 2, Height: 2, Pix: make([]byte, 12)}}}
	if err := dev.ResizeCropNormalize(context.Background(), j); err == nil {
		t.Fatal("the device accepted an image without plans")
	}
}

func TestMeasureCeilings(t *testing.T) {
	dev := openDevice(t)
	c, err := dev.MeasureCeilings(context.Background(), 256<<20, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: pinned H2D %.1f GB/s, D2H %.1f GB/s, device memory %.0f GB/s",
		dev.Name(), c.HostToDevice/1e9, c.DeviceToHost/1e9, c.DeviceMemory/1e9)
	// Sanity bounds: anything slower than PCIe 1.0 x1 or faster than any
	// bus or HBM today means the measurement is wrong.
	for name, v := range map[string]float64{"H2D": c.HostToDevice, "D2H": c.DeviceToHost, "device memory": c.DeviceMemory} {
		if v < 250e6 || v > 20e12 {
			t.Errorf("%s bandwidth %.3g B/s is implausible", name, v)
		}
	}
}
