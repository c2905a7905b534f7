package image

import stdimage "image"

// Lossy WebP is VP8: the Y, U and V planes golang.org/x/image/webp decodes
// are bit-exact (VP8 specifies its integer transforms), but turning them into
// RGB is libwebp's business, and PIL uses libwebp: its "fancy" upsampler
// (upsampling.c) and its limited-range BT.601 conversion in 14-bit fixed
// point (yuv.h). Both are reproduced here.

// webpMultHi is libwebp's MultHi: (v*coeff) >> 8.
func webpMultHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

// webpClip8 is libwebp's VP8Clip8 with YUV_FIX2 = 6.
func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVToRGB(y, u, v uint8) (uint8, uint8, uint8) {
	yy := webpMultHi(int32(y), 19077)
	r := webpClip8(yy + webpMultHi(int32(v), 26149) - 14234)
	g := webpClip8(yy - webpMultHi(int32(u), 6419) - webpMultHi(int32(v), 13320) + 8708)
	b := webpClip8(yy + webpMultHi(int32(u), 33050) - 17685)
	return r, g, b
}

// webpUpsample is libwebp's fancy upsampler for one output sample: near is
// the chroma sample nearest to the output pixel, nearCol the other column of
// the same chroma row, nearRow the same column of the other chroma row and
// diag the remaining one, approximating (9,3,3,1)/16 with libwebp's rounding.
func webpUpsample(near, nearCol, nearRow, diag int32) uint8 {
	avg := near + nearCol + nearRow + diag + 8
	d := (avg + 2*(nearCol+nearRow)) >> 3
	return uint8((d + near) >> 1)
}

// webpToRGB converts the region [x0,x1)×[y0,y1) of a lossy WebP's planes
// as libwebp's RGB output does.
func webpToRGB(dst []byte, stride int, m *stdimage.YCbCr, x0, y0, x1, y1 int, rs *rowScratch) {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	if m.SubsampleRatio != stdimage.YCbCrSubsampleRatio420 {
		yccToRGB(dst, stride, m, x0, y0, x1, y1, rs)
		return
	}
	cw, ch := (w+1)/2, (h+1)/2
	for y := y0; y < y1; y++ {
		// Rows pair up as libwebp emits them: row 0 alone, then (1,2),
		// (3,4), ...; each output row's nearer chroma row is y>>1.
		nr := y >> 1
		fr := nr + 1
		if y&1 == 0 {
			fr = nr - 1
		}
		fr = min(max(fr, 0), ch-1)
		if y == 0 {
			fr = 0
		}
		un := m.Cb[nr*m.CStride:]
		uf := m.Cb[fr*m.CStride:]
		vn := m.Cr[nr*m.CStride:]
		vf := m.Cr[fr*m.CStride:]
		yrow := m.Y[y*m.YStride:]
		d := dst[y*stride:]
		for x := x0; x < x1; x++ {
			var u, v uint8
			nc := x >> 1 // nearer chroma column
			var fc int   // farther chroma column
			if x&1 == 1 {
				fc = nc + 1
			} else {
				fc = nc - 1
			}
			if fc < 0 || fc >= cw {
				// Left edge, and the right edge of an even width: the
				// vertical 3:1 mix of the nearer column only.
				u = uint8((3*int32(un[nc]) + int32(uf[nc]) + 2) >> 2)
				v = uint8((3*int32(vn[nc]) + int32(vf[nc]) + 2) >> 2)
			} else {
				u = webpUpsample(int32(un[nc]), int32(un[fc]), int32(uf[nc]), int32(uf[fc]))
				v = webpUpsample(int32(vn[nc]), int32(vn[fc]), int32(vf[nc]), int32(vf[fc]))
			}
			d[x*3], d[x*3+1], d[x*3+2] = webpYUVToRGB(yrow[x], u, v)
		}
	}
}
