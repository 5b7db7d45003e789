package pipeline

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/synth"
)

// feedSource is a live batch source (one socket of a fanout group) that
// delivers the frames sent on its channel, and poll timeouts meanwhile.
type feedSource struct {
	name   string
	feed   chan []byte
	closed atomic.Bool
	mu     sync.Mutex
	st     drivers.Stats
}

func (s *feedSource) NextBatch(frames [][]byte, cis []drivers.CaptureInfo) (int, error) {
	if s.closed.Load() {
		return 0, drivers.ErrClosed
	}
	n := 0
	timeout := time.After(20 * time.Millisecond)
	for n < len(frames) {
		select {
		case f := <-s.feed:
			frames[n] = f
			cis[n] = drivers.CaptureInfo{Timestamp: time.Now().UnixNano(), CaptureLength: len(f), Length: len(f), LinkType: drivers.LinkEthernet}
			n++
			s.mu.Lock()
			s.st.Packets++
			s.mu.Unlock()
			continue
		case <-timeout:
		}
		break
	}
	if n == 0 {
		return 0, drivers.ErrTimeout
	}
	return n, nil
}

func (s *feedSource) Next() ([]byte, drivers.CaptureInfo, error) {
	panic("feedSource: read in batches")
}

func (s *feedSource) Interfaces() []drivers.Interface {
	return []drivers.Interface{{Name: s.name, LinkType: drivers.LinkEthernet}}
}

func (s *feedSource) Stats() drivers.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *feedSource) Close() error { s.closed.Store(true); return nil }

// udpFrame is an Ethernet/IPv4/UDP frame from 10.0.0.1:sport to 10.0.0.2:53.
func udpFrame(sport uint16) []byte {
	f := make([]byte, 60)
	copy(f[12:], []byte{0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, byte(sport >> 8), byte(sport), 0, 53, 0, 26})
	return f
}

// TestReconfigureLive reconfigures a live pipeline of two run-to-completion
// workers (one per fanout socket) between two halves of its traffic:
// the records of the first half carry the first labeller's aggregate and
// all reach the sink before the caller's between runs, those of the
// second half carry the new one, and every packet is in a record.
func TestReconfigureLive(t *testing.T) {
	srcs := []*feedSource{{name: "eth9", feed: make(chan []byte)}, {name: "eth9", feed: make(chan []byte)}}
	label := func(id uint32) func(*decode.Packet, uint32) uint32 {
		return func(*decode.Packet, uint32) uint32 { return id }
	}
	var recs Records
	cfg := Config{}
	cfg.Meter.Label = label(1)
	cfg.Regulation.Disabled = true
	p := New(cfg, recs.Sink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, []drivers.Source{srcs[0], srcs[1]}, true) }()
	const half = 300
	send := func(from int) {
		for i := from; i < from+half; i++ {
			srcs[i%2].feed <- udpFrame(uint16(1000 + i))
		}
	}
	waitMetered := func(n uint64) {
		deadline := time.Now().Add(10 * time.Second)
		for p.Stats().Meter.Packets < n {
			if time.Now().After(deadline) {
				t.Fatalf("metered %d packets, want %d", p.Stats().Meter.Packets, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	send(0)
	waitMetered(half)
	cut := -1
	p.Reconfigure(Reconfig{Label: label(2)}, func() {
		recs.mu.Lock()
		cut = len(recs.Recs)
		recs.mu.Unlock()
	})
	send(half)
	waitMetered(2 * half)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cut != half {
		t.Fatalf("%d records had reached the sink when the new configuration was announced, want the first %d", cut, half)
	}
	var packets uint64
	for i, r := range recs.Recs {
		packets += r.Packets
		want := uint32(1)
		if i >= cut {
			want = 2
		}
		if r.Aggregate != want {
			t.Fatalf("record %d (source port %d) has aggregate %d, want %d", i, r.Key.Sport, r.Aggregate, want)
		}
	}
	if st := p.Stats(); packets != 2*half || st.Reloads != 1 || len(recs.Recs) != 2*half {
		t.Fatalf("%d records with %d packets, reloads %d; want %d of each and 1 reload", len(recs.Recs), packets, st.Reloads, 2*half)
	}
}

// gatedSource stops after `after` packets until open is closed (a file
// source, read inline).
type gatedSource struct {
	drivers.Source
	after, n int
	reached  chan struct{}
	open     chan struct{}
}

func (g *gatedSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if g.n == g.after {
		close(g.reached)
		<-g.open
	}
	g.n++
	return g.Source.Next()
}

// TestReconfigureInline reconfigures the one-worker file path (read,
// decode and meter on one goroutine, headers metered in batches while
// nothing reads payloads) mid-file, from no labeller and no scanning to
// a labeller: the switch happens at the path's next look (every 4096
// packets), the records before the announcement have no aggregate, those
// after it the new one, and every packet is in a record.
func TestReconfigureInline(t *testing.T) {
	cfg := synth.Large()
	cfg.Flows = 2000
	cfg.Duration = 20 * time.Second
	path := writeTrace(t, cfg, "trace.pcap")
	src, err := pcapfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	g := &gatedSource{Source: src, after: 3 * publishEvery / 2, reached: make(chan struct{}), open: make(chan struct{})}
	var recs Records
	p := New(Config{}, recs.Sink())
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background(), []drivers.Source{g}, false) }()
	<-g.reached
	cut := -1
	reconfigured := make(chan struct{})
	go func() {
		p.Reconfigure(Reconfig{Label: func(*decode.Packet, uint32) uint32 { return 7 }}, func() {
			recs.mu.Lock()
			cut = len(recs.Recs)
			recs.mu.Unlock()
		})
		close(reconfigured)
	}()
	// The worker can only join once it reads on; wait until the
	// reconfiguration is posted, then let the file go.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.swapMu.Lock()
		posted := p.swapCur != nil
		p.swapMu.Unlock()
		if posted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reconfiguration was not posted")
		}
		time.Sleep(time.Millisecond)
	}
	close(g.open)
	<-reconfigured
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	var packets uint64
	for i, r := range recs.Recs {
		packets += r.Packets
		want := uint32(0)
		if i >= cut {
			want = 7
		}
		if r.Aggregate != want {
			t.Fatalf("record %d of %d (announced after %d) has aggregate %d, want %d", i, len(recs.Recs), cut, r.Aggregate, want)
		}
	}
	if cut <= 0 || cut >= len(recs.Recs) || packets != st.Meter.Packets || st.Reloads != 1 {
		t.Fatalf("cut at %d of %d records; records hold %d packets, the meter %d; reloads %d", cut, len(recs.Recs), packets, st.Meter.Packets, st.Reloads)
	}
}

