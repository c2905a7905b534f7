//go:build !purego

package resample

// YCC420AVX2 converts 16·n pixels of one output row of a 4:2:0 JPEG to
// packed RGB exactly as libjpeg-turbo does by default: h2v2 "fancy"
// upsampling of the chroma (jdsample.c) and the fixed-point YCbCr→RGB
// tables of jdcolor.c, clamped to 0..255. For k in [0, 8n), with
//
//	s[k] = 3*near[k] + far[k]   (for each of Cb and Cr)
//
// output pixel 2k takes chroma (3*s[k] + s[k-1] + 8) >> 4 and pixel 2k+1
// takes (3*s[k] + s[k+1] + 7) >> 4, and luma y[2k], y[2k+1]; it is written
// to dst[6k:6k+6]. near and far are the chroma rows nearer to and farther
// from the output row, each pointer at chroma column 0 of the run:
// near[-1] and near[8n] (likewise far) are read, so the run must start at
// chroma column 1 or later and end before the last one. Call only when
// HasAVX2.
//
//go:noescape
func YCC420AVX2(dst *uint8, y *uint8, cbNear, cbFar, crNear, crFar *uint8, n int)
