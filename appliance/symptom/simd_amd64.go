package symptom

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// haveSIMD tells whether the vectorised prefilter runs here (AVX2 and
// BMI1); otherwise Scan uses the portable bitmap prefilter.
var haveSIMD = cpu.X86.HasAVX2 && cpu.X86.HasBMI1

// teddyAVX2 lists the candidate positions of the Teddy nibble filter t in
// p[i:n] (see teddyGo), 32 positions at a time while i+34 <= n and out has
// room for 32 more; it returns where it stopped and how many it listed.
//
//go:noescape
func teddyAVX2(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

// firstAVX2 lists the positions in p[i:n] whose byte is one of the four
// bytes of set (see firstGo), 32 positions at a time while i+32 <= n and
// out has room for 32 more.
//
//go:noescape
func firstAVX2(set *[4][32]byte, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

func teddyScan(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return teddyAVX2(t, p, n, i, out)
}

func firstScan(set *[4][32]byte, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return firstAVX2(set, p, n, i, out)
}
