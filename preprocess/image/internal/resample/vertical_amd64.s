//go:build !purego

#include "textflag.h"

// half is 1<<(PrecisionBits-1), the rounding bias of PIL's fixed point.
DATA half<>+0(SB)/4, $0x200000
GLOBL half<>(SB), RODATA|NOPTR, $4

// func VerticalAVX2(res *uint8, src *uint8, stride int, k *int32, nk int, n int)
//
// For x in [0, n) (n a multiple of 8):
//   res[x] = clip8((half + sum_j src[j*stride+x]*k[j]) >> 22)
// eight samples at a time in 32-bit lanes: products stay below 2^30 and sums
// below 2^31, so VPMULLD/VPADDD are exact; the two saturating packs clamp
// to 0..255 as clip8 does.
TEXT ·VerticalAVX2(SB), NOSPLIT, $0-48
	MOVQ res+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ stride+16(FP), DX
	MOVQ k+24(FP), R8
	MOVQ nk+32(FP), R9
	MOVQ n+40(FP), CX
	VPBROADCASTD half<>(SB), Y15
	XORQ BX, BX

loopx:
	CMPQ BX, CX
	JGE  done
	VMOVDQU Y15, Y0
	LEAQ (SI)(BX*1), R10
	MOVQ R8, R11
	MOVQ R9, R12

loopj:
	TESTQ R12, R12
	JEQ   store
	VPMOVZXBD    (R10), Y1
	VPBROADCASTD (R11), Y2
	VPMULLD      Y2, Y1, Y1
	VPADDD       Y1, Y0, Y0
	ADDQ         DX, R10
	ADDQ         $4, R11
	DECQ         R12
	JMP          loopj

store:
	VPSRAD       $22, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPACKUSDW    X1, X0, X0
	VPACKUSWB    X0, X0, X0
	MOVQ         X0, (DI)(BX*1)
	ADDQ         $8, BX
	JMP          loopx

done:
	VZEROUPPER
	RET
