package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressLine: updates closer than 250 ms are dropped, a shorter
// text blanks what the longer one left, Done ends the line, and a nil
// Progress (no target) does nothing.
func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	p.Update("first %d", 100000)
	now = now.Add(100 * time.Millisecond)
	p.Update("dropped")
	now = now.Add(200 * time.Millisecond)
	p.Update("second")
	p.Done("done %d", 1)
	want := "\rfirst 100000" + "\rsecond" + strings.Repeat(" ", len("first 100000")-len("second")) + "\rdone 1\n"
	if b.String() != want {
		t.Errorf("progress output %q, want %q", b.String(), want)
	}
	var none *Progress = NewProgress(nil)
	none.Update("x")
	none.Done("y")
	none.Phase("z")()
	if ProgressTarget(&b, false) != nil {
		t.Error("progress to a buffer that is not a terminal, without --progress")
	}
	if ProgressTarget(&b, true) == nil {
		t.Error("--progress ignored")
	}
}
