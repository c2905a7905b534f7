package image

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/stoker-ml/stoker/preprocess"
	"github.com/stoker-ml/stoker/preprocess/image/internal/resample"
)

// outputTable maps one resized uint8 level of each channel to the bytes of
// the output element: the float32, float16 or bfloat16 bits of
// (float32(u)/255 - mean)/std, computed in float32 as torchvision's
// ToTensor and Normalize compute it, or u itself for Uint8.
type outputTable struct {
	dtype preprocess.DType
	f32   [3][256]uint32
	f16   [3][256]uint16 // float16 or bfloat16 bits
}

func newOutputTable(s Spec) *outputTable {
	t := &outputTable{dtype: s.DType}
	for c := 0; c < 3; c++ {
		mean, std := s.Mean[c], s.Std[c]
		for u := 0; u < 256; u++ {
			v := float32(u) / 255
			v = (v - mean) / std
			t.f32[c][u] = math.Float32bits(v)
			switch s.DType {
			case preprocess.Float16:
				t.f16[c][u] = preprocess.Float16Bits(v)
			case preprocess.BFloat16:
				t.f16[c][u] = preprocess.BFloat16Bits(v)
			}
		}
	}
	return t
}

// useAVX2 selects the AVX2 kernels of internal/resample, which compute the
// same integers as the Go kernels here (tests switch it off to compare).
var useAVX2 = resample.HasAVX2

// transformScratch holds the buffers one goroutine reuses from image to image.
type transformScratch struct {
	planW, planH int // input size the plans were made for
	hplan, vplan AxisPlan
	rowFirst     int      // first input row the vertical pass reads
	rowLast      int      // one past the last
	colFirst     int      // first input column the horizontal pass reads
	colLast      int      // one past the last
	between      []uint8  // horizontal pass output: (rowLast-rowFirst) rows of Crop*3
	acc          []uint64 // vertical pass accumulators: two 32-bit lanes each, Crop*3/2
	resized      []uint8  // one output row of resized RGB: Crop*3
	planResize   int      // Spec.Resize the plans were made for
	relStarts    []int32  // hplan.Start relative to colFirst (AVX2 horizontal kernel)
	transposed   []uint8  // eight rows of the needed columns, transposed (AVX2 kernel)
}

// plan prepares the resampling plans for a w×h input.
func (t *transformScratch) plan(s Spec, w, h int) {
	if t.planW == w && t.planH == h && t.hplan.Out == s.Crop && t.planResize == s.Resize {
		return
	}
	rw, rh := s.ResizedSize(w, h)
	cx, cy := s.CropOffset(rw, rh)
	planAxisInto(&t.hplan, w, rw, cx, s.Crop)
	planAxisInto(&t.vplan, h, rh, cy, s.Crop)
	t.planW, t.planH = w, h
	t.planResize = s.Resize
	t.rowFirst, t.rowLast = span(&t.vplan)
	t.colFirst, t.colLast = span(&t.hplan)
	t.relStarts = grow32(t.relStarts, len(t.hplan.Start))
	for i, st := range t.hplan.Start {
		t.relStarts[i] = st - int32(t.colFirst)
	}
}

// span is the range of input samples a plan reads.
func span(p *AxisPlan) (first, last int) {
	first, last = math.MaxInt, 0
	for i := 0; i < p.Out; i++ {
		s := int(p.Start[i])
		e := s + int(p.Count[i])
		if s < first {
			first = s
		}
		if e > last {
			last = e
		}
	}
	if first > last {
		first = last
	}
	return first, last
}

