//go:build !purego

#include "textflag.h"

// Constants of YCC420AVX2, each broadcast to eight 32-bit lanes. The
// conversion constants fold libjpeg's "x - 128" into the bias:
//   R = Y + ((FR*Cr + KR) >> 16)              FR = FIX(1.40200), KR = 2^15 - 128*FR
//   G = Y + ((NCBG*Cb + NCRG*Cr + KG) >> 16)  NCBG = -FIX(0.34414), NCRG = -FIX(0.71414)
//   B = Y + ((FB*Cb + KB) >> 16)              FB = FIX(1.77200), KB = 2^15 - 128*FB
// which are the integers of jdcolor.c's tables (Cr_r_tab, Cb_g_tab, ...).
DATA yccFR<>+0(SB)/4, $0x166e9
DATA yccFR<>+4(SB)/4, $0x166e9
DATA yccFR<>+8(SB)/4, $0x166e9
DATA yccFR<>+12(SB)/4, $0x166e9
DATA yccFR<>+16(SB)/4, $0x166e9
DATA yccFR<>+20(SB)/4, $0x166e9
DATA yccFR<>+24(SB)/4, $0x166e9
DATA yccFR<>+28(SB)/4, $0x166e9
GLOBL yccFR<>(SB), RODATA|NOPTR, $32

DATA yccKR<>+0(SB)/4, $0xff4d0b80
DATA yccKR<>+4(SB)/4, $0xff4d0b80
DATA yccKR<>+8(SB)/4, $0xff4d0b80
DATA yccKR<>+12(SB)/4, $0xff4d0b80
DATA yccKR<>+16(SB)/4, $0xff4d0b80
DATA yccKR<>+20(SB)/4, $0xff4d0b80
DATA yccKR<>+24(SB)/4, $0xff4d0b80
DATA yccKR<>+28(SB)/4, $0xff4d0b80
GLOBL yccKR<>(SB), RODATA|NOPTR, $32

DATA yccFB<>+0(SB)/4, $0x1c5a2
DATA yccFB<>+4(SB)/4, $0x1c5a2
DATA yccFB<>+8(SB)/4, $0x1c5a2
DATA yccFB<>+12(SB)/4, $0x1c5a2
DATA yccFB<>+16(SB)/4, $0x1c5a2
DATA yccFB<>+20(SB)/4, $0x1c5a2
DATA yccFB<>+24(SB)/4, $0x1c5a2
DATA yccFB<>+28(SB)/4, $0x1c5a2
GLOBL yccFB<>(SB), RODATA|NOPTR, $32

DATA yccKB<>+0(SB)/4, $0xff1daf00
DATA yccKB<>+4(SB)/4, $0xff1daf00
DATA yccKB<>+8(SB)/4, $0xff1daf00
DATA yccKB<>+12(SB)/4, $0xff1daf00
DATA yccKB<>+16(SB)/4, $0xff1daf00
DATA yccKB<>+20(SB)/4, $0xff1daf00
DATA yccKB<>+24(SB)/4, $0xff1daf00
DATA yccKB<>+28(SB)/4, $0xff1daf00
GLOBL yccKB<>(SB), RODATA|NOPTR, $32

DATA yccNCBG<>+0(SB)/4, $0xffffa7e6
DATA yccNCBG<>+4(SB)/4, $0xffffa7e6
DATA yccNCBG<>+8(SB)/4, $0xffffa7e6
DATA yccNCBG<>+12(SB)/4, $0xffffa7e6
DATA yccNCBG<>+16(SB)/4, $0xffffa7e6
DATA yccNCBG<>+20(SB)/4, $0xffffa7e6
DATA yccNCBG<>+24(SB)/4, $0xffffa7e6
DATA yccNCBG<>+28(SB)/4, $0xffffa7e6
GLOBL yccNCBG<>(SB), RODATA|NOPTR, $32

DATA yccNCRG<>+0(SB)/4, $0xffff492e
DATA yccNCRG<>+4(SB)/4, $0xffff492e
DATA yccNCRG<>+8(SB)/4, $0xffff492e
DATA yccNCRG<>+12(SB)/4, $0xffff492e
DATA yccNCRG<>+16(SB)/4, $0xffff492e
DATA yccNCRG<>+20(SB)/4, $0xffff492e
DATA yccNCRG<>+24(SB)/4, $0xffff492e
DATA yccNCRG<>+28(SB)/4, $0xffff492e
GLOBL yccNCRG<>(SB), RODATA|NOPTR, $32

DATA yccKG<>+0(SB)/4, $0x87f600
DATA yccKG<>+4(SB)/4, $0x87f600
DATA yccKG<>+8(SB)/4, $0x87f600
DATA yccKG<>+12(SB)/4, $0x87f600
DATA yccKG<>+16(SB)/4, $0x87f600
DATA yccKG<>+20(SB)/4, $0x87f600
DATA yccKG<>+24(SB)/4, $0x87f600
DATA yccKG<>+28(SB)/4, $0x87f600
GLOBL yccKG<>(SB), RODATA|NOPTR, $32

