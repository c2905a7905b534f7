package image_test

import (
	"context"
	"fmt"
	"os"

	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image"
)

// A batch of two items, one of them not an image: the good one becomes a
// row of pixel_values, the other is reported in Failed.
func ExampleProcessor_Process() {
	data, err := os.ReadFile("testdata/corpus/rocket.jpg")
	if err != nil {
		panic(err)
	}
	p, err := image.NewProcessor(image.DefaultSpec(), 0)
	if err != nil {
		panic(err)
	}
	b, err := p.Process(context.Background(), []preprocess.Item{
		{ID: "rocket", Data: data},
		{ID: "notes", Data: []byte("not an image")},
	})
	if err != nil {
		panic(err)
	}
	t := b.Tensors[0]
	fmt.Println(b.IDs, t.Name, t.DType, t.Shape, b.RowFacts["original_size"])
	fmt.Println(b.Failed[0].Error())
	// Output:
	// [rocket] pixel_values F32 [1 3 224 224] [[427 640]]
	// item "notes": unsupported image format (first bytes 6e 6f 74 20 61 6e 20 69; want JPEG, PNG, GIF, BMP, WebP, binary PPM or PGM)
}

// torchvision's sizes for a 640×427 image: Resize(256) gives 383×256 and
// CenterCrop(224) starts at (80, 16).
func ExampleSpec_ResizedSize() {
	s := image.DefaultSpec()
	rw, rh := s.ResizedSize(640, 427)
	x, y := s.CropOffset(rw, rh)
	fmt.Println(rw, rh, x, y)
	// Output: 383 256 80 16
}
