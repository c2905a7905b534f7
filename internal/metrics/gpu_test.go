package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGPUCollector(t *testing.T) {
	t.Run("available", func(t *testing.T) {
		c := newGPUCollector(fakeGPU{})
		want := `
# HELP stoker_gpu_memory_total_bytes GPU memory installed.
# TYPE stoker_gpu_memory_total_bytes gauge
stoker_gpu_memory_total_bytes{gpu="0"} 8.589934592e+10
# HELP stoker_gpu_nvml_available ` + NVMLAvailable.Help + `
# TYPE stoker_gpu_nvml_available gauge
stoker_gpu_nvml_available 1
# HELP stoker_gpu_pcie_throughput_bytes_per_second ` + GPUPCIe.Help + `
# TYPE stoker_gpu_pcie_throughput_bytes_per_second gauge
stoker_gpu_pcie_throughput_bytes_per_second{direction="rx",gpu="0"} 2e+09
stoker_gpu_pcie_throughput_bytes_per_second{direction="tx",gpu="0"} 1e+09
# HELP stoker_gpu_utilization_ratio ` + GPUUtil.Help + `
# TYPE stoker_gpu_utilization_ratio gauge
stoker_gpu_utilization_ratio{gpu="0"} 0.5
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "stoker_gpu_memory_total_bytes",
			"stoker_gpu_nvml_available", "stoker_gpu_pcie_throughput_bytes_per_second", "stoker_gpu_utilization_ratio"); err != nil {
			t.Error(err)
		}
		if n := testutil.CollectAndCount(c); n != 9 {
			t.Errorf("%d series, want 9 (available, info, utilisation, 2 memory, temperature, power, 2 PCIe)", n)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		c := newGPUCollector(fakeGPU{err: ErrNoNVML})
		want := "# HELP stoker_gpu_nvml_available " + NVMLAvailable.Help + "\n# TYPE stoker_gpu_nvml_available gauge\nstoker_gpu_nvml_available 0\n"
		if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
			t.Error(err)
		}
	})
}

// TestNewGPUCollectorOnThisMachine runs the collector of this build: it
// must not panic, and stoker_gpu_nvml_available must agree with
// Unavailable. On a machine without NVML (or a CPU build) the reason wraps
// ErrNoNVML.
func TestNewGPUCollectorOnThisMachine(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	avail := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		fams := make(chan prometheus.Metric, 64)
		m.GPU.Collect(fams)
		close(fams)
		for f := range fams {
			if strings.Contains(f.Desc().String(), `"`+NVMLAvailable.Name+`"`) {
				ch <- f
			}
		}
	}))
	err := m.GPU.Unavailable()
	switch {
	case err == nil && avail != 1:
		t.Errorf("NVML loaded but stoker_gpu_nvml_available = %v", avail)
	case err != nil && avail != 0:
		t.Errorf("NVML unavailable (%v) but stoker_gpu_nvml_available = %v", err, avail)
	case err != nil && !errors.Is(err, ErrNoNVML):
		t.Errorf("reason %v does not wrap ErrNoNVML", err)
	}
	t.Logf("NVML: available=%v reason=%v", avail, err)
}
