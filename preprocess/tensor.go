package preprocess

import (
	"fmt"
	"math"
)

// DType names the element type of a Tensor, spelled as safetensors spells it.
type DType string

// The element types stoker produces.
const (
	Float32  DType = "F32"
	Float16  DType = "F16"
	BFloat16 DType = "BF16"
	Uint8    DType = "U8"
	Int64    DType = "I64"
	Int32    DType = "I32"
)

// ParseDType reads the names users write in configuration files
// ("float32", "float16", "bfloat16", "uint8", "int64", "int32") as well as
// the safetensors spellings.
func ParseDType(s string) (DType, error) {
	switch s {
	case "float32", "F32":
		return Float32, nil
	case "float16", "F16":
		return Float16, nil
	case "bfloat16", "BF16":
		return BFloat16, nil
	case "uint8", "U8":
		return Uint8, nil
	case "int64", "I64":
		return Int64, nil
	case "int32", "I32":
		return Int32, nil
	}
	return "", fmt.Errorf("unknown dtype %q (want float32, float16, bfloat16, uint8, int64 or int32)", s)
}

// Size is the number of bytes of one element, or 0 for an unknown DType.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16, BFloat16:
		return 2
	case Uint8:
		return 1
	case Int64:
		return 8
	}
	return 0
}

// Tensor is a dense little-endian array. The first dimension of every tensor
// in a Batch is the row (item) index.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// RowBytes is the size in bytes of one row (one item) of the tensor.
func (t Tensor) RowBytes() int {
	if len(t.Shape) == 0 || t.Shape[0] == 0 {
		return 0
	}
	return t.NumElements() / t.Shape[0] * t.DType.Size()
}

// Rows returns the tensor restricted to rows [i, j). The data is shared.
func (t Tensor) Rows(i, j int) Tensor {
	rb := t.RowBytes()
	shape := append([]int{j - i}, t.Shape[1:]...)
	return Tensor{Name: t.Name, DType: t.DType, Shape: shape, Data: t.Data[i*rb : j*rb]}
}

// Float16Bits converts f to IEEE 754 half precision, rounding to nearest even.
func Float16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 142: // overflow: |f| >= 65520 rounds to Inf
		return sign | 0x7c00
	case exp >= 113: // normal half
		h := uint32(exp-112)<<10 | mant>>13
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++ // may carry into the exponent, which is still correct (up to Inf)
		}
		return sign | uint16(h)
	case exp >= 102: // subnormal half
		m := mant | 0x800000
		shift := uint32(126 - exp) // 14..24
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	return sign // underflow to signed zero
}

// BFloat16Bits converts f to bfloat16, rounding to nearest even.
func BFloat16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