DATA yccBias8<>+0(SB)/4, $0x8
DATA yccBias8<>+4(SB)/4, $0x8
DATA yccBias8<>+8(SB)/4, $0x8
DATA yccBias8<>+12(SB)/4, $0x8
DATA yccBias8<>+16(SB)/4, $0x8
DATA yccBias8<>+20(SB)/4, $0x8
DATA yccBias8<>+24(SB)/4, $0x8
DATA yccBias8<>+28(SB)/4, $0x8
GLOBL yccBias8<>(SB), RODATA|NOPTR, $32

DATA yccBias7<>+0(SB)/4, $0x7
DATA yccBias7<>+4(SB)/4, $0x7
DATA yccBias7<>+8(SB)/4, $0x7
DATA yccBias7<>+12(SB)/4, $0x7
DATA yccBias7<>+16(SB)/4, $0x7
DATA yccBias7<>+20(SB)/4, $0x7
DATA yccBias7<>+24(SB)/4, $0x7
DATA yccBias7<>+28(SB)/4, $0x7
GLOBL yccBias7<>(SB), RODATA|NOPTR, $32

DATA yccBias1<>+0(SB)/4, $0x1
DATA yccBias1<>+4(SB)/4, $0x1
DATA yccBias1<>+8(SB)/4, $0x1
DATA yccBias1<>+12(SB)/4, $0x1
DATA yccBias1<>+16(SB)/4, $0x1
DATA yccBias1<>+20(SB)/4, $0x1
DATA yccBias1<>+24(SB)/4, $0x1
DATA yccBias1<>+28(SB)/4, $0x1
GLOBL yccBias1<>(SB), RODATA|NOPTR, $32

DATA yccBias2<>+0(SB)/4, $0x2
DATA yccBias2<>+4(SB)/4, $0x2
DATA yccBias2<>+8(SB)/4, $0x2
DATA yccBias2<>+12(SB)/4, $0x2
DATA yccBias2<>+16(SB)/4, $0x2
DATA yccBias2<>+20(SB)/4, $0x2
DATA yccBias2<>+24(SB)/4, $0x2
DATA yccBias2<>+28(SB)/4, $0x2
GLOBL yccBias2<>(SB), RODATA|NOPTR, $32

DATA yccPerm<>+0(SB)/4, $0
DATA yccPerm<>+4(SB)/4, $4
DATA yccPerm<>+8(SB)/4, $1
DATA yccPerm<>+12(SB)/4, $5
DATA yccPerm<>+16(SB)/4, $2
DATA yccPerm<>+20(SB)/4, $6
DATA yccPerm<>+24(SB)/4, $3
DATA yccPerm<>+28(SB)/4, $7
GLOBL yccPerm<>(SB), RODATA|NOPTR, $32

// Byte shuffles that interleave 16 R, 16 G and 16 B bytes into 48 bytes of
// packed RGB: yccShuf<o><c> puts channel c's bytes in output block o.
DATA yccShuf0R<>+0(SB)/8, $0x8002808001808000
DATA yccShuf0R<>+8(SB)/8, $0x0580800480800380
GLOBL yccShuf0R<>(SB), RODATA|NOPTR, $16
DATA yccShuf0G<>+0(SB)/8, $0x0280800180800080
DATA yccShuf0G<>+8(SB)/8, $0x8080048080038080
GLOBL yccShuf0G<>(SB), RODATA|NOPTR, $16
DATA yccShuf0B<>+0(SB)/8, $0x8080018080008080
DATA yccShuf0B<>+8(SB)/8, $0x8004808003808002
GLOBL yccShuf0B<>(SB), RODATA|NOPTR, $16
DATA yccShuf1R<>+0(SB)/8, $0x8080078080068080
DATA yccShuf1R<>+8(SB)/8, $0x800a808009808008
GLOBL yccShuf1R<>(SB), RODATA|NOPTR, $16
DATA yccShuf1G<>+0(SB)/8, $0x8007808006808005
DATA yccShuf1G<>+8(SB)/8, $0x0a80800980800880
GLOBL yccShuf1G<>(SB), RODATA|NOPTR, $16
DATA yccShuf1B<>+0(SB)/8, $0x0780800680800580
DATA yccShuf1B<>+8(SB)/8, $0x8080098080088080
GLOBL yccShuf1B<>(SB), RODATA|NOPTR, $16
DATA yccShuf2R<>+0(SB)/8, $0x0d80800c80800b80
DATA yccShuf2R<>+8(SB)/8, $0x80800f80800e8080
GLOBL yccShuf2R<>(SB), RODATA|NOPTR, $16
DATA yccShuf2G<>+0(SB)/8, $0x80800c80800b8080
DATA yccShuf2G<>+8(SB)/8, $0x800f80800e80800d
GLOBL yccShuf2G<>(SB), RODATA|NOPTR, $16
DATA yccShuf2B<>+0(SB)/8, $0x800c80800b80800a
DATA yccShuf2B<>+8(SB)/8, $0x0f80800e80800d80
GLOBL yccShuf2B<>(SB), RODATA|NOPTR, $16

