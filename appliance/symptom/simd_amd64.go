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

// firstAVX2 lists the positions in p[i:] whose byte is one of the four
// bytes of f and whose companion byte matches (see firstGo), 32 positions
// at a time while i+32 <= n and out has room for 32 more; n is the
// payload's length less f's largest companion distance.
//
//go:noescape
func firstAVX2(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

func teddyScan(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return teddyAVX2(t, p, n, i, out)
}

func firstScan(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return firstAVX2(f, p, n, i, out)
}
