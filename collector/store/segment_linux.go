package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data (not its timestamps) to the disk.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
