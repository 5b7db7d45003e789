//go:build !linux

package pcapfile

import "os"

func mapFile(*os.File) []byte { return nil }

func unmapFile([]byte) error { return nil }
