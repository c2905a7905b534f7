package image

import (
	stdimage "image"

	"github.com/stoker-ml/stoker/preprocess/image/internal/resample"
)

// libjpeg-turbo's YCbCr→RGB conversion (jdcolor.c), in 16-bit fixed point:
//
//	R = Y + round(1.40200*(Cr-128))
//	G = Y + ((-0.34414*(Cb-128) - 0.71414*(Cr-128) + 0.5) >> 16)   (fixed point)
//	B = Y + round(1.77200*(Cb-128))
//
// each clamped to 0..255. The tables are built once, as libjpeg builds them.
var (
	crToR [256]int32
	cbToB [256]int32
	crToG [256]int32
	cbToG [256]int32
)

func init() {
	const scaleBits = 16
	const oneHalf = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		crToR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		cbToB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		crToG[i] = -fix(0.71414) * x
		cbToG[i] = -fix(0.34414)*x + oneHalf
	}
}

// rangeLimit clamps v in [-384, 640) to 0..255 by table, as libjpeg's
// range_limit does: rangeLimit[v+384].
var rangeLimit [1024]uint8

func init() {
	for i := range rangeLimit {
		rangeLimit[i] = clamp255(int32(i - 384))
	}
}

// putRGB converts one pixel with libjpeg's tables.
func putRGB(o *[3]uint8, y, cb, cr uint8) {
	Y := int32(y) + 384
	o[0] = rangeLimit[uint32(Y+crToR[cr])&1023]
	o[1] = rangeLimit[uint32(Y+(cbToG[cb]+crToG[cr])>>16)&1023]
	o[2] = rangeLimit[uint32(Y+cbToB[cb])&1023]
}

