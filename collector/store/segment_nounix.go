//go:build !unix

package store

import (
	"io"
	"os"
)

// mapFile reads the first n bytes of f (no mmap on this system).
func mapFile(f *os.File, n int) ([]byte, func(), error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, int64(n)), b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}

// syncDir is not needed (or possible) here.
func syncDir(string) error { return nil }
