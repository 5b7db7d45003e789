package pcapfile

// prefetchLines asks the CPU to bring the n bytes at p into its caches,
// one PREFETCHT0 per 64-byte line. Unlike a load it never waits and never
// faults (lines of pages not mapped yet are skipped).
//
//go:noescape
func prefetchLines(p *byte, n int)
