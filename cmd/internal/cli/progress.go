package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// ProgressTarget is where progress goes: stderr when it is a terminal or
// when forced (--progress), else nowhere (nil). Progress never goes to
// stdout, which carries the command's output (JSON, CSV).
func ProgressTarget(stderr io.Writer, forced bool) io.Writer {
	if forced {
		return stderr
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		return stderr
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Progress is a progress line on a terminal, rewritten in place. A nil
// *Progress (no target) does nothing. It is safe for concurrent use.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	last  time.Time
	width int
	now   func() time.Time
}

// progressInterval is the least time between two updates of the line.
const progressInterval = 250 * time.Millisecond

// NewProgress returns a progress line on w; nil when w is nil.
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		return nil
	}
	p := &Progress{w: w, now: time.Now}
	p.start = p.now()
	return p
}

// Elapsed is the time since the progress line was made.
func (p *Progress) Elapsed() time.Duration {
	if p == nil {
		return 0
	}
	return p.now().Sub(p.start).Round(time.Second)
}

// Update rewrites the line, at most every 250 ms (updates in between are
// dropped).
func (p *Progress) Update(format string, a ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.last.IsZero() && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	p.write(fmt.Sprintf(format, a...))
}

// write puts s on the line, blanking what a longer previous text left.
func (p *Progress) write(s string) {
	pad := p.width - len(s)
	p.width = len(s)
	fmt.Fprintf(p.w, "\r%s", s)
	if pad > 0 {
		fmt.Fprintf(p.w, "%*s", pad, "")
	}
}

// Done writes a last text (when not empty) and ends the line.
func (p *Progress) Done(format string, a ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if format != "" {
		p.write(fmt.Sprintf(format, a...))
	}
	if p.width > 0 {
		fmt.Fprintln(p.w)
	}
	p.width = 0
	p.last = time.Time{}
}

// Phase shows label at once and then the time spent on it, once a
// second, until the returned stop is called (which writes the time taken
// and ends the line); for work that reports no counts of its own.
func (p *Progress) Phase(label string) (stop func()) {
	if p == nil {
		return func() {}
	}
	begin := p.now()
	p.mu.Lock()
	p.write(label + "...")
	p.last = begin
	p.mu.Unlock()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.Update("%s: %s", label, p.now().Sub(begin).Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.Done("%s: done in %s", label, p.now().Sub(begin).Round(100*time.Millisecond))
	}
}