// clip8 turns a fixed-point sum into a uint8 as PIL does: shift, then clamp.
func clip8(v int32) uint8 {
	v >>= PrecisionBits
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// resample runs PIL's two passes over the rows [rowFirst,rowLast) of a
// packed RGB image (pix, stride) and writes the Crop×Crop result through out.
func (t *transformScratch) resample(dst []byte, pix []byte, stride int, s Spec, out *outputTable) {
	crop := s.Crop
	rowLen := crop * 3
	nrows := t.rowLast - t.rowFirst
	t.between = growU8(t.between, nrows*rowLen)
	// Horizontal pass: only the kept output columns, only the rows read later.
	hp := &t.hplan
	taps := hp.Taps
	if nrows > 0 && len(pix) < (t.rowLast-1)*stride+t.colLast*3 {
		panic("image: resample: pixel buffer smaller than the plan")
	}
	done := 0
	if useAVX2 && nrows >= 8 && len(hp.Start) > 0 {
		done = t.horizontalAVX2(pix, stride, nrows, rowLen)
	}
	horizontalPass(t.between[done*rowLen:], pix, stride, t.rowFirst+done, nrows-done, hp.Start, hp.Count, hp.Coeffs, taps)
	// Vertical pass, one output row at a time.
	vp := &t.vplan
	vt := vp.Taps
	if cap(t.acc) < rowLen/2 {
		t.acc = make([]uint64, rowLen/2)
	}
	t.resized = growU8(t.resized, rowLen)
	acc := t.acc
	for i := 0; i < crop; i++ {
		start := int(vp.Start[i]) - t.rowFirst
		n := int(vp.Count[i])
		k := vp.Coeffs[i*vt : i*vt+n]
		// Skip the zero weights PIL keeps at the window's ends.
		for len(k) > 0 && k[len(k)-1] == 0 {
			k = k[:len(k)-1]
		}
		for len(k) > 0 && k[0] == 0 {
			k = k[1:]
			start++
		}
		verticalRow(t.resized, acc, t.between, start, rowLen, k)
		writeRow(dst, t.resized, i, s, out)
	}
}

// horizontalAVX2 runs the horizontal pass on blocks of eight rows with the
// AVX2 kernel and returns how many rows it did (a multiple of 8).
func (t *transformScratch) horizontalAVX2(pix []byte, stride, nrows, rowLen int) int {
	hp := &t.hplan
	width := (t.colLast - t.colFirst) * 3 // bytes of each row the plan reads
	n8 := width &^ 7
	t.transposed = growU8(t.transposed, width*8)
	tr := t.transposed
	blocks := nrows / 8
	for b := 0; b < blocks; b++ {
		row := t.rowFirst + b*8
		base := row*stride + t.colFirst*3
		src := pix[base : base+7*stride+width] // bounds check for the kernel
		if n8 > 0 {
			resample.Transpose8(&tr[0], &src[0], stride, n8)
		}
		for m := n8; m < width; m++ {
			for r := 0; r < 8; r++ {
				tr[m*8+r] = src[r*stride+m]
			}
		}
		dst := t.between[b*8*rowLen : (b+1)*8*rowLen]
		resample.HorizontalAVX2(&dst[0], rowLen, &tr[0], &t.relStarts[0], &hp.Count[0], &hp.Coeffs[0], hp.Taps, len(hp.Start))
	}
	return blocks * 8
}

// horizontalPass is PIL's horizontal pass over rows [rowFirst,
// rowFirst+nrows) of pix, at the kept output columns, into between:
// horizontalRows2 on pairs of rows and horizontalRow on an odd last row.
func horizontalPass(between, pix []byte, stride, rowFirst, nrows int, starts, counts, coeffs []int32, taps int) {
	rowLen := len(starts) * 3
	r := 0
	for ; r+2 <= nrows; r += 2 {
		a := pix[(rowFirst+r)*stride : (rowFirst+r+1)*stride]
		b := pix[(rowFirst+r+1)*stride : (rowFirst+r+2)*stride]
		horizontalRows2(between[r*rowLen:(r+1)*rowLen], between[(r+1)*rowLen:(r+2)*rowLen], a, b, starts, counts, coeffs, taps)
	}
	if r < nrows {
		src := pix[(rowFirst+r)*stride:]
		o := between[r*rowLen : (r+1)*rowLen]
		horizontalRow(o, src, starts, counts, coeffs, taps)
	}
}

// horizontalRow resamples one input row (packed RGB) at the kept output
// columns: PIL's ImagingResampleHorizontal_8bpc restricted to the crop.
func horizontalRow(o []uint8, src []uint8, starts, counts, coeffs []int32, taps int) {
	const half = 1 << (PrecisionBits - 1)
	o = o[:len(starts)*3]
	for i := range starts {
		start := int(starts[i])
		n := int(counts[i])
		k := coeffs[i*taps : i*taps+n]
		px := src[start*3 : start*3+n*3]
		var sr, sg, sb int32 = half, half, half
		for len(k) >= 2 && len(px) >= 6 {
			c0, c1 := k[0], k[1]
			sr += int32(px[0])*c0 + int32(px[3])*c1
			sg += int32(px[1])*c0 + int32(px[4])*c1
			sb += int32(px[2])*c0 + int32(px[5])*c1
			k, px = k[2:], px[6:]
		}
		if len(k) == 1 && len(px) >= 3 {
			c := k[0]
			sr += int32(px[0]) * c
			sg += int32(px[1]) * c
			sb += int32(px[2]) * c
		}
		q := o[i*3 : i*3+3]
		q[0] = clip8(sr)
		q[1] = clip8(sg)
		q[2] = clip8(sb)
	}
}

// horizontalRows2 is horizontalRow on two rows at once, each multiply
// serving both rows: a sample of row a in the low 32 bits of a uint64 and
// the same sample of row b in the high 32 bits. Every partial sum is below
// 2^31 (weights are non-negative and sum to about 1<<22, samples are below
// 256), so the lanes never carry into each other.
func horizontalRows2(oa, ob []uint8, a, b []uint8, starts, counts, coeffs []int32, taps int) {
	const half = 1<<(PrecisionBits-1) | 1<<(PrecisionBits-1)<<32
	oa = oa[:len(starts)*3]
	ob = ob[:len(starts)*3]
	for i := range starts {
		start := int(starts[i])
		n := int(counts[i])
		k := coeffs[i*taps : i*taps+n]
		// The slicing checks the window once; the loop reads within it.
		pa := a[start*3 : start*3+n*3]
		pb := b[start*3 : start*3+n*3]
		var sr, sg, sb uint64 = half, half, half
		if n > 0 {
			ua := unsafe.Pointer(&pa[0])
			ub := unsafe.Pointer(&pb[0])
			for j, c32 := range k {
				c := uint64(c32)
				qa := (*[3]uint8)(unsafe.Add(ua, j*3))
				qb := (*[3]uint8)(unsafe.Add(ub, j*3))
				sr += (uint64(qa[0]) | uint64(qb[0])<<32) * c
				sg += (uint64(qa[1]) | uint64(qb[1])<<32) * c
				sb += (uint64(qa[2]) | uint64(qb[2])<<32) * c
			}
		}
		q := (*[3]uint8)(oa[i*3 : i*3+3])
		q[0] = clipLane(sr)
		q[1] = clipLane(sg)
		q[2] = clipLane(sb)
		q = (*[3]uint8)(ob[i*3 : i*3+3])
		q[0] = clipLane(sr >> 32)
		q[1] = clipLane(sg >> 32)
		q[2] = clipLane(sb >> 32)
	}
}

// clipLane is clip8 for the low 32-bit lane of a non-negative sum.
func clipLane(v uint64) uint8 {
	x := uint32(v) >> PrecisionBits
	if x > 255 {
		return 255
	}
	return uint8(x)
}

// verticalRow computes one output row from the horizontally resampled rows
// [start, start+len(k)) of between: PIL's ImagingResampleVertical_8bpc.
func verticalRow(res []uint8, acc []uint64, between []uint8, start, rowLen int, k []int32) {
	if useAVX2 && rowLen >= 8 && len(k) > 0 {
		n := rowLen &^ 7
		rows := between[start*rowLen : (start+len(k))*rowLen] // bounds check for the kernel
		resample.VerticalAVX2(&res[0], &rows[0], rowLen, &k[0], len(k), n)
		if n == rowLen {
			return
		}
		// The last rowLen%8 samples, in Go.
		const half = 1 << (PrecisionBits - 1)
		for x := n; x < rowLen; x++ {
			var sum int32 = half
			for j, c := range k {
				sum += int32(rows[j*rowLen+x]) * c
			}
			res[x] = clip8(sum)
		}
		return
	}
	verticalRowGo(res, acc, between, start, rowLen, k)
}

// verticalRowGo is verticalRow in pure Go.
func verticalRowGo(res []uint8, acc []uint64, between []uint8, start, rowLen int, k []int32) {
	// Two neighbouring samples share each multiply, in 32-bit lanes (see
	// horizontalRows2); an odd rowLen (odd Crop) leaves one sample, done alone.
	const half = 1<<(PrecisionBits-1) | 1<<(PrecisionBits-1)<<32
	pairs := rowLen / 2
	acc = acc[:pairs]
	res = res[:rowLen]
	for x := range acc {
		acc[x] = half
	}
	oddAcc := uint64(half)
	j := 0
	for ; j+2 <= len(k); j += 2 { // two input rows per pass over acc
		c0, c1 := uint64(k[j]), uint64(k[j+1])
		a := between[(start+j)*rowLen : (start+j+1)*rowLen]
		b := between[(start+j+1)*rowLen : (start+j+2)*rowLen]
		a, b = a[:pairs*2], b[:pairs*2]
		for x := range acc {
			acc[x] += (uint64(a[2*x])|uint64(a[2*x+1])<<32)*c0 + (uint64(b[2*x])|uint64(b[2*x+1])<<32)*c1
		}
		if rowLen%2 == 1 {
			oddAcc += uint64(between[(start+j+1)*rowLen-1])*c0 + uint64(between[(start+j+2)*rowLen-1])*c1
		}
	}
	if j < len(k) {
		c := uint64(k[j])
		a := between[(start+j)*rowLen : (start+j+1)*rowLen]
		a = a[:pairs*2]
		for x := range acc {
			acc[x] += (uint64(a[2*x]) | uint64(a[2*x+1])<<32) * c
		}
		if rowLen%2 == 1 {
			oddAcc += uint64(between[(start+j+1)*rowLen-1]) * c
		}
	}
	for x, v := range acc {
		res[2*x] = clipLane(v)
		res[2*x+1] = clipLane(v >> 32)
	}
	if rowLen%2 == 1 {
		res[rowLen-1] = clipLane(oddAcc)
	}
}

// writeRow stores output row y (Crop resized RGB pixels) in dst.
func writeRow(dst []byte, res []uint8, y int, s Spec, out *outputTable) {
	crop := s.Crop
	plane := crop * crop
	switch out.dtype {
	case preprocess.Float32:
		if s.Layout == NCHW {
			for c := 0; c < 3; c++ {
				tab := &out.f32[c]
				d := dst[(c*plane+y*crop)*4 : (c*plane+(y+1)*crop)*4]
				for x := 0; x < crop; x++ {
					binary.LittleEndian.PutUint32(d[x*4:], tab[res[x*3+c]])
				}
			}
			return
		}
		d := dst[y*crop*12 : (y+1)*crop*12]
		for x := 0; x < crop*3; x++ {
			binary.LittleEndian.PutUint32(d[x*4:], out.f32[x%3][res[x]])
		}
	case preprocess.Float16, preprocess.BFloat16:
		if s.Layout == NCHW {
			for c := 0; c < 3; c++ {
				tab := &out.f16[c]
				d := dst[(c*plane+y*crop)*2 : (c*plane+(y+1)*crop)*2]
				for x := 0; x < crop; x++ {
					binary.LittleEndian.PutUint16(d[x*2:], tab[res[x*3+c]])
				}
			}
			return
		}
		d := dst[y*crop*6 : (y+1)*crop*6]
		for x := 0; x < crop*3; x++ {
			binary.LittleEndian.PutUint16(d[x*2:], out.f16[x%3][res[x]])
		}
	case preprocess.Uint8:
		if s.Layout == NCHW {
			for c := 0; c < 3; c++ {
				d := dst[c*plane+y*crop : c*plane+(y+1)*crop]
				for x := range d {
					d[x] = res[x*3+c]
				}
			}
			return
		}
		copy(dst[y*crop*3:(y+1)*crop*3], res)
	}
}

// rowBytes is the size of one output row of the tensor.
func rowBytes(s Spec) int { return 3 * s.Crop * s.Crop * s.DType.Size() }

// checkRGB validates a decoded image before it is transformed.
func checkRGB(img *RGB) error {
	if img == nil || img.Width <= 0 || img.Height <= 0 {
		return preprocess.BadInput("image has no pixels")
	}
	if len(img.Pix) < img.Width*img.Height*3 {
		return fmt.Errorf("image: RGB buffer holds %d bytes, want %d for %dx%d", len(img.Pix), img.Width*img.Height*3, img.Width, img.Height)
	}
	return nil
}

func growU8(s []uint8, n int) []uint8 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]uint8, n)
}
