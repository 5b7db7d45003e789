package pcapfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps a regular, non-empty file read-only, or returns nil when it
// cannot (the caller then reads it with read(2)). Mapping saves the
// kernel-to-user copy of every packet.
func mapFile(f *os.File) []byte {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() < 24 || st.Size() > 1<<40 {
		return nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	unix.Madvise(b, unix.MADV_SEQUENTIAL)
	return b
}

func unmapFile(b []byte) error { return unix.Munmap(b) }
