//go:build cuda

package service_test

import (
	"testing"

	"github.com/stoker-ml/stoker/kernels"
	"github.com/stoker-ml/stoker/kernels/kernelstest"
)

// TestGPULossFallsBackToCPU runs the service on kernels/fakecuda (make
// test-cuda-fake) and makes the first kernel fault while it runs, which
// ends the CUDA context as an illegal address would on a GPU. The batch
// fails transiently and is counted as gpu_lost, the image pipeline goes on
// on the CPU, and every image is still published within tolerance of
// torchvision.
func TestGPULossFallsBackToCPU(t *testing.T) {
	fake := kernelstest.RequireFakeDriver(t)
	r := startService(t, nil)
	launches := fake.Stat("cuLaunchKernel")
	fake.Fail(t, "cuLaunchKernel", 1, kernelstest.CUDAErrorLaunchFailed, true)
	checkImagesMatchGoldens(t, r)
	if n := fake.Stat("cuLaunchKernel") - launches; n != 1 {
		t.Errorf("%d kernels launched; want 1, the one that faulted, then the CPU", n)
	}
	if got := scrapeCounter(t, r, "stoker_failures_total", `pipeline="image"`, `reason="`+kernels.ReasonDeviceLost+`"`); got < 1 {
		t.Errorf("stoker_failures_total{pipeline=image,reason=%s} = %v, want at least 1", kernels.ReasonDeviceLost, got)
	}
}
