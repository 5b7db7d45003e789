package fatm

import "unsafe"

func unsafeBytes(m []uint64) []byte {
	if len(m) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&m[0])), len(m)*8)
}
