package symptom

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// haveSIMD tells whether the vectorised prefilter runs here (AVX2 and
// BMI1); otherwise Scan uses the portable bitmap prefilter.
var haveSIMD = cpu.X86.HasAVX2 && cpu.X86.HasBMI1

// haveGather selects the AVX-512 bitmap loop (bloomAVX512: VBMI byte
// shuffle, gathers).
var haveGather = have512 && cpu.X86.HasAVX512VBMI

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

// bloomArgs is bloomAVX512's constants (the layout is the assembly's).
type bloomArgs struct {
	idx   [64]byte // dword k: bytes 2k, 2k+1, 2k+2 (and 2k+3, masked off)
	mask  uint32   // 0x00FFFFFF
	mul   uint32   // hashMul8
	six   uint32   // 63
	_     uint32
	one   uint64
	bloom *[bloomWords]uint64
}

// bloomAVX512 lists the even positions from i on whose 3-gram passes the
// bitmap (scan3's test), 16 at a time while i+64 <= n and out has room.
//
//go:noescape
func bloomAVX512(b *bloomArgs, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (next, cnt int)

func newBloomArgs(bloom *[bloomWords]uint64) *bloomArgs {
	b := &bloomArgs{mask: 0x00FFFFFF, mul: hashMul8, six: 63, one: 1, bloom: bloom}
	for k := range 16 {
		for j := range 4 {
			b.idx[4*k+j] = byte(2*k + j)
		}
	}
	return b
}

func bloomScan(b *bloomArgs, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return bloomAVX512(b, p, n, i, out)
}
