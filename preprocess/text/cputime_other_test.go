//go:build !unix

package text

// cpuSeconds is unavailable here; the cpu-MB/s metric is then omitted.
func cpuSeconds() float64 { return 0 }
