package kernels

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// BenchmarkTextHostSide measures what the host does per text batch around
// the kernels, without a GPU: packing the documents into the upload
// buffer and turning the downloaded output (int32 ids, [rows, 128], and
// the row lengths) into the batch's three int64 tensors: ids widened,
// mask and type ids written from the lengths (every row 100 tokens long,
// so PadLongest cuts the rows to 100). It bounds the docs/s the GPU
// path can reach on a machine, whatever the GPU does. With recycled=true
// the tensors' memory comes back from the previous batch (TextJob.Alloc,
// through preprocess.Buffers, as once the worker releases a batch) instead of
// being allocated and zeroed.
func BenchmarkTextHostSide(b *testing.B) {
	tb := validTables()
	tb.Prefix, tb.PrefixTypes, tb.Suffix, tb.SuffixTypes = []int32{1}, []int32{0}, []int32{2}, []int32{0}
	doc := []byte(strings.Repeat("a quick fox ", 6)) // 72 bytes, about the corpus mean
	for _, n := range []int{100, 1000, 10000, 100000} {
		for _, longest := range []bool{false, true} {
			for _, recycled := range []bool{false, true} {
				b.Run(fmt.Sprintf("docs=%d/pad_longest=%v/recycled=%v", n, longest, recycled), func(b *testing.B) {
					j := &TextJob{Docs: make([][]byte, n), Room: 126, Width: 128, Int64: true, PadLongest: longest,
						Workers: runtime.GOMAXPROCS(0)}
					var tensors preprocess.Buffers
					if recycled {
						j.Alloc = tensors.Get
					}
					for i := range j.Docs {
						j.Docs[i] = doc
					}
					p := j.packing()
					in := make([]byte, p.Size)
					out := make([]byte, j.outputBytes())
					counts := make([]byte, 4*p.Spans)
					for r := 0; r < n; r++ {
						out[j.lengthsOffset()+4*r] = 100
					}
					b.ReportAllocs()
					b.SetBytes(int64(n * len(doc)))
					for b.Loop() {
						j.pack(in, p)
						j.finish(tb, out, counts)
						if recycled {
							tensors.Put(j.IDs)
							tensors.Put(j.Mask)
							tensors.Put(j.TypeIDs)
						}
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "docs/s")
				})
			}
		}
	}
}
