package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile is the p-th percentile (0 ≤ p ≤ 100) of xs by linear
// interpolation between the closest ranks (the definition numpy calls
// "linear"). xs need not be sorted and is not modified. It is NaN for an
// empty slice.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return sortedPercentile(s, p)
}

func sortedPercentile(s []float64, p float64) float64 {
	p = min(max(p, 0), 100)
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// Summary describes repeated measurements of one figure.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Spread is half the range relative to the median, in percent: the
	// "±" a reader puts after the median. 0 for one measurement.
	Spread float64 `json:"spread_pct"`
	N      int     `json:"n"`
}

// Summarize returns the median, range and spread of xs; the zero Summary
// for an empty slice.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	out := Summary{Median: sortedPercentile(s, 50), Min: s[0], Max: s[len(s)-1], N: len(s)}
	if out.Median != 0 {
		out.Spread = (out.Max - out.Min) / 2 / math.Abs(out.Median) * 100
	}
	return out
}

// Latency holds per-batch latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Mean float64 `json:"mean_ms"`
	Max  float64 `json:"max_ms"`
	N    int     `json:"n"`
}

// LatencyOf summarises durations; the zero Latency for none.
func LatencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Latency{
		P50: sortedPercentile(ms, 50), P95: sortedPercentile(ms, 95), P99: sortedPercentile(ms, 99),
		Mean: sum / float64(len(ms)), Max: ms[len(ms)-1], N: len(ms),
	}
}