// gatedFile is a capture file's source: frames in order, and after the
// first `gate` of them Next waits until open is closed.
type gatedFile struct {
	frames  [][]byte
	gate    int
	next    int
	reached chan struct{}
	open    chan struct{}
}

func (s *gatedFile) Next() ([]byte, drivers.CaptureInfo, error) {
	if s.next == s.gate {
		close(s.reached)
		<-s.open
	}
	if s.next == len(s.frames) {
		return nil, drivers.CaptureInfo{}, io.EOF
	}
	f := s.frames[s.next]
	s.next++
	return f, drivers.CaptureInfo{Timestamp: int64(s.next) * int64(time.Millisecond), CaptureLength: len(f), Length: len(f), LinkType: drivers.LinkEthernet}, nil
}

func (s *gatedFile) Interfaces() []drivers.Interface {
	return []drivers.Interface{{Name: "file", LinkType: drivers.LinkEthernet}}
}

func (s *gatedFile) Stats() drivers.Stats { return drivers.Stats{} }
func (s *gatedFile) Close() error         { return nil }

// TestReconfigureFileCut reconfigures a file read by two workers while
// the reader waits after its first 300 packets (partly filled batches
// held by the reader, and queued batches not yet metered): every packet
// read before the reload is metered under the old configuration and
// reaches the sink before the caller's between runs, every later one
// under the new, whichever worker it goes to.
func TestReconfigureFileCut(t *testing.T) {
	const n, gate = 1000, 300
	src := &gatedFile{gate: gate, reached: make(chan struct{}), open: make(chan struct{})}
	for i := range n {
		src.frames = append(src.frames, udpFrame(uint16(1000+i)))
	}
	label := func(id uint32) func(*decode.Packet, uint32) uint32 {
		return func(*decode.Packet, uint32) uint32 { return id }
	}
	var recs Records
	cfg := Config{Workers: 2}
	cfg.Meter.Label = label(1)
	cfg.Regulation.Disabled = true
	p := New(cfg, recs.Sink())
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background(), []drivers.Source{src}, false) }()
	<-src.reached
	cut := -1
	reconfigured := make(chan struct{})
	go func() {
		p.Reconfigure(Reconfig{Label: label(2)}, func() {
			recs.mu.Lock()
			cut = len(recs.Recs)
			recs.mu.Unlock()
		})
		close(reconfigured)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Reloads == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reconfiguration did not start")
		}
		time.Sleep(time.Millisecond)
	}
	close(src.open)
	<-reconfigured
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cut != gate {
		agg := map[uint32]int{}
		for _, r := range recs.Recs {
			agg[r.Aggregate]++
		}
		t.Fatalf("%d records had reached the sink when the new configuration was announced, want the first %d (records by aggregate %v)", cut, gate, agg)
	}
	old := 0
	for i, r := range recs.Recs {
		want := uint32(1)
		if i >= cut {
			want = 2
		}
		if r.Aggregate != want {
			t.Fatalf("record %d (source port %d) has aggregate %d, want %d", i, r.Key.Sport, r.Aggregate, want)
		}
		if r.Aggregate == 1 {
			old++
			if r.Key.Sport >= 1000+gate {
				t.Fatalf("record of packet %d, read after the reload, metered under the old configuration", r.Key.Sport-1000)
			}
		}
	}
	if len(recs.Recs) != n || old != gate {
		t.Fatalf("%d records, %d under the old configuration; want %d and %d", len(recs.Recs), old, n, gate)
	}
}
