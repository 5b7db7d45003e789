//go:build !linux

package afpacket

import (
	"fmt"

	"github.com/mira-project/mira/drivers"
)

// Source is a live capture source; on this platform it cannot be opened.
type Source struct{}

// Open returns an error wrapping drivers.ErrUnsupported: AF_PACKET exists
// only on Linux.
func Open(iface string, cfg *Config) (*Source, error) {
	return nil, fmt.Errorf("afpacket: open %s: %w", iface, drivers.ErrUnsupported)
}

// Next returns ErrClosed.
func (s *Source) Next() ([]byte, drivers.CaptureInfo, error) {
	return nil, drivers.CaptureInfo{}, ErrClosed
}

// Interfaces returns nil.
func (s *Source) Interfaces() []drivers.Interface { return nil }

// Stats returns zero counters.
func (s *Source) Stats() drivers.Stats { return drivers.Stats{} }

// Close does nothing.
func (s *Source) Close() error { return nil }

var _ drivers.Source = (*Source)(nil)

// OpenFanout returns an error wrapping drivers.ErrUnsupported.
func OpenFanout(iface string, n int, mode FanoutMode, cfg *Config) ([]*Source, error) {
	return nil, fmt.Errorf("afpacket: open %s: %w", iface, drivers.ErrUnsupported)
}

// NextBatch returns ErrClosed.
func (s *Source) NextBatch(frames [][]byte, cis []drivers.CaptureInfo) (int, error) {
	return 0, ErrClosed
}

// Backlog returns zeros.
func (s *Source) Backlog() (used, total int) { return 0, 0 }
