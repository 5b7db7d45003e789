package symptom

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// haveSIMD tells whether the vectorised prefilter runs here (AVX2 and
// BMI1); otherwise Scan uses the portable bitmap prefilter.
var haveSIMD = cpu.X86.HasAVX2 && cpu.X86.HasBMI1

// have512 selects the 64-byte Teddy loop (AVX-512 BW).
var have512 = haveSIMD && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasBMI2

// teddyAVX2 lists the candidate positions of the Teddy nibble filter t in
// p[i:n] (see teddyGo), 32 positions at a time while i+34 <= n and out has
// room for 32 more; it returns where it stopped and how many it listed.
//
//go:noescape
func teddyAVX2(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

// firstAVX2 lists the positions in p[i:] whose byte is one of the four
// bytes of f and whose companion byte matches (see firstGo), 32 positions
// at a time while i+32 <= n and out has room for 32 more; n is the
// payload's length less f's largest companion distance.
//
//go:noescape
func firstAVX2(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

// teddyAVX512 is teddyAVX2 with 64 positions per iteration, for n >= 66;
// it also lists the positions left at the end (up to n-3) when out has
// room, and then returns n-2.
//
//go:noescape
func teddyAVX512(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

// teddyScan lists candidate positions from i on, in blocks of 32 or 64
// positions; it stops once out may not hold another block, or when fewer
// than 34 bytes are left from i (AVX2), or with all positions to n-3
// listed and next = n-2 (AVX-512).
func teddyScan(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	if have512 && n >= 66 {
		return teddyAVX512(t, p, n, i, out)
	}
	return teddyAVX2(t, p, n, i, out)
}

func firstScan(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return firstAVX2(f, p, n, i, out)
}

// fdrAVX is fdrGo in assembly (AVX, BMI1).
//
//go:noescape
func fdrAVX(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)

// fdr2AVX is fdrAVX for stride 2.
//
//go:noescape
func fdr2AVX(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)

// fdr2AVX512 is fdr2AVX with AVX-512 (VL, BW): shifts by masked loads,
// 32 positions per iteration.
//
//go:noescape
func fdr2AVX512(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (next, cnt int)

// haveFDR512 selects fdr2AVX512.
var haveFDR512 = have512 && cpu.X86.HasAVX512VL

func fdrScan(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (int, int) {
	if haveSIMD {
		if f.stride == 2 && haveFDR512 {
			return fdr2AVX512(f, p, n, i, st, out)
		}
		if f.stride == 2 {
			return fdr2AVX(f, p, n, i, st, out)
		}
		return fdrAVX(f, p, n, i, st, out)
	}
	return fdrGo(f, p, n, i, st, out)
}
