package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
)

// idleSource is a live source that delivers a few frames, then only
// poll timeouts until it is closed.
type idleSource struct {
	frames [][]byte
	next   int
	closed atomic.Bool
	mu     sync.Mutex
	st     drivers.Stats
}

func (s *idleSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if s.closed.Load() {
		return nil, drivers.CaptureInfo{}, drivers.ErrClosed
	}
	if s.next < len(s.frames) {
		f := s.frames[s.next]
		s.next++
		s.mu.Lock()
		s.st.Packets++
		s.st.Octets += uint64(len(f))
		s.mu.Unlock()
		return f, drivers.CaptureInfo{Timestamp: time.Now().UnixNano(), CaptureLength: len(f), Length: len(f), LinkType: drivers.LinkEthernet}, nil
	}
	time.Sleep(10 * time.Millisecond)
	return nil, drivers.CaptureInfo{}, drivers.ErrTimeout
}

func (s *idleSource) Interfaces() []drivers.Interface {
	return []drivers.Interface{{Name: "idle0", LinkType: drivers.LinkEthernet}}
}

func (s *idleSource) Stats() drivers.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *idleSource) Close() error { s.closed.Store(true); return nil }

// TestLiveCountersPublishedWhenIdle: a live source that delivers fewer
// than publishEvery packets and goes quiet must still show them in Stats
// (SNMP miraCapPackets, /metrics) while the capture runs. They were
// published only every 4096 packets, so a lightly loaded probe showed 0.
func TestLiveCountersPublishedWhenIdle(t *testing.T) {
	frame := make([]byte, 60)
	copy(frame[12:], []byte{0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	src := &idleSource{}
	for range 67 {
		src.frames = append(src.frames, frame)
	}
	var recs Records
	p := New(Config{Workers: 2}, recs.Sink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, []drivers.Source{src}, true) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := p.Stats()
		if st.Packets == 67 && len(st.Sources) == 1 && st.Sources[0].Stats.Packets == 67 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the source idles: pipeline packets %d, sources %+v; want 67", st.Packets, st.Sources)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
