#include "go_asm.h"
#include "textflag.h"

// func teddyAVX2(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)
//
// Tests the 3-byte gram at every position i, i+1, ... against two sets of
// six nibble tables (Teddy, 16 buckets): a position is a candidate if some
// bucket bit survives lo0[p[i]&15] & hi0[p[i]>>4] & lo1[p[i+1]&15] & ...
// & hi2[p[i+2]>>4] in either set. 32 positions per iteration while
// i+34 <= n and out has room for 32.
TEXT ·teddyAVX2(SB), NOSPLIT, $0-56
	MOVQ t+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ out+32(FP), DI
	XORQ BX, BX
	VMOVDQU 0(AX), Y0
	VMOVDQU 32(AX), Y1
	VMOVDQU 64(AX), Y2
	VMOVDQU 96(AX), Y3
	VMOVDQU 128(AX), Y4
	VMOVDQU 160(AX), Y5
	VMOVDQU 192(AX), Y15
	SUBQ $34, DX // loop while i <= n-34

loop:
	CMPQ CX, DX
	JGT done
	CMPQ BX, $(const_simdOut-32)
	JGT done
	// nibbles of the three bytes: Y6/Y7, Y8/Y9, Y10/Y11 (low/high)
	VMOVDQU (SI)(CX*1), Y6
	VPSRLW $4, Y6, Y7
	VPAND Y15, Y6, Y6
	VPAND Y15, Y7, Y7
	VMOVDQU 1(SI)(CX*1), Y8
	VPSRLW $4, Y8, Y9
	VPAND Y15, Y8, Y8
	VPAND Y15, Y9, Y9
	VMOVDQU 2(SI)(CX*1), Y10
	VPSRLW $4, Y10, Y11
	VPAND Y15, Y10, Y10
	VPAND Y15, Y11, Y11
	// set A (buckets 0-7) in Y12
	VPSHUFB Y6, Y0, Y12
	VPSHUFB Y7, Y1, Y13
	VPAND Y13, Y12, Y12
	VPSHUFB Y8, Y2, Y13
	VPAND Y13, Y12, Y12
	VPSHUFB Y9, Y3, Y13
	VPAND Y13, Y12, Y12
	VPSHUFB Y10, Y4, Y13
	VPAND Y13, Y12, Y12
	VPSHUFB Y11, Y5, Y13
	VPAND Y13, Y12, Y12
	// set B (buckets 8-15) in Y13, its tables from memory
	VMOVDQU 224(AX), Y13
	VPSHUFB Y6, Y13, Y13
	VMOVDQU 256(AX), Y14
	VPSHUFB Y7, Y14, Y14
	VPAND Y14, Y13, Y13
	VMOVDQU 288(AX), Y14
	VPSHUFB Y8, Y14, Y14
	VPAND Y14, Y13, Y13
	VMOVDQU 320(AX), Y14
	VPSHUFB Y9, Y14, Y14
	VPAND Y14, Y13, Y13
	VMOVDQU 352(AX), Y14
	VPSHUFB Y10, Y14, Y14
	VPAND Y14, Y13, Y13
	VMOVDQU 384(AX), Y14
	VPSHUFB Y11, Y14, Y14
	VPAND Y14, Y13, Y13
	VPOR Y13, Y12, Y12
	VPXOR Y14, Y14, Y14
	VPCMPEQB Y14, Y12, Y12
	VPMOVMSKB Y12, R9
	NOTL R9
	TESTL R9, R9
	JZ next

bits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ bits

next:
	ADDQ $32, CX
	JMP loop

done:
	VZEROUPPER
	MOVQ CX, next+40(FP)
	MOVQ BX, cnt+48(FP)
	RET

// func firstAVX2(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)
//
// Lists the positions q in i, i+1, ... whose byte is one of four bytes
// set[j] (broadcast) and whose companion byte, at q+dist[j], equals
// cval[j] under cmask[j] (a zero mask: no companion); 32 at a time while
// i+32+max(dist) <= n (the caller passes n less the largest distance) and
// out has room.
TEXT ·firstAVX2(SB), NOSPLIT, $0-56
	MOVQ f+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ out+32(FP), DI
	XORQ BX, BX
	VMOVDQU 0(AX), Y0
	VMOVDQU 32(AX), Y1
	VMOVDQU 64(AX), Y2
	VMOVDQU 96(AX), Y3
	VMOVDQU 128(AX), Y4
	VMOVDQU 160(AX), Y5
	VMOVDQU 192(AX), Y6
	VMOVDQU 224(AX), Y7
	VMOVDQU 256(AX), Y8
	VMOVDQU 288(AX), Y9
	VMOVDQU 320(AX), Y10
	VMOVDQU 352(AX), Y11
	MOVQ 384(AX), R8
	MOVQ 392(AX), R11
	MOVQ 400(AX), R12
	MOVQ 408(AX), R13
	SUBQ $32, DX

