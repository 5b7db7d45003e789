//go:build !(amd64 || arm64 || ppc64le)

package symptom

import (
	"encoding/binary"
	"unsafe"
)

// load64 reads 8 bytes at base+i as a little-endian uint64. The caller
// guarantees the bytes are in bounds.
func load64(base unsafe.Pointer, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(base, i)), 8))
}