// chroma420 upsamples eight chroma columns of one plane into sixteen output
// columns: near and far are the chroma rows above and below the output
// row's position (libjpeg-turbo's h2v2 fancy upsampling, jdsample.c):
//   s[k]       = 3*near[k] + far[k]
//   out[2k]    = (3*s[k] + s[k-1] + 8) >> 4
//   out[2k+1]  = (3*s[k] + s[k+1] + 7) >> 4
// leaving columns 0-7 in LO and 8-15 in HI (32-bit lanes). Clobbers Y0-Y7.
#define chroma420(near, far, LO, HI) \
	VPMOVZXBD -1(near), Y0 \
	VPMOVZXBD (near), Y1 \
	VPMOVZXBD 1(near), Y2 \
	VPMOVZXBD -1(far), Y3 \
	VPMOVZXBD (far), Y4 \
	VPMOVZXBD 1(far), Y5 \
	VPSLLD    $1, Y0, Y6 \
	VPADDD    Y6, Y0, Y0 \
	VPADDD    Y3, Y0, Y0 \
	VPSLLD    $1, Y1, Y6 \
	VPADDD    Y6, Y1, Y1 \
	VPADDD    Y4, Y1, Y1 \
	VPSLLD    $1, Y2, Y6 \
	VPADDD    Y6, Y2, Y2 \
	VPADDD    Y5, Y2, Y2 \
	VPSLLD    $1, Y1, Y6 \
	VPADDD    Y6, Y1, Y1 \
	VPADDD    Y1, Y0, Y0 \
	VPADDD    yccBias8<>(SB), Y0, Y0 \
	VPSRLD    $4, Y0, Y0 \
	VPADDD    Y1, Y2, Y2 \
	VPADDD    yccBias7<>(SB), Y2, Y2 \
	VPSRLD    $4, Y2, Y2 \
	interleave(LO, HI)

// chroma422 upsamples eight chroma columns of one row into sixteen output
// columns (libjpeg-turbo's h2v1 fancy upsampling):
//   out[2k]    = (3*c[k] + c[k-1] + 1) >> 2
//   out[2k+1]  = (3*c[k] + c[k+1] + 2) >> 2
// leaving columns 0-7 in LO and 8-15 in HI. Clobbers Y0-Y7.
#define chroma422(row, LO, HI) \
	VPMOVZXBD -1(row), Y0 \
	VPMOVZXBD (row), Y1 \
	VPMOVZXBD 1(row), Y2 \
	VPSLLD    $1, Y1, Y6 \
	VPADDD    Y6, Y1, Y1 \
	VPADDD    Y1, Y0, Y0 \
	VPADDD    yccBias1<>(SB), Y0, Y0 \
	VPSRLD    $2, Y0, Y0 \
	VPADDD    Y1, Y2, Y2 \
	VPADDD    yccBias2<>(SB), Y2, Y2 \
	VPSRLD    $2, Y2, Y2 \
	interleave(LO, HI)

// interleave puts the even output columns (Y0) and the odd ones (Y2) in
// order: columns 0-7 in LO, 8-15 in HI. Clobbers Y3 and Y4.
#define interleave(LO, HI) \
	VPUNPCKLDQ Y2, Y0, Y3 \
	VPUNPCKHDQ Y2, Y0, Y4 \
	VPERM2I128 $0x20, Y4, Y3, LO \
	VPERM2I128 $0x31, Y4, Y3, HI

// rgb8 converts eight pixels: Y luma, CB and CR chroma (32-bit lanes) to
// R, G and B (32-bit lanes, not yet clamped). Clobbers Y3 and Y4.
#define rgb8(Y, CB, CR, R, G, B) \
	VPMULLD yccFR<>(SB), CR, R \
	VPADDD  yccKR<>(SB), R, R \
	VPSRAD  $16, R, R \
	VPADDD  Y, R, R \
	VPMULLD yccFB<>(SB), CB, B \
	VPADDD  yccKB<>(SB), B, B \
	VPSRAD  $16, B, B \
	VPADDD  Y, B, B \
	VPMULLD yccNCBG<>(SB), CB, Y3 \
	VPMULLD yccNCRG<>(SB), CR, Y4 \
	VPADDD  Y4, Y3, Y3 \
	VPADDD  yccKG<>(SB), Y3, Y3 \
	VPSRAD  $16, Y3, Y3 \
	VPADDD  Y, Y3, G

