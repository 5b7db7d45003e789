package meter

import "unsafe"

// prefetch asks the CPU to bring the cache line at p into its caches;
// prefetch2 the line at p and the next. Unlike a load they never wait.
//
//go:noescape
func prefetch(p unsafe.Pointer)

//go:noescape
func prefetch2(p unsafe.Pointer)