floop:
	CMPQ CX, DX
	JGT fdone
	CMPQ BX, $(const_simdOut-32)
	JGT fdone
	MOVQ SI, R10
	ADDQ CX, R10
	VMOVDQU (R10), Y12
	VPCMPEQB Y0, Y12, Y13
	VMOVDQU (R10)(R8*1), Y14
	VPAND Y4, Y14, Y14
	VPCMPEQB Y8, Y14, Y14
	VPAND Y14, Y13, Y13
	VPCMPEQB Y1, Y12, Y15
	VMOVDQU (R10)(R11*1), Y14
	VPAND Y5, Y14, Y14
	VPCMPEQB Y9, Y14, Y14
	VPAND Y14, Y15, Y15
	VPOR Y15, Y13, Y13
	VPCMPEQB Y2, Y12, Y15
	VMOVDQU (R10)(R12*1), Y14
	VPAND Y6, Y14, Y14
	VPCMPEQB Y10, Y14, Y14
	VPAND Y14, Y15, Y15
	VPOR Y15, Y13, Y13
	VPCMPEQB Y3, Y12, Y15
	VMOVDQU (R10)(R13*1), Y14
	VPAND Y7, Y14, Y14
	VPCMPEQB Y11, Y14, Y14
	VPAND Y14, Y15, Y15
	VPOR Y15, Y13, Y13
	VPMOVMSKB Y13, R9
	TESTL R9, R9
	JZ fnext

fbits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ fbits

fnext:
	ADDQ $32, CX
	JMP floop

fdone:
	VZEROUPPER
	MOVQ CX, next+40(FP)
	MOVQ BX, cnt+48(FP)
	RET

// TEDDY64 leaves in R9 the candidate mask of the 64 positions from
// SI+blk (the tables in Z0-Z12, see teddyAVX512).
#define TEDDY64(blk) \
	VMOVDQU8 (SI)(blk*1), Z13; \
	VPSRLW $4, Z13, Z14; \
	VPANDD Z12, Z13, Z13; \
	VPANDD Z12, Z14, Z14; \
	VPSHUFB Z13, Z0, Z16; \
	VPSHUFB Z14, Z1, Z17; \
	VPSHUFB Z13, Z6, Z18; \
	VPSHUFB Z14, Z7, Z19; \
	VPANDD Z17, Z16, Z16; \
	VPANDD Z19, Z18, Z18; \
	VMOVDQU8 1(SI)(blk*1), Z13; \
	VPSRLW $4, Z13, Z14; \
	VPANDD Z12, Z13, Z13; \
	VPANDD Z12, Z14, Z14; \
	VPSHUFB Z13, Z2, Z20; \
	VPSHUFB Z14, Z3, Z21; \
	VPSHUFB Z13, Z8, Z22; \
	VPSHUFB Z14, Z9, Z23; \
	VPANDD Z20, Z16, Z16; \
	VPANDD Z22, Z18, Z18; \
	VPANDD Z21, Z16, Z16; \
	VPANDD Z23, Z18, Z18; \
	VMOVDQU8 2(SI)(blk*1), Z13; \
	VPSRLW $4, Z13, Z14; \
	VPANDD Z12, Z13, Z13; \
	VPANDD Z12, Z14, Z14; \
	VPSHUFB Z13, Z4, Z20; \
	VPSHUFB Z14, Z5, Z21; \
	VPSHUFB Z13, Z10, Z22; \
	VPSHUFB Z14, Z11, Z23; \
	VPANDD Z20, Z16, Z16; \
	VPANDD Z22, Z18, Z18; \
	VPANDD Z21, Z16, Z16; \
	VPANDD Z23, Z18, Z18; \
	VPORD Z18, Z16, Z16; \
	VPTESTMB Z16, Z16, K1; \
	KMOVQ K1, R9

// func teddyAVX512(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)
//
// teddyAVX2 with 64 positions per iteration, every table in a register,
// for n >= 66: while i+66 <= n and out has room for 64; then, if out
// still has room, the positions left up to n-3 in one block ending
// there (overlapping the last, its earlier positions dropped), and next
// is n-2.
TEXT ·teddyAVX512(SB), NOSPLIT, $0-56
	MOVQ t+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ out+32(FP), DI
	XORQ BX, BX
	VBROADCASTI32X4 0(AX), Z0
	VBROADCASTI32X4 32(AX), Z1
	VBROADCASTI32X4 64(AX), Z2
	VBROADCASTI32X4 96(AX), Z3
	VBROADCASTI32X4 128(AX), Z4
	VBROADCASTI32X4 160(AX), Z5
	VBROADCASTI32X4 192(AX), Z12
	VBROADCASTI32X4 224(AX), Z6
	VBROADCASTI32X4 256(AX), Z7
	VBROADCASTI32X4 288(AX), Z8
	VBROADCASTI32X4 320(AX), Z9
	VBROADCASTI32X4 352(AX), Z10
	VBROADCASTI32X4 384(AX), Z11
	SUBQ $66, DX