// rgb16 converts sixteen pixels whose chroma is in Y8/Y9 (Cb, columns 0-7
// and 8-15) and Y10/Y11 (Cr), with luma read from (y), clamps them to
// 0..255 with the saturating packs (as libjpeg's range_limit clamps) and
// stores them as 48 bytes of packed RGB at (dst). Y14 holds yccPerm.
// Clobbers Y0-Y7, Y12, Y13.
#define rgb16(y, dst) \
	VPMOVZXBD (y), Y12 \
	VPMOVZXBD 8(y), Y13 \
	rgb8(Y12, Y8, Y10, Y0, Y1, Y2) \
	rgb8(Y13, Y9, Y11, Y5, Y6, Y7) \
	VPACKSSDW Y5, Y0, Y0 \
	VPACKSSDW Y6, Y1, Y1 \
	VPACKSSDW Y7, Y2, Y2 \
	VPACKUSWB Y1, Y0, Y0 \
	VPACKUSWB Y2, Y2, Y2 \
	VPERMD    Y0, Y14, Y0 \
	VPERMD    Y2, Y14, Y2 \
	VEXTRACTI128 $1, Y0, X1 \
	VPSHUFB   yccShuf0R<>(SB), X0, X3 \
	VPSHUFB   yccShuf0G<>(SB), X1, X4 \
	VPOR      X4, X3, X3 \
	VPSHUFB   yccShuf0B<>(SB), X2, X4 \
	VPOR      X4, X3, X3 \
	VMOVDQU   X3, (dst) \
	VPSHUFB   yccShuf1R<>(SB), X0, X3 \
	VPSHUFB   yccShuf1G<>(SB), X1, X4 \
	VPOR      X4, X3, X3 \
	VPSHUFB   yccShuf1B<>(SB), X2, X4 \
	VPOR      X4, X3, X3 \
	VMOVDQU   X3, 16(dst) \
	VPSHUFB   yccShuf2R<>(SB), X0, X3 \
	VPSHUFB   yccShuf2G<>(SB), X1, X4 \
	VPOR      X4, X3, X3 \
	VPSHUFB   yccShuf2B<>(SB), X2, X4 \
	VPOR      X4, X3, X3 \
	VMOVDQU   X3, 32(dst)

// func YCC420AVX2(dst *uint8, y *uint8, cbNear, cbFar, crNear, crFar *uint8, n int)
TEXT ·YCC420AVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ y+8(FP), DX
	MOVQ cbNear+16(FP), SI
	MOVQ cbFar+24(FP), R8
	MOVQ crNear+32(FP), R9
	MOVQ crFar+40(FP), R10
	MOVQ n+48(FP), CX
	VMOVDQU yccPerm<>(SB), Y14

loop420:
	TESTQ CX, CX
	JEQ   done420
	chroma420(SI, R8, Y8, Y9)
	chroma420(R9, R10, Y10, Y11)
	rgb16(DX, DI)
	ADDQ $8, SI
	ADDQ $8, R8
	ADDQ $8, R9
	ADDQ $8, R10
	ADDQ $16, DX
	ADDQ $48, DI
	DECQ CX
	JMP  loop420

done420:
	VZEROUPPER
	RET

// func YCC422AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int)
TEXT ·YCC422AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ y+8(FP), DX
	MOVQ cb+16(FP), SI
	MOVQ cr+24(FP), R9
	MOVQ n+32(FP), CX
	VMOVDQU yccPerm<>(SB), Y14

loop422:
	TESTQ CX, CX
	JEQ   done422
	chroma422(SI, Y8, Y9)
	chroma422(R9, Y10, Y11)
	rgb16(DX, DI)
	ADDQ $8, SI
	ADDQ $8, R9
	ADDQ $16, DX
	ADDQ $48, DI
	DECQ CX
	JMP  loop422

done422:
	VZEROUPPER
	RET

// func YCC444AVX2(dst *uint8, y *uint8, cb, cr *uint8, n int)
TEXT ·YCC444AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ y+8(FP), DX
	MOVQ cb+16(FP), SI
	MOVQ cr+24(FP), R9
	MOVQ n+32(FP), CX
	VMOVDQU yccPerm<>(SB), Y14

loop444:
	TESTQ CX, CX
	JEQ   done444
	VPMOVZXBD (SI), Y8
	VPMOVZXBD 8(SI), Y9
	VPMOVZXBD (R9), Y10
	VPMOVZXBD 8(R9), Y11
	rgb16(DX, DI)
	ADDQ $16, SI
	ADDQ $16, R9
	ADDQ $16, DX
	ADDQ $48, DI
	DECQ CX
	JMP  loop444

done444:
	VZEROUPPER
	RET
