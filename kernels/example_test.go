//go:build cgo

package kernels_test

import (
	"fmt"

	"github.com/stoker-ml/stoker/kernels"
)

// A 2×2 image averaged down to one pixel: each axis plan reads both input
// samples with weight 1/2 (1<<21 in Q22). Red is 10, 30 / 50, 70, so the
// horizontal pass gives 20 and 60 and the vertical pass 40.
func ExampleEmulateResizeCropNormalize() {
	half := int32(1 << (kernels.PrecisionBits - 1))
	plan := kernels.AxisPlan{Out: 1, Taps: 2, Start: []int32{0}, Count: []int32{2}, Coeffs: []int32{half, half}}
	j := &kernels.Job{
		Images: []kernels.Image{{
			Width: 2, Height: 2,
			Pix: []byte{
				10, 0, 255, 30, 0, 255,
				50, 0, 255, 70, 0, 255,
			},
			X: plan, Y: plan,
		}},
		OutW: 1, OutH: 1, Layout: kernels.NCHW, DType: kernels.Uint8,
		Dst: make([]byte, 3),
	}
	if err := kernels.EmulateResizeCropNormalize(j); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j.Dst)
	// Output: [40 0 255]
}
