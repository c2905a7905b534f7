//go:build cuda

package metrics

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoNVML wraps the reason NVML could not be loaded or initialised
// (no NVIDIA driver, libnvidia-ml.so.1 not found, driver too old).
var ErrNoNVML = errors.New("NVML unavailable")

// nvmlReader loads libnvidia-ml.so.1 with dlopen on first use and keeps it
// for the life of the process.
type nvmlReader struct {
	once sync.Once
	lib  nvml.Interface
	err  error
}

func newNVMLReader() gpuReader { return &nvmlReader{} }

func (r *nvmlReader) available() error {
	r.once.Do(func() {
		r.lib = nvml.New()
		if ret := r.lib.Init(); ret != nvml.SUCCESS {
			r.err = fmt.Errorf("%w: nvmlInit: %s", ErrNoNVML, r.lib.ErrorString(ret))
		}
	})
	return r.err
}

func (r *nvmlReader) read() []gpuReading {
	n, ret := r.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil
	}
	out := make([]gpuReading, 0, n)
	for i := range n {
		d, ret := r.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		g := gpuReading{Index: i, Utilization: math.NaN(), MemUsed: math.NaN(), MemTotal: math.NaN(),
			TemperatureCelsius: math.NaN(), PowerWatts: math.NaN(), PCIeTX: math.NaN(), PCIeRX: math.NaN()}
		g.Name, _ = d.GetName()
		g.UUID, _ = d.GetUUID()
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			g.Utilization = float64(u.Gpu) / 100
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemUsed, g.MemTotal = float64(m.Used), float64(m.Total)
		}
		if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			g.TemperatureCelsius = float64(t)
		}
		if p, ret := d.GetPowerUsage(); ret == nvml.SUCCESS {
			g.PowerWatts = float64(p) / 1000 // milliwatts
		}
		if v, ret := d.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES); ret == nvml.SUCCESS {
			g.PCIeTX = float64(v) * 1024 // KB/s
		}
		if v, ret := d.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES); ret == nvml.SUCCESS {
			g.PCIeRX = float64(v) * 1024
		}
		out = append(out, g)
	}
	return out
}
