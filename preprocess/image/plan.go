package image

import "math"

// PrecisionBits is PIL's fixed-point precision for 8-bit resampling
// (32 - 8 - 2 in Resample.c): weights are integers scaled by 1<<22.
const PrecisionBits = 22

// AxisPlan is the resampling plan of one axis: for each kept output sample,
// the window of input samples it reads and their fixed-point weights. The
// CUDA kernel receives these arrays as they are.
type AxisPlan struct {
	Out    int     // output samples along this axis (= Crop)
	Taps   int     // coefficients stored per output sample (max window length)
	Start  []int32 // len Out: first input index of each output sample's window
	Count  []int32 // len Out: window length (<= Taps)
	Coeffs []int32 // len Out*Taps: fixed-point weights (sum ~ 1<<PrecisionBits), zero-padded
}

// PlanAxis plans one axis: `in` input samples resized to `resized`, then
// `out` samples kept starting at `offset`. The weights are PIL's antialiased
// bilinear weights (a triangle filter of support max(1, in/resized)),
// computed in float64 exactly as Resample.c computes them and rounded to
// PrecisionBits.
func PlanAxis(in, resized, offset, out int) AxisPlan {
	var p AxisPlan
	planAxisInto(&p, in, resized, offset, out)
	return p
}

// windowSize is the number of weights PIL allocates per output sample.
func windowSize(in, resized int) int {
	scale := float64(in) / float64(resized)
	filterscale := math.Max(scale, 1)
	support := 1.0 * filterscale // the bilinear filter's support is 1
	return int(math.Ceil(support))*2 + 1
}

// planAxisInto fills p, reusing its slices when they are large enough.
func planAxisInto(p *AxisPlan, in, resized, offset, out int) {
	scale := float64(in) / float64(resized)
	filterscale := math.Max(scale, 1)
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	ss := 1.0 / filterscale

	p.Out = out
	p.Taps = ksize
	p.Start = grow32(p.Start, out)
	p.Count = grow32(p.Count, out)
	p.Coeffs = grow32(p.Coeffs, out*ksize)
	var w [64]float64
	weights := w[:0]
	if ksize > len(w) {
		weights = make([]float64, 0, ksize)
	}
	for i := 0; i < out; i++ {
		xx := offset + i
		// Each product is converted explicitly so that the compiler cannot
		// fuse it into a multiply-add: PIL's C code rounds every operation.
		center := float64(float64(xx)+0.5) * scale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		n := xmax - xmin
		weights = weights[:n]
		ww := 0.0
		for x := 0; x < n; x++ {
			t := float64(float64(x+xmin)-center+0.5) * ss
			weights[x] = triangle(t)
			ww += weights[x]
		}
		k := p.Coeffs[i*ksize : (i+1)*ksize]
		for x := 0; x < n; x++ {
			v := weights[x]
			if ww != 0 {
				v /= ww
			}
			f := float64(v * (1 << PrecisionBits))
			if f < 0 {
				k[x] = int32(-0.5 + f)
			} else {
				k[x] = int32(0.5 + f)
			}
		}
		for x := n; x < ksize; x++ {
			k[x] = 0
		}
		p.Start[i] = int32(xmin)
		p.Count[i] = int32(n)
	}
}

// triangle is PIL's bilinear filter.
func triangle(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func grow32(s []int32, n int) []int32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]int32, n)
}
