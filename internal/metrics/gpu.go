package metrics

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// GPUFamily describes one family a GPUCollector exports.
type GPUFamily struct {
	Name   string
	Help   string
	Labels []string
}

// The GPU families. Only NVMLAvailable is exported when NVML cannot be
// loaded (a build without the cuda tag, or no NVIDIA driver); the others
// have one series per visible GPU, labelled with its NVML index.
var (
	NVMLAvailable = GPUFamily{"stoker_gpu_nvml_available", "1 when NVML (the NVIDIA driver's management library) was loaded and the GPU families below are exported; 0 when it could not be (CPU build or no driver).", nil}
	GPUInfo       = GPUFamily{"stoker_gpu_info", "Always 1; names the GPU at each NVML index.", []string{"gpu", "name", "uuid"}}
	GPUUtil       = GPUFamily{"stoker_gpu_utilization_ratio", "Fraction of the last NVML sample period (1/6 s to 1 s) during which a kernel ran on the GPU.", []string{"gpu"}}
	GPUMemUsed    = GPUFamily{"stoker_gpu_memory_used_bytes", "GPU memory in use, by every process.", []string{"gpu"}}
	GPUMemTotal   = GPUFamily{"stoker_gpu_memory_total_bytes", "GPU memory installed.", []string{"gpu"}}
	GPUTemp       = GPUFamily{"stoker_gpu_temperature_celsius", "GPU die temperature.", []string{"gpu"}}
	GPUPower      = GPUFamily{"stoker_gpu_power_watts", "GPU board power draw.", []string{"gpu"}}
	GPUPCIe       = GPUFamily{"stoker_gpu_pcie_throughput_bytes_per_second", "PCIe throughput over NVML's last 20 ms sample, by direction (tx: GPU to host, rx: host to GPU).", []string{"gpu", "direction"}}
)

// GPUFamilies lists every family a GPUCollector may export.
var GPUFamilies = []GPUFamily{NVMLAvailable, GPUInfo, GPUUtil, GPUMemUsed, GPUMemTotal, GPUTemp, GPUPower, GPUPCIe}

// gpuReading is one GPU's state; a NaN field could not be read and is not
// exported.
type gpuReading struct {
	Index              int
	Name, UUID         string
	Utilization        float64 // ratio 0..1
	MemUsed, MemTotal  float64 // bytes
	TemperatureCelsius float64
	PowerWatts         float64
	PCIeTX, PCIeRX     float64 // bytes per second
}

// gpuReader reads GPUs. available reports why none can be read (nil when
// they can); read returns one reading per visible GPU.
type gpuReader interface {
	available() error
	read() []gpuReading
}

// GPUCollector is a prometheus.Collector that reads the GPUs through NVML
// at each scrape. NVML is loaded at run time on the first scrape (builds
// with the cuda tag); without it the collector exports
// stoker_gpu_nvml_available 0 and nothing else.
type GPUCollector struct {
	r     gpuReader
	descs map[string]*prometheus.Desc
}

// NewGPUCollector returns the collector for this build: NVML-backed with
// the cuda build tag, always unavailable otherwise.
func NewGPUCollector() *GPUCollector { return newGPUCollector(newNVMLReader()) }

func newGPUCollector(r gpuReader) *GPUCollector {
	c := &GPUCollector{r: r, descs: map[string]*prometheus.Desc{}}
	for _, f := range GPUFamilies {
		c.descs[f.Name] = prometheus.NewDesc(f.Name, f.Help, f.Labels, nil)
	}
	return c
}

// Unavailable says why NVML cannot be read (for a log line), or nil.
func (c *GPUCollector) Unavailable() error { return c.r.available() }

// Describe sends every GPU family's description.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range GPUFamilies {
		ch <- c.descs[f.Name]
	}
}

// Collect reads the GPUs and sends their metrics.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	if c.r.available() != nil {
		ch <- prometheus.MustNewConstMetric(c.descs[NVMLAvailable.Name], prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.descs[NVMLAvailable.Name], prometheus.GaugeValue, 1)
	gauge := func(f GPUFamily, v float64, labels ...string) {
		if !math.IsNaN(v) {
			ch <- prometheus.MustNewConstMetric(c.descs[f.Name], prometheus.GaugeValue, v, labels...)
		}
	}
	for _, g := range c.r.read() {
		idx := strconv.Itoa(g.Index)
		gauge(GPUInfo, 1, idx, g.Name, g.UUID)
		gauge(GPUUtil, g.Utilization, idx)
		gauge(GPUMemUsed, g.MemUsed, idx)
		gauge(GPUMemTotal, g.MemTotal, idx)
		gauge(GPUTemp, g.TemperatureCelsius, idx)
		gauge(GPUPower, g.PowerWatts, idx)
		gauge(GPUPCIe, g.PCIeTX, idx, "tx")
		gauge(GPUPCIe, g.PCIeRX, idx, "rx")
	}
}
