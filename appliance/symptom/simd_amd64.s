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

// FDRHALF ORs the reach of the 8 positions at R8+off into X1 (lane j of
// position j's table word shifted up by j bytes); AX is the table, R11
// the flipped domain mask. Clobbers R9, R10, R12, R13, X1-X8.
#define FDRHALF(off) \
	ANDNL (off+0)(R8), R11, R9; \
	ANDNL (off+1)(R8), R11, R10; \
	ANDNL (off+2)(R8), R11, R12; \
	ANDNL (off+3)(R8), R11, R13; \
	VMOVQ (AX)(R9*8), X1; \
	VMOVQ (AX)(R10*8), X2; \
	VMOVQ (AX)(R12*8), X3; \
	VMOVQ (AX)(R13*8), X4; \
	ANDNL (off+4)(R8), R11, R9; \
	ANDNL (off+5)(R8), R11, R10; \
	ANDNL (off+6)(R8), R11, R12; \
	ANDNL (off+7)(R8), R11, R13; \
	VMOVQ (AX)(R9*8), X5; \
	VMOVQ (AX)(R10*8), X6; \
	VMOVQ (AX)(R12*8), X7; \
	VMOVQ (AX)(R13*8), X8; \
	VPSLLDQ $1, X2, X2; \
	VPOR X2, X1, X1; \
	VPSLLDQ $1, X4, X4; \
	VPOR X4, X3, X3; \
	VPSLLDQ $1, X6, X6; \
	VPOR X6, X5, X5; \
	VPSLLDQ $1, X8, X8; \
	VPOR X8, X7, X7; \
	VPSLLDQ $2, X3, X3; \
	VPOR X3, X1, X1; \
	VPSLLDQ $2, X7, X7; \
	VPOR X7, X5, X5; \
	VPSLLDQ $4, X5, X5; \
	VPOR X5, X1, X1

// func fdrAVX(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)
//
// fdrGo: the FDR shift-or over the positions i, i+1, ..., 16 per
// iteration while i+fdrRead <= n and out has room for 16. X0 carries the
// lanes of the next positions (bit set: that bucket cannot end there).
TEXT ·fdrAVX(SB), NOSPLIT, $0-64
	MOVQ f+0(FP), BX
	MOVQ fdrArgs_tab(BX), AX
	MOVL fdrArgs_nmask(BX), R11
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ st+32(FP), R14
	MOVQ out+40(FP), DI
	XORQ BX, BX
	VMOVQ (R14), X0
	VPCMPEQB X14, X14, X14 // all ones
	SUBQ $const_fdrRead, DX

dloop:
	CMPQ CX, DX
	JGT ddone
	CMPQ BX, $(const_fdrOut-16)
	JGT ddone
	LEAQ (SI)(CX*1), R8
	FDRHALF(0)
	VPOR X1, X0, X0
	VMOVDQA X0, X9 // lanes 0-7: positions i..i+7
	VPSRLDQ $8, X0, X0
	FDRHALF(8)
	VPOR X1, X0, X0
	VPUNPCKLQDQ X0, X9, X9 // positions i..i+15
	VPSRLDQ $8, X0, X0
	VPCMPEQB X14, X9, X9
	VPMOVMSKB X9, R9
	XORL $0xFFFF, R9
	JZ dnext

dbits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ dbits

dnext:
	ADDQ $16, CX
	JMP dloop

ddone:
	VMOVQ X0, (R14)
	MOVQ CX, next+48(FP)
	MOVQ BX, cnt+56(FP)
	RET

// FDRHALF2 is FDRHALF for stride 2: the positions R8+off+0, 2, 4, 6.
#define FDRHALF2(off) \
	ANDNL (off+0)(R8), R11, R9; \
	ANDNL (off+2)(R8), R11, R10; \
	ANDNL (off+4)(R8), R11, R12; \
	ANDNL (off+6)(R8), R11, R13; \
	VMOVQ (AX)(R9*8), X1; \
	VMOVQ (AX)(R10*8), X2; \
	VMOVQ (AX)(R12*8), X3; \
	VMOVQ (AX)(R13*8), X4; \
	VPSLLDQ $2, X2, X2; \
	VPOR X2, X1, X1; \
	VPSLLDQ $2, X4, X4; \
	VPOR X4, X3, X3; \
	VPSLLDQ $4, X3, X3; \
	VPOR X3, X1, X1

// func fdr2AVX(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)
//
// fdrAVX with stride 2: only the even positions from i are looked up.
TEXT ·fdr2AVX(SB), NOSPLIT, $0-64
	MOVQ f+0(FP), BX
	MOVQ fdrArgs_tab(BX), AX
	MOVL fdrArgs_nmask(BX), R11
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ st+32(FP), R14
	MOVQ out+40(FP), DI
	XORQ BX, BX
	VMOVQ (R14), X0
	VPCMPEQB X14, X14, X14 // all ones
	SUBQ $const_fdrRead, DX

