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

// YCC422AVX2 is YCC420AVX2 for a 4:2:2 JPEG (one chroma row per output
// row, libjpeg-turbo's h2v1 fancy upsampling): output pixel 2k takes
// chroma (3*c[k] + c[k-1] + 1) >> 2 and pixel 2k+1 (3*c[k] + c[k+1] + 2) >> 2.
// It reads cb[-1] and cb[8n] (likewise cr), with the same conditions.
//
//go:noescape
func YCC422AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int)

// YCC444AVX2 converts 16·n pixels of a 4:4:4 JPEG row to packed RGB with
// libjpeg-turbo's tables: pixel k from y[k], cb[k], cr[k] to dst[3k:3k+3].
//
//go:noescape
func YCC444AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int)
