//go:build !purego

package resample

import "golang.org/x/sys/cpu"

// HasAVX2 reports whether VerticalAVX2 may be called. Build with -tags
// purego to leave it false everywhere.
var HasAVX2 = cpu.X86.HasAVX2

// VerticalAVX2 computes, for x in [0, n) with n a multiple of 8,
//
//	res[x] = clamp((1<<21 + sum over j < nk of src[j*stride+x]*k[j]) >> 22, 0, 255)
//
// eight samples at a time. Weights must be non-negative with a sum below
// 2^23 (PIL's 22-bit resampling weights are), which keeps every 32-bit
// lane exact. The caller guarantees the memory ranges.
//
//go:noescape
func VerticalAVX2(res *uint8, src *uint8, stride int, k *int32, nk int, n int)

// Transpose8 writes dst[m*8+r] = src[r*stride+m] for m < n (a multiple
// of 8) and r < 8.
//
//go:noescape
func Transpose8(dst *uint8, src *uint8, stride int, n int)

// HorizontalAVX2 is PIL's horizontal pass on eight rows at once, reading
// the rows transposed by Transpose8 (t[m*8+r] = byte m of row r, m counted
// from the first pixel the plan reads; starts are relative to that pixel)
// and writing output column i, channel c of row r to
// dst[r*dstStride+i*3+c]. Same exactness conditions as VerticalAVX2.
//
//go:noescape
func HorizontalAVX2(dst *uint8, dstStride int, t *uint8, starts *int32, counts *int32, coeffs *int32, taps int, out int)
