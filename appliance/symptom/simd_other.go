//go:build !amd64

package symptom

import "unsafe"

// haveSIMD is false here: Scan uses the portable bitmap prefilter.
var haveSIMD = false

func teddyScan(t *teddyMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return teddyGo(t, p, n, i, out)
}

func firstScan(f *firstMasks, p unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	return firstGo(f, p, n, i, out)
}

// haveGather is false here: scan3 tests the bitmap in Go.
var haveGather = false

// bloomArgs is unused here.
type bloomArgs struct{}

func newBloomArgs(*[bloomWords]uint64) *bloomArgs { return nil }

func bloomScan(*bloomArgs, unsafe.Pointer, int, int, *[simdOut]uint32) (int, int) {
	panic("symptom: no vectorised bitmap loop on this platform")
}
