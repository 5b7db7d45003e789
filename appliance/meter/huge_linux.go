package meter

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// adviseHuge asks the kernel to back the 2 MiB-aligned part of the n bytes
// at p with transparent huge pages. The flow index and the entry slab are
// read at random, one cache line per packet, so with 4 KiB pages nearly
// every lookup also misses the TLB. It is only advice: when THP is off or
// the range is too small nothing changes. p must be memory this package
// allocated and keeps alive.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + n) &^ (hugePage - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
