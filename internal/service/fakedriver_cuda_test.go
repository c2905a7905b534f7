//go:build cuda

package service_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// scrapeCounter reads a counter from the service's /metrics: the sum of
// the series of name whose labels include every one of labels.
func scrapeCounter(t *testing.T, r *running, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", r.svc.MetricsAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		series, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); match && err == nil {
			sum += v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}
