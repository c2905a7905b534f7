package batch

import (
	"testing"
	"time"
)

// BenchmarkAdd measures the policy's cost per item with the default policy
// (a batch of 64 every 64 Adds). Compare runs with benchstat.
func BenchmarkAdd(b *testing.B) {
	bt, err := NewBatcher[int](DefaultPolicy())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(0, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := bt.Add(i, 150_000, now); ok {
			i = 0
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
