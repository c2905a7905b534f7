package safetensors

import (
	"testing"

	"github.com/stoker-ml/stoker/preprocess"
)

// imageBatch is a batch of 32 NCHW float32 224×224 images (~19 MiB), the
// size of a default image-pipeline message.
func imageBatch() ([]preprocess.Tensor, map[string]string) {
	const rows = 32
	t := preprocess.Tensor{Name: "pixel_values", DType: preprocess.Float32, Shape: []int{rows, 3, 224, 224}}
	t.Data = make([]byte, rows*3*224*224*4)
	return []preprocess.Tensor{t}, map[string]string{"pipeline": "image", "ids": `["a","b"]`}
}

// Compare runs with: go test -run XXX -bench . -count 10 ./internal/safetensors | benchstat -
func BenchmarkAppendEncode(b *testing.B) {
	tensors, meta := imageBatch()
	buf := make([]byte, 0, EncodedSize(tensors, meta))
	b.SetBytes(int64(len(tensors[0].Data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendEncode(buf[:0], tensors, meta)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*tensors[0].Shape[0])/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkCopyReference is the floor AppendEncode is compared with: one
// memmove of the same bytes.
func BenchmarkCopyReference(b *testing.B) {
	tensors, _ := imageBatch()
	buf := make([]byte, len(tensors[0].Data))
	b.SetBytes(int64(len(tensors[0].Data)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, tensors[0].Data)
	}
	b.ReportMetric(float64(b.N*tensors[0].Shape[0])/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkDecode(b *testing.B) {
	tensors, meta := imageBatch()
	enc, err := Encode(tensors, meta)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
