// Package kernelstest holds what the kernel tests share: random images,
// output poisoning and the element-by-element comparison of a kernel's
// output with the CPU path's, with the tolerance issue 5 sets.
package kernelstest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/stoker-ml/stoker/kernels"
)

// Tolerances in normalised units (the units of the float outputs): the
// largest and the mean absolute difference allowed between the GPU (or
// emulated) output and the CPU path's.
const (
	MaxAbsTolerance  = 0.02
	MeanAbsTolerance = 0.002
)

// RandomPixels returns w*h random RGB8 pixels: uniform noise in most
// rows, with saturated (0 and 255) runs mixed in so that clamping after
// each pass is exercised.
func RandomPixels(rng *rand.Rand, w, h int) []byte {
	pix := make([]byte, w*h*3)
	for i := range pix {
		pix[i] = byte(rng.UintN(256))
	}
	for r := 0; r < h; r += 1 + int(rng.UintN(7)) {
		row := pix[r*w*3 : (r+1)*w*3]
		v := byte(0)
		if rng.UintN(2) == 1 {
			v = 255
		}
		from := int(rng.UintN(uint(w)))
		for x := from; x < min(w, from+int(rng.UintN(64))+1); x++ {
			row[3*x], row[3*x+1], row[3*x+2] = v, v, v
		}
	}
	return pix
}

// Poison fills buf with b. 0xFF makes every float32, float16 and bfloat16
// element a NaN, so an element the kernel forgets to write fails the
// comparison.
func Poison(buf []byte, b byte) {
	for i := range buf {
		buf[i] = b
	}
}

// Diff summarises got against want.
type Diff struct {
	Elements   int
	MaxAbs     float64 // largest |got-want| in normalised units (levels for uint8)
	MeanAbs    float64
	Mismatched int // elements whose bytes differ
	NaN        int // elements of got that are NaN where want is not
	FirstBad   int // index of the first mismatched element, -1 if none
}

func (d Diff) String() string {
	return fmt.Sprintf("%d elements: max |diff| %.6g, mean %.3g, %d not bit-identical (first at %d), %d NaN",
		d.Elements, d.MaxAbs, d.MeanAbs, d.Mismatched, d.FirstBad, d.NaN)
}

// WithinTolerance reports whether d meets issue 5's bounds and has no NaN.
func (d Diff) WithinTolerance() bool {
	return d.NaN == 0 && d.MaxAbs <= MaxAbsTolerance && d.MeanAbs <= MeanAbsTolerance
}

// Compare compares two outputs of element type dt element by element.
func Compare(dt kernels.DType, got, want []byte) Diff {
	size := dt.Size()
	n := len(want) / size
	d := Diff{Elements: n, FirstBad: -1}
	if len(got) < len(want) {
		d.Mismatched, d.MaxAbs, d.MeanAbs, d.FirstBad = n, math.Inf(1), math.Inf(1), 0
		return d
	}
	sum := 0.0
	for i := 0; i < n; i++ {
		g, w := got[i*size:(i+1)*size], want[i*size:(i+1)*size]
		if string(g) != string(w) {
			d.Mismatched++
			if d.FirstBad < 0 {
				d.FirstBad = i
			}
		}
		gv, wv := Value(dt, g), Value(dt, w)
		if math.IsNaN(gv) && !math.IsNaN(wv) {
			d.NaN++
			continue
		}
		diff := math.Abs(gv - wv)
		d.MaxAbs = max(d.MaxAbs, diff)
		sum += diff
	}
	if n > 0 {
		d.MeanAbs = sum / float64(n)
	}
	return d
}

// Value decodes one little-endian element of type dt.
func Value(dt kernels.DType, b []byte) float64 {
	switch dt {
	case kernels.Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case kernels.Float16:
		return Float16Value(binary.LittleEndian.Uint16(b))
	case kernels.BFloat16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
	case kernels.Uint8:
		return float64(b[0])
	}
	return math.NaN()
}

// Float16Value decodes IEEE 754 binary16 bits.
func Float16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * mant * math.Pow(2, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * (1 + mant/1024) * math.Pow(2, float64(exp-15))
}