func clamp255(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// rowScratch holds one row of upsampled chroma and the column sums of the
// 2×2 upsampler.
type rowScratch struct {
	cb, cr     []uint8
	sumB, sumR []int32
}

// subsampling returns the horizontal and vertical chroma subsampling factors.
func subsampling(r stdimage.YCbCrSubsampleRatio) (hs, vs int) {
	switch r {
	case stdimage.YCbCrSubsampleRatio422:
		return 2, 1
	case stdimage.YCbCrSubsampleRatio420:
		return 2, 2
	case stdimage.YCbCrSubsampleRatio440:
		return 1, 2
	case stdimage.YCbCrSubsampleRatio411:
		return 4, 1
	case stdimage.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}

// yccToRGB converts the region [x0,x1)×[y0,y1) of a decoded JPEG to packed
// RGB in dst (stride bytes per row), upsampling chroma as libjpeg-turbo does
// by default ("fancy" triangle upsampling for 2:1 factors, replication
// otherwise) and converting with libjpeg's fixed-point tables.
func yccToRGB(dst []byte, stride int, m *stdimage.YCbCr, x0, y0, x1, y1 int, rs *rowScratch) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	hs, vs := subsampling(m.SubsampleRatio)
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs
	switch {
	case hs == 2 && vs == 2 && cw > 2:
		ycc420ToRGB(dst, stride, m, cw, ch, x0, y0, x1, y1, rs)
		return
	case hs == 2 && vs == 1 && cw > 2:
		ycc422ToRGB(dst, stride, m, cw, x0, y0, x1, y1)
		return
	case hs == 1 && vs == 1:
		ycc444ToRGB(dst, stride, m, x0, y0, x1, y1)
		return
	}
	n := x1 - x0
	rs.cb = growU8(rs.cb, n)
	rs.cr = growU8(rs.cr, n)
	for y := y0; y < y1; y++ {
		upsampleRow(rs.cb, m.Cb, m.CStride, ch, hs, vs, y, x0, x1)
		upsampleRow(rs.cr, m.Cr, m.CStride, ch, hs, vs, y, x0, x1)
		yrow := m.Y[y*m.YStride+x0 : y*m.YStride+x1]
		d := dst[y*stride+x0*3 : y*stride+x1*3]
		cb, cr := rs.cb[:len(yrow)], rs.cr[:len(yrow)]
		for i, yv := range yrow {
			putRGB((*[3]uint8)(d[i*3:i*3+3]), yv, cb[i], cr[i])
		}
	}
}

// upsampleRow writes the chroma samples of image row y, columns [x0,x1),
// into out, for the subsamplings without a path of their own (yccToRGB):
// 4:4:0, upsampled by libjpeg-turbo's h1v2 fancy upsampler (the nearer
// chroma row weighs 3/4 and the farther 1/4, biases 1 and 2, edge rows
// replicated), and the rest (4:1:1, 4:1:0, or 2:1 axes at most two chroma
// samples across) by replication, as libjpeg does.
func upsampleRow(out []uint8, plane []uint8, cstride, ch, hs, vs, y, x0, x1 int) {
	if hs == 1 && vs == 2 {
		// h1v2_fancy_upsample: always fancy.
		r := y >> 1
		nb, bias := r-1, 1
		if y&1 == 1 {
			nb, bias = r+1, 2
		}
		nb = min(max(nb, 0), ch-1)
		a := plane[r*cstride:]
		b := plane[nb*cstride:]
		for x := x0; x < x1; x++ {
			out[x-x0] = uint8((3*int(a[x]) + int(b[x]) + bias) >> 2)
		}
		return
	}
	row := plane[(y/vs)*cstride:]
	for x := x0; x < x1; x++ {
		out[x-x0] = row[x/hs]
	}
}

// ycc420ToRGB is yccToRGB for 4:2:0 (libjpeg's h2v2 fancy upsampling),
// upsampling and converting in one pass: each chroma column gives the
// chroma of two output columns. With AVX2 the interior of each row, in
// groups of eight chroma columns, goes through resample.YCC420AVX2 (the
// same integers); the edges and what is left over take the Go path.
func ycc420ToRGB(dst []byte, stride int, m *stdimage.YCbCr, cw, ch, x0, y0, x1, y1 int, rs *rowScratch) {
	// Chroma columns whose sums are needed: one beyond each side, clamped.
	c0 := max((x0>>1)-1, 0)
	c1 := min(((x1-1)>>1)+1, cw-1)
	rs.sumB = grow32(rs.sumB, cw)
	rs.sumR = grow32(rs.sumR, cw)
	sb, sr := rs.sumB, rs.sumR
	ia, groups := vectorRun(cw, x0, x1)
	ib := ia + 8*groups
	for y := y0; y < y1; y++ {
		r := y >> 1
		nb := r - 1
		if y&1 == 1 {
			nb = r + 1
		}
		nb = min(max(nb, 0), ch-1)
		ab := m.Cb[r*m.CStride : r*m.CStride+cw]
		bb := m.Cb[nb*m.CStride : nb*m.CStride+cw]
		ar := m.Cr[r*m.CStride : r*m.CStride+cw]
		br := m.Cr[nb*m.CStride : nb*m.CStride+cw]
		sum := func(from, to int) { // columns [from, to], clamped to [c0, c1]
			for i := max(from, c0); i <= min(to, c1); i++ {
				sb[i] = 3*int32(ab[i]) + int32(bb[i])
				sr[i] = 3*int32(ar[i]) + int32(br[i])
			}
		}
		yrow := m.Y[y*m.YStride : y*m.YStride+x1]
		d := dst[y*stride : y*stride+x1*3]
		pair := func(x int) { // columns x (even) and x+1, both in [x0, x1)
			i := x >> 1
			l := max(i-1, 0)
			rr := min(i+1, cw-1)
			tb, tr := 3*sb[i], 3*sr[i]
			putRGB((*[3]uint8)(d[x*3:x*3+3]), yrow[x], uint8((tb+sb[l]+8)>>4), uint8((tr+sr[l]+8)>>4))
			putRGB((*[3]uint8)(d[x*3+3:x*3+6]), yrow[x+1], uint8((tb+sb[rr]+7)>>4), uint8((tr+sr[rr]+7)>>4))
		}
		x := x0
		if groups == 0 {
			sum(c0, c1)
		} else {
			sum(c0, ia)
			sum(ib-1, c1)
		}
		if x&1 == 1 { // odd first column: the right half of chroma column x>>1
			i := x >> 1
			j := min(i+1, cw-1)
			putRGB((*[3]uint8)(d[x*3:x*3+3]), yrow[x], uint8((3*sb[i]+sb[j]+7)>>4), uint8((3*sr[i]+sr[j]+7)>>4))
			x++
		}
		if groups > 0 {
			for ; x < 2*ia; x += 2 {
				pair(x)
			}
			resample.YCC420AVX2(&d[x*3], &yrow[x], &ab[ia], &bb[ia], &ar[ia], &br[ia], groups)
			x = 2 * ib
		}
		// Pairs of columns (2i, 2i+1) left to the Go path.
		for ; x+1 < x1; x += 2 {
			pair(x)
		}
		if x < x1 { // even last column
			i := x >> 1
			l := max(i-1, 0)
			putRGB((*[3]uint8)(d[x*3:x*3+3]), yrow[x], uint8((3*sb[i]+sb[l]+8)>>4), uint8((3*sr[i]+sr[l]+8)>>4))
		}
	}
}

// vectorRun is the run of chroma columns [ia, ia+8*groups) that the AVX2
// kernels of horizontally subsampled chroma convert: each column with both
// neighbours inside the plane (cw columns wide) and both of its output
// columns inside [x0, x1). groups is 0 without AVX2.
func vectorRun(cw, x0, x1 int) (ia, groups int) {
	ia = max((x0+1)>>1, 1)
	if useAVX2 {
		groups = max(min(cw-1, x1>>1)-ia, 0) / 8
	}
	return ia, groups
}

// ycc422ToRGB is yccToRGB for 4:2:2 (libjpeg's h2v1 fancy upsampling): the
// nearer chroma sample weighs 3/4, the farther 1/4, with biases 1 and 2.
// With AVX2 the interior of each row goes through resample.YCC422AVX2.
func ycc422ToRGB(dst []byte, stride int, m *stdimage.YCbCr, cw, x0, y0, x1, y1 int) {
	ia, groups := vectorRun(cw, x0, x1)
	ib := ia + 8*groups
	for y := y0; y < y1; y++ {
		cb := m.Cb[y*m.CStride : y*m.CStride+cw]
		cr := m.Cr[y*m.CStride : y*m.CStride+cw]
		yrow := m.Y[y*m.YStride : y*m.YStride+x1]
		d := dst[y*stride : y*stride+x1*3]
		put := func(x int) {
			i, j, bias := x>>1, max((x>>1)-1, 0), int32(1)
			if x&1 == 1 {
				j, bias = min(i+1, cw-1), 2
			}
			putRGB((*[3]uint8)(d[x*3:x*3+3]), yrow[x],
				uint8((3*int32(cb[i])+int32(cb[j])+bias)>>2), uint8((3*int32(cr[i])+int32(cr[j])+bias)>>2))
		}
		x := x0
		if groups > 0 {
			for ; x < 2*ia; x++ {
				put(x)
			}
			resample.YCC422AVX2(&d[x*3], &yrow[x], &cb[ia], &cr[ia], groups)
			x = 2 * ib
		}
		for ; x < x1; x++ {
			put(x)
		}
	}
}

// ycc444ToRGB is yccToRGB for 4:4:4, where nothing is upsampled; with AVX2
// sixteen pixels at a time go through resample.YCC444AVX2.
func ycc444ToRGB(dst []byte, stride int, m *stdimage.YCbCr, x0, y0, x1, y1 int) {
	groups := 0
	if useAVX2 {
		groups = (x1 - x0) / 16
	}
	for y := y0; y < y1; y++ {
		cb := m.Cb[y*m.CStride : y*m.CStride+x1]
		cr := m.Cr[y*m.CStride : y*m.CStride+x1]
		yrow := m.Y[y*m.YStride : y*m.YStride+x1]
		d := dst[y*stride : y*stride+x1*3]
		x := x0
		if groups > 0 {
			resample.YCC444AVX2(&d[x*3], &yrow[x], &cb[x], &cr[x], groups)
			x += 16 * groups
		}
		for ; x < x1; x++ {
			putRGB((*[3]uint8)(d[x*3:x*3+3]), yrow[x], cb[x], cr[x])
		}
	}
}
