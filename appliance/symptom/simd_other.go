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

func fdrScan(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (int, int) {
	return fdrGo(f, p, n, i, st, out)
}

// haveFDR512 is never set here (no AVX-512 FDR loop).
var haveFDR512 = false
