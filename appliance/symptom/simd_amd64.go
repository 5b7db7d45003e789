package symptom

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// haveSIMD tells whether the vectorised prefilter runs here (AVX2 and
// BMI1); otherwise Scan uses the portable bitmap prefilter.
var haveSIMD = cpu.X86.HasAVX2 && cpu.X86.HasBMI1

// have512 selects the 64-byte Teddy loop (AVX-512 BW).
var have512 = haveSIMD && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

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

// teddyAVX512 is teddyAVX2 with 64 positions per iteration, while
// i+66 <= n and out has room for 64 more.
//
//go:noescape
func teddyAVX512(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

// teddyScan lists candidate positions from i on, in blocks of 32
// positions (64 with AVX-512 while they fit); it stops once fewer than 34
// bytes are left from i or out may not hold another block.
func teddyScan(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	if have512 && i+66 <= n {
		return teddyAVX512(t, p, n, i, out)
	}
	return teddyAVX2(t, p, n, i, out)
}

func firstScan(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return firstAVX2(f, p, n, i, out)
}