zloop:
	CMPQ CX, DX
	JGT ztail
	CMPQ BX, $(const_simdOut-64)
	JGT zdone
	TEDDY64(CX)
	TESTQ R9, R9
	JZ znext

zbits:
	TZCNTQ R9, R10
	ADDQ CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRQ R9, R9
	JNZ zbits

znext:
	ADDQ $64, CX
	JMP zloop

ztail:
	// Positions CX..n-3 are left (CX > n-66): the block at n-66 (DX).
	LEAQ 63(DX), R12
	CMPQ CX, R12
	JGT zdone
	TESTQ DX, DX
	JL zdone
	CMPQ BX, $(const_simdOut-64)
	JGT zdone
	TEDDY64(DX)
	MOVQ CX, R13
	SUBQ DX, R13
	MOVQ $-1, R14
	SHLXQ R13, R14, R14
	ANDQ R14, R9
	JZ zend

ztbits:
	TZCNTQ R9, R10
	ADDQ DX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRQ R9, R9
	JNZ ztbits

zend:
	LEAQ 64(DX), CX // n-2

zdone:
	VZEROUPPER
	MOVQ CX, next+40(FP)
	MOVQ BX, cnt+48(FP)
	RET

// func bloomAVX512(b *bloomArgs, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)
//
// scan3's bitmap test at the even positions i, i+2, ..., 16 per iteration
// (grams shuffled out of one 64-byte load, hashed, their words gathered),
// while i+64 <= n and out has room for 16.
TEXT ·bloomAVX512(SB), NOSPLIT, $0-56
	MOVQ b+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ out+32(FP), DI
	XORQ BX, BX
	VMOVDQU64 0(AX), Z20      // gram byte indexes
	VPBROADCASTD 64(AX), Z21  // 0x00FFFFFF
	VPBROADCASTD 68(AX), Z22  // hashMul8
	VPBROADCASTD 72(AX), Z23  // 63
	VPBROADCASTQ 80(AX), Z24  // 1
	MOVQ 88(AX), R8           // the bitmap
	SUBQ $64, DX

bloop:
	CMPQ CX, DX
	JGT bdone
	CMPQ BX, $(const_simdOut-16)
	JGT bdone
	VMOVDQU8 (SI)(CX*1), Z0
	VPERMB Z0, Z20, Z1
	VPANDD Z21, Z1, Z1
	VPMULLD Z22, Z1, Z1
	VPSRLD $20, Z1, Z2
	VPSRLD $14, Z1, Z3
	VPANDD Z23, Z3, Z3
	VPSRLD $8, Z1, Z4
	VPANDD Z23, Z4, Z4
	VEXTRACTI64X4 $1, Z2, Y5
	KXNORB K1, K1, K1
	VPGATHERDQ (R8)(Y2*8), K1, Z6
	KXNORB K2, K2, K2
	VPGATHERDQ (R8)(Y5*8), K2, Z7
	VPMOVZXDQ Y3, Z8
	VEXTRACTI64X4 $1, Z3, Y9
	VPMOVZXDQ Y9, Z9
	VPMOVZXDQ Y4, Z10
	VEXTRACTI64X4 $1, Z4, Y11
	VPMOVZXDQ Y11, Z11
	VPSRLVQ Z8, Z6, Z12
	VPSRLVQ Z10, Z6, Z13
	VPANDQ Z13, Z12, Z12
	VPTESTMQ Z24, Z12, K3
	VPSRLVQ Z9, Z7, Z14
	VPSRLVQ Z11, Z7, Z15
	VPANDQ Z15, Z14, Z14
	VPTESTMQ Z24, Z14, K4
	KMOVB K3, R9
	KMOVB K4, R10
	SHLQ $8, R10
	ORQ R10, R9
	JZ bnext

bbits:
	TZCNTQ R9, R10
	LEAQ (CX)(R10*2), R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRQ R9, R9
	JNZ bbits

bnext:
	ADDQ $32, CX
	JMP bloop

bdone:
	VZEROUPPER
	MOVQ CX, next+40(FP)
	MOVQ BX, cnt+48(FP)
	RET
