package server

import (
	"testing"

	"github.com/mira-project/mira/collector/store"
)

// TestSegmentSize: retention by size deletes whole segments, so the
// collector sizes them from max_size (a sixteenth, 1 MiB to the store's
// default) and leaves the default without a limit.
func TestSegmentSize(t *testing.T) {
	for _, c := range []struct{ max, want int64 }{
		{0, 0},
		{-5, 0},
		{100 << 20, 100 << 20 / 16},
		{4 << 20, 1 << 20},
		{10 << 30, store.DefaultSegmentSize},
	} {
		if got := segmentSize(c.max); got != c.want {
			t.Errorf("segmentSize(%d) = %d, want %d", c.max, got, c.want)
		}
	}
}
