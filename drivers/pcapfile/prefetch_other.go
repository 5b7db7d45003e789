//go:build !amd64

package pcapfile

// prefetchLines is a no-op where no prefetch instruction is wired up.
func prefetchLines(p *byte, n int) {}
