//go:build !amd64 || purego

package resample

// HasAVX2 is false: this build has no assembly kernels.
const HasAVX2 = false

// VerticalAVX2 is not available in this build.
func VerticalAVX2(res *uint8, src *uint8, stride int, k *int32, nk int, n int) {
	panic("resample: VerticalAVX2 without AVX2")
}

// Transpose8 is not available in this build.
func Transpose8(dst *uint8, src *uint8, stride int, n int) {
	panic("resample: Transpose8 without AVX2")
}

// HorizontalAVX2 is not available in this build.
func HorizontalAVX2(dst *uint8, dstStride int, t *uint8, starts *int32, counts *int32, coeffs *int32, taps int, out int) {
	panic("resample: HorizontalAVX2 without AVX2")
}

// YCC420AVX2 is not available in this build.
func YCC420AVX2(dst *uint8, y *uint8, cbNear, cbFar, crNear, crFar *uint8, n int) {
	panic("resample: YCC420AVX2 without AVX2")
}

// YCC422AVX2 is not available in this build.
func YCC422AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int) {
	panic("resample: YCC422AVX2 without AVX2")
}

// YCC444AVX2 is not available in this build.
func YCC444AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int) {
	panic("resample: YCC444AVX2 without AVX2")
}
