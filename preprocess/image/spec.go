package image

import (
	"fmt"
	"math"

	"github.com/stoker-ml/stoker/preprocess"
)

// Layout is the order of the dimensions of one output row.
type Layout string

// The layouts the Processor writes.
const (
	NCHW Layout = "NCHW" // channels first: [B,3,H,W], torchvision's layout
	NHWC Layout = "NHWC" // channels last: [B,H,W,3]
)

// Spec describes the transform. The zero value is not valid; start from
// DefaultSpec.
type Spec struct {
	// Resize is the length of the shorter side after resizing. Default 256.
	Resize int
	// Crop is the side of the square center crop taken after resizing.
	// Default 224. Must not exceed Resize.
	Crop int
	// Mean and Std normalise each channel: (v/255 - Mean)/Std. Default the
	// ImageNet statistics {0.485, 0.456, 0.406} and {0.229, 0.224, 0.225}.
	Mean, Std [3]float32
	// Layout of the output tensor. Default NCHW.
	Layout Layout
	// DType of the output tensor: Float32 (default), Float16, BFloat16 or
	// Uint8. Uint8 writes the resized pixels without scaling or
	// normalisation.
	DType preprocess.DType
	// MaxBytes limits the encoded size of one item. Default 0: no limit.
	MaxBytes int64
	// MaxPixels limits width*height as read from the file's header, before
	// decoding. Default 0: no limit.
	MaxPixels int64
	// DecodeMemory bounds the memory the images a Processor decodes at once
	// take, estimated from their headers (see Decoder.Limit); an image
	// whose estimate exceeds it is decoded alone. Default 0: no bound.
	DecodeMemory int64
}

// DefaultSpec returns torchvision's ImageNet evaluation transform:
// Resize(256), CenterCrop(224), ImageNet mean and std, NCHW float32, no limits.
func DefaultSpec() Spec {
	return Spec{
		Resize: 256,
		Crop:   224,
		Mean:   [3]float32{0.485, 0.456, 0.406},
		Std:    [3]float32{0.229, 0.224, 0.225},
		Layout: NCHW,
		DType:  preprocess.Float32,
	}
}

// maxSide bounds Resize and Crop so that sizes and plan arithmetic stay far
// from integer overflow.
const maxSide = 1 << 14

// Validate reports the first field that is out of range, naming it as the
// configuration file does (image.resize, image.crop, ...).
func (s Spec) Validate() error {
	switch {
	case s.Resize <= 0 || s.Resize > maxSide:
		return fmt.Errorf("image.resize: %d is out of range (want 1..%d)", s.Resize, maxSide)
	case s.Crop <= 0:
		return fmt.Errorf("image.crop: %d is out of range (want 1..image.resize)", s.Crop)
	case s.Crop > s.Resize:
		return fmt.Errorf("image.crop: %d is larger than image.resize %d", s.Crop, s.Resize)
	case s.Layout != NCHW && s.Layout != NHWC:
		return fmt.Errorf("image.layout: %q is not supported (want NCHW or NHWC)", s.Layout)
	case s.MaxBytes < 0:
		return fmt.Errorf("image.max_bytes: %d is negative (0 means no limit)", s.MaxBytes)
	case s.MaxPixels < 0:
		return fmt.Errorf("image.max_pixels: %d is negative (0 means no limit)", s.MaxPixels)
	case s.DecodeMemory < 0:
		return fmt.Errorf("image.decode_memory: %d is negative (0 means no bound)", s.DecodeMemory)
	}
	switch s.DType {
	case preprocess.Float32, preprocess.Float16, preprocess.BFloat16, preprocess.Uint8:
	default:
		return fmt.Errorf("image.dtype: %q is not supported (want float32, float16, bfloat16 or uint8)", s.DType)
	}
	for c := 0; c < 3; c++ {
		if !(s.Std[c] > 0) || math.IsInf(float64(s.Std[c]), 0) {
			return fmt.Errorf("image.std[%d]: %v must be a positive finite number", c, s.Std[c])
		}
		if math.IsNaN(float64(s.Mean[c])) || math.IsInf(float64(s.Mean[c]), 0) {
			return fmt.Errorf("image.mean[%d]: %v must be a finite number", c, s.Mean[c])
		}
	}
	return nil
}

// ResizedSize is torchvision's Resize(s.Resize) size for a w×h image: the
// shorter side becomes s.Resize and the longer int(s.Resize*long/short),
// truncated. A square image becomes s.Resize×s.Resize.
func (s Spec) ResizedSize(w, h int) (rw, rh int) {
	if w <= 0 || h <= 0 {
		return 0, 0
	}
	if w <= h {
		// Python's int(a*b/c) on floats equals integer division here: the
		// quotient of integers below 2^53 is never within an ulp of the next
		// integer without being equal to it.
		return s.Resize, int(int64(s.Resize) * int64(h) / int64(w))
	}
	return int(int64(s.Resize) * int64(w) / int64(h)), s.Resize
}

// CropOffset is torchvision's CenterCrop(s.Crop) offset into an rw×rh image:
// int(round((rw-Crop)/2)) with round half to even, the same for y.
func (s Spec) CropOffset(rw, rh int) (x, y int) {
	return centerOffset(rw, s.Crop), centerOffset(rh, s.Crop)
}

// centerOffset computes round_half_even((size-crop)/2) for size >= crop.
func centerOffset(size, crop int) int {
	d := size - crop
	q := d / 2
	if d%2 != 0 && q%2 != 0 { // exactly .5 away: round to the even neighbour
		q++
	}
	return q
}
