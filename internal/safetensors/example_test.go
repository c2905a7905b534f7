package safetensors_test

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/stoker-ml/stoker/internal/safetensors"
	"github.com/stoker-ml/stoker/preprocess"
)

func ExampleEncode() {
	var data []byte
	for _, v := range []float32{0.25, 0.5, 0.75, 1} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	payload, err := safetensors.Encode(
		[]preprocess.Tensor{{Name: "pixel_values", DType: preprocess.Float32, Shape: []int{1, 2, 2}, Data: data}},
		map[string]string{"pipeline": "image", "ids": `["cat.jpg"]`},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	tensors, meta, err := safetensors.Decode(payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tensors {
		fmt.Println(t.Name, t.DType, t.Shape, len(t.Data), "bytes")
	}
	fmt.Println(meta["pipeline"], meta["ids"])
	// Output:
	// pixel_values F32 [1 2 2] 16 bytes
	// image ["cat.jpg"]
}
