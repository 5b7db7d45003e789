//go:build amd64 || arm64 || ppc64le

package symptom

import "unsafe"

// load64 reads 8 bytes at base+i as a little-endian uint64. The caller
// guarantees the bytes are in bounds; these targets are little-endian and
// allow unaligned loads.
func load64(base unsafe.Pointer, i int) uint64 {
	return *(*uint64)(unsafe.Add(base, i))
}
