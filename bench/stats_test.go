package bench

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"median of even count interpolates", []float64{4, 1, 3, 2}, 50, 2.5},
		{"p0 is the minimum", []float64{4, 1, 3, 2}, 0, 1},
		{"p100 is the maximum", []float64{4, 1, 3, 2}, 100, 4},
		{"p25 between first and second", []float64{1, 2, 3, 4}, 25, 1.75},
		{"single value", []float64{7}, 99, 7},
		{"p99 of 1..101", seq(1, 101), 99, 100},
		{"out of range p is clamped", []float64{1, 2}, 150, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.xs)
			got := Percentile(tc.xs, tc.p)
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.xs, tc.p, got, tc.want)
			}
			if !slices.Equal(in, tc.xs) {
				t.Errorf("Percentile reordered its input: %v, was %v", tc.xs, in)
			}
		})
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
}

func seq(from, to int) []float64 {
	var out []float64
	for i := from; i <= to; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want Summary
	}{
		{"odd count", []float64{10, 12, 8, 11, 9}, Summary{Median: 10, Min: 8, Max: 12, Spread: 20, N: 5}},
		{"even count", []float64{100, 300}, Summary{Median: 200, Min: 100, Max: 300, Spread: 50, N: 2}},
		{"one value has no spread", []float64{5}, Summary{Median: 5, Min: 5, Max: 5, N: 1}},
		{"empty", nil, Summary{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.xs)
			if math.Abs(got.Spread-tc.want.Spread) > 1e-9 {
				t.Errorf("spread = %v, want %v", got.Spread, tc.want.Spread)
			}
			got.Spread = tc.want.Spread
			if got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.xs, got, tc.want)
			}
		})
	}
}

func TestLatencyOf(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // 100ms down to 1ms, unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := LatencyOf(ds)
	want := Latency{P50: 50.5, P95: 95.05, P99: 99.01, Mean: 50.5, Max: 100, N: 100}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", got.P50, want.P50}, {"p95", got.P95, want.P95}, {"p99", got.P99, want.P99}, {"mean", got.Mean, want.Mean}, {"max", got.Max, want.Max}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v ms, want %v ms", c.name, c.got, c.want)
		}
	}
	if got.N != 100 {
		t.Errorf("n = %d, want 100", got.N)
	}
	if z := LatencyOf(nil); z != (Latency{}) {
		t.Errorf("LatencyOf(nil) = %+v, want zero", z)
	}
}
