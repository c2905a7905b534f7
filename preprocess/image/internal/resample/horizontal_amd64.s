//go:build !purego

#include "textflag.h"

// func Transpose8(dst *uint8, src *uint8, stride int, n int)
//
// For m in [0, n) (n a multiple of 8) and r in [0, 8):
//   dst[m*8+r] = src[r*stride+m]
// eight columns at a time with byte/word/dword unpacks.
TEXT ·Transpose8(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ stride+16(FP), DX
	MOVQ n+24(FP), CX
	LEAQ (DX)(DX*2), R8 // 3*stride
	LEAQ (SI)(DX*4), R9 // row 4
	XORQ BX, BX

tloop:
	CMPQ BX, CX
	JGE  tdone
	LEAQ (SI)(BX*1), R10
	LEAQ (R9)(BX*1), R11
	MOVQ (R10), X0
	MOVQ (R10)(DX*1), X1
	MOVQ (R10)(DX*2), X2
	MOVQ (R10)(R8*1), X3
	MOVQ (R11), X4
	MOVQ (R11)(DX*1), X5
	MOVQ (R11)(DX*2), X6
	MOVQ (R11)(R8*1), X7
	PUNPCKLBW X1, X0 // r0 r1 interleaved
	PUNPCKLBW X3, X2 // r2 r3
	PUNPCKLBW X5, X4 // r4 r5
	PUNPCKLBW X7, X6 // r6 r7
	MOVO      X0, X8
	PUNPCKLWL X2, X0 // m0..3 of r0..r3
	PUNPCKHWL X2, X8 // m4..7 of r0..r3
	MOVO      X4, X9
	PUNPCKLWL X6, X4 // m0..3 of r4..r7
	PUNPCKHWL X6, X9 // m4..7 of r4..r7
	MOVO      X0, X10
	PUNPCKLLQ X4, X0  // m0, m1
	PUNPCKHLQ X4, X10 // m2, m3
	MOVO      X8, X11
	PUNPCKLLQ X9, X8  // m4, m5
	PUNPCKHLQ X9, X11 // m6, m7
	LEAQ      (DI)(BX*8), R12
	MOVOU     X0, (R12)
	MOVOU     X10, 16(R12)
	MOVOU     X8, 32(R12)
	MOVOU     X11, 48(R12)
	ADDQ      $8, BX
	JMP       tloop

tdone:
	RET

// hhalf is 1<<21, the rounding bias, broadcast to eight lanes.
DATA hhalf<>+0(SB)/4, $0x200000
GLOBL hhalf<>(SB), RODATA|NOPTR, $4

// func HorizontalAVX2(dst *uint8, dstStride int, t *uint8, starts *int32, counts *int32, coeffs *int32, taps int, out int)
//
// For eight rows at once, from t laid out by Transpose8 (t[m*8+r] is byte m
// of row r, m counted from the first byte the plan reads), for i in
// [0, out) and channel c in [0, 3):
//   dst[r*dstStride + i*3 + c] = clamp((1<<21 + sum_j t[((starts[i]+j)*3+c)*8+r]*coeffs[i*taps+j]) >> 22)
// with j < counts[i]. starts are relative to the first pixel of t.
TEXT ·HorizontalAVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), DX
	MOVQ t+16(FP), SI
	MOVQ starts+24(FP), R8
	MOVQ counts+32(FP), R9
	MOVQ coeffs+40(FP), R10
	MOVQ taps+48(FP), R11
	MOVQ out+56(FP), CX
	SHLQ $2, R11 // taps in bytes of int32
	VPBROADCASTD hhalf<>(SB), Y15
	XORQ BX, BX  // i

hloopi:
	CMPQ    BX, CX
	JGE     hdone
	MOVLQSX (R8)(BX*4), AX // start
	MOVLQSX (R9)(BX*4), R12 // count
	LEAQ    (AX)(AX*2), AX  // start*3
	SHLQ    $3, AX          // *8
	ADDQ    SI, AX          // &t[start*3*8]: channel 0, tap 0
	MOVQ    BX, R13
	IMULQ   R11, R13
	ADDQ    R10, R13        // &coeffs[i*taps]
	VMOVDQU Y15, Y0         // R
	VMOVDQU Y15, Y1         // G
	VMOVDQU Y15, Y2         // B
	MOVQ    R12, R14

hloopj:
	TESTQ        R14, R14
	JEQ          hstore
	VPBROADCASTD (R13), Y3
	VPMOVZXBD    (AX), Y4
	VPMOVZXBD    8(AX), Y5
	VPMOVZXBD    16(AX), Y6
	VPMULLD      Y3, Y4, Y4
	VPMULLD      Y3, Y5, Y5
	VPMULLD      Y3, Y6, Y6
	VPADDD       Y4, Y0, Y0
	VPADDD       Y5, Y1, Y1
	VPADDD       Y6, Y2, Y2
	ADDQ         $24, AX
	ADDQ         $4, R13
	DECQ         R14
	JMP          hloopj

hstore:
	// Each accumulator holds one channel of eight rows: shift, saturate to
	// bytes, and write byte r to row r.
	VPSRAD       $22, Y0, Y0
	VPSRAD       $22, Y1, Y1
	VPSRAD       $22, Y2, Y2
	VEXTRACTI128 $1, Y0, X4
	VPACKUSDW    X4, X0, X0
	VPACKUSWB    X0, X0, X0
	VEXTRACTI128 $1, Y1, X5
	VPACKUSDW    X5, X1, X1
	VPACKUSWB    X1, X1, X1
	VEXTRACTI128 $1, Y2, X6
	VPACKUSDW    X6, X2, X2
	VPACKUSWB    X2, X2, X2
	MOVQ         X0, R12
	MOVQ         X1, R13
	MOVQ         X2, R14
	LEAQ         (BX)(BX*2), AX
	ADDQ         DI, AX // &dst[i*3] of row 0
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	SHRQ $8, R12
	SHRQ $8, R13
	SHRQ $8, R14
	ADDQ DX, AX
	MOVB R12, (AX)
	MOVB R13, 1(AX)
	MOVB R14, 2(AX)
	INCQ BX
	JMP  hloopi

hdone:
	VZEROUPPER
	RET
