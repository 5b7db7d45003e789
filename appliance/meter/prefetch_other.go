//go:build !amd64

package meter

import "unsafe"

// prefetch and prefetch2 are no-ops where no prefetch instruction is
// wired up.
func prefetch(p unsafe.Pointer)  {}
func prefetch2(p unsafe.Pointer) {}
