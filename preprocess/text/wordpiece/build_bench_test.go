package wordpiece

import "testing"

// BenchmarkBuildCodePoints is the one-time cost of the code-point table.
func BenchmarkBuildCodePoints(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		buildCodePoints(normKey{true, true, true, true})
	}
}