eloop:
	CMPQ CX, DX
	JGT edone
	CMPQ BX, $(const_fdrOut-16)
	JGT edone
	LEAQ (SI)(CX*1), R8
	FDRHALF2(0)
	VPOR X1, X0, X0
	VMOVDQA X0, X9
	VPSRLDQ $8, X0, X0
	FDRHALF2(8)
	VPOR X1, X0, X0
	VPUNPCKLQDQ X0, X9, X9
	VPSRLDQ $8, X0, X0
	VPCMPEQB X14, X9, X9
	VPMOVMSKB X9, R9
	XORL $0xFFFF, R9
	JZ enext

ebits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ ebits

enext:
	ADDQ $16, CX
	JMP eloop

edone:
	VMOVQ X0, (R14)
	MOVQ CX, next+48(FP)
	MOVQ BX, cnt+56(FP)
	RET

// FDRHALF512 leaves in A the reach of the positions R8+off+0, 2, 4, 6
// (stride 2) alone: lane s+k has lane k of the word of position off+s. A
// word shifted up by s bytes is loaded from s bytes before it and masked
// to bytes s..s+7 (X18-X20; the table is padded), so no shuffle is
// needed. Clobbers R9, R10, R12, R13, X2-X4.
#define FDRHALF512(off, A) \
	ANDNL (off+0)(R8), R11, R9; \
	ANDNL (off+2)(R8), R11, R10; \
	ANDNL (off+4)(R8), R11, R12; \
	ANDNL (off+6)(R8), R11, R13; \
	VMOVQ (AX)(R9*8), A; \
	VPANDQ -2(AX)(R10*8), X18, X2; \
	VPANDQ -4(AX)(R12*8), X19, X3; \
	VPANDQ -6(AX)(R13*8), X20, X4; \
	VPTERNLOGQ $0xFE, X3, X2, A; \
	VPORQ X4, A, A

// FDRBLOCK512 runs the 16 positions at R8+off: K gets the positions where
// some bucket may end. P holds the reach of the block's last 8 positions
// before (lanes 8-15: the lanes of this block's first 8 positions they
// reach); Q gets this block's. Each half's reach is its own, so that no
// dependency runs from block to block: the positions' lanes are the OR of
// their half's low lanes and the half before's high lanes.
#define FDRBLOCK512(off, P, Q, K) \
	FDRHALF512(off, X5); \
	FDRHALF512(off+8, Q); \
	VPUNPCKLQDQ Q, X5, X6; \
	VPUNPCKHQDQ X5, P, X7; \
	VPORQ X7, X6, X6; \
	VPCMPUB $4, X14, X6, K

// func fdr2AVX512(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)
//
// fdr2AVX with AVX-512 (VL, BW): 32 positions per iteration while
// i+35 <= n and out has room for 32, then 16 while i+fdrRead <= n and out
// has room for 16 (the blocks and the stopping point of fdrGo).
TEXT ·fdr2AVX512(SB), NOSPLIT, $0-64
	MOVQ f+0(FP), BX
	MOVQ fdrArgs_tab(BX), AX
	MOVL fdrArgs_nmask(BX), R11
	VMOVDQU64 (fdrArgs_shm+0)(BX), X18
	VMOVDQU64 (fdrArgs_shm+16)(BX), X19
	VMOVDQU64 (fdrArgs_shm+32)(BX), X20
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), DX
	MOVQ i+24(FP), CX
	MOVQ st+32(FP), R14
	MOVQ out+40(FP), DI
	XORQ BX, BX
	VMOVQ (R14), X0
	VPSLLDQ $8, X0, X0 // the carried lanes as the high lanes of a block before
	VPCMPEQB X14, X14, X14 // all ones
	SUBQ $const_fdrRead, DX // n-19

zfloop:
	LEAQ 16(CX), R9
	CMPQ R9, DX
	JGT zfsingle
	CMPQ BX, $(const_fdrOut-32)
	JGT zfsingle
	LEAQ (SI)(CX*1), R8
	FDRBLOCK512(0, X0, X8, K1)
	FDRBLOCK512(16, X8, X0, K2)
	KMOVW K1, R9
	KMOVW K2, R10
	SHLL $16, R10
	ORL R10, R9
	JZ zfnext

zfbits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ zfbits

zfnext:
	ADDQ $32, CX
	JMP zfloop

zfsingle:
	CMPQ CX, DX
	JGT zfdone
	CMPQ BX, $(const_fdrOut-16)
	JGT zfdone
	LEAQ (SI)(CX*1), R8
	FDRBLOCK512(0, X0, X8, K1)
	VMOVDQA64 X8, X0
	KMOVW K1, R9
	TESTL R9, R9
	JZ zsnext

zsbits:
	TZCNTL R9, R10
	ADDL CX, R10
	MOVL R10, (DI)(BX*4)
	INCQ BX
	BLSRL R9, R9
	JNZ zsbits

zsnext:
	ADDQ $16, CX
	JMP zfsingle

zfdone:
	VPSRLDQ $8, X0, X0
	VMOVQ X0, (R14)
	MOVQ CX, next+48(FP)
	MOVQ BX, cnt+56(FP)
	RET
