package synth

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
)

// PacketWriter receives the generated packets in time order. The data
// slice is reused after WritePacket returns.
type PacketWriter interface {
	WritePacket(ci drivers.CaptureInfo, data []byte) error
}

var tunnelKinds = map[string]flow.TunnelType{
	"6in4": flow.Tunnel6in4, "ipip": flow.TunnelIPIP, "gre": flow.TunnelGRE, "vxlan": flow.TunnelVXLAN,
}

// sessionKey is the client/server 5-tuple and VLAN; no two sessions share
// one, so every truth flow has its own key.
type sessionKey struct {
	a, b   netip.Addr
	pa, pb uint16
	proto  uint8
	vlan   uint16
}

type generator struct {
	cfg    Config
	truth  *Truth
	b      *builder
	apps   []string
	cum    []float64 // cumulative mix weights
	used   map[sessionKey]struct{}
	heap   []heapEntry
	nextID int
}

// Generate writes the trace that cfg describes to pw, packet by packet in
// time order, and returns its ground truth. The same Config gives the
// same packets.
func Generate(cfg Config, pw PacketWriter) (*Truth, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &generator{cfg: cfg, b: newBuilder(), used: make(map[sessionKey]struct{}, cfg.Flows+cfg.Flows/16)}
	// Two flows per session, a few more for FTP data connections.
	g.truth = &Truth{Flows: make([]TruthFlow, 0, 2*cfg.Flows+cfg.Flows/16)}
	total := 0.0
	for _, s := range cfg.Mix {
		if s.Weight > 0 {
			total += s.Weight
			g.apps = append(g.apps, s.App)
			g.cum = append(g.cum, total)
		}
	}

	// Session start times, in order; long sessions start early.
	type start struct {
		t int64
		i int
	}
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	starts := make([]start, cfg.Flows)
	t0 := cfg.Start.UnixNano()
	span := max(int64(cfg.Duration), 1)
	for i := range starts {
		w := span
		if i < cfg.LongFlows {
			w = max(span/20, 1)
		}
		starts[i] = start{t0 + r.Int64N(w), i}
	}
	slices.SortFunc(starts, func(a, b start) int {
		if a.t != b.t {
			return int(min(max(a.t-b.t, -1), 1))
		}
		return a.i - b.i
	})

	si := 0
	for {
		for si < len(starts) && (len(g.heap) == 0 || starts[si].t <= g.top()) {
			g.plan(starts[si].i, starts[si].t)
			si++
		}
		if len(g.heap) == 0 {
			break
		}
		s := g.heap[0].s
		p := &s.pkts[s.next]
		frame, octets, inner := g.b.frame(s, p)
		ci := drivers.CaptureInfo{Timestamp: p.t, CaptureLength: len(frame), Length: len(frame), LinkType: drivers.LinkEthernet}
		if err := pw.WritePacket(ci, frame); err != nil {
			return g.truth, fmt.Errorf("synth: write packet %d: %w", g.truth.Packets, err)
		}
		f := &g.truth.Flows[s.truth[p.dir]]
		ts := time.Unix(0, p.t).UTC()
		if f.Packets == 0 {
			f.First = ts
		}
		f.Last = ts
		f.Packets++
		f.Octets += uint64(octets)
		f.InnerOctets += uint64(inner)
		if p.kind == kindTCP {
			f.TCPFlags |= p.flags
		}
		g.truth.Packets++
		g.truth.Octets += uint64(octets)
		g.truth.Payloads.Add(payloadLen(s, p))
		if cfg.Progress != nil && g.truth.Packets%progressEvery == 0 {
			cfg.Progress(si, len(starts), g.truth.Packets)
		}
		s.next++
		if s.next == len(s.pkts) {
			g.pop()
		} else {
			g.heap[0].t = s.pkts[s.next].t
			g.down(0)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(si, len(starts), g.truth.Packets)
	}
	return g.truth, nil
}

// progressEvery is how many packets pass between Config.Progress calls.
const progressEvery = 1 << 16

// WritePcap writes the trace as a nanosecond-resolution Ethernet pcap.
func WritePcap(cfg Config, w io.Writer) (*Truth, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	pw, err := pcapfile.NewWriter(bw, drivers.LinkEthernet, 65535, true)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	t, err := Generate(cfg, pw)
	if err != nil {
		return t, err
	}
	if err := bw.Flush(); err != nil {
		return t, fmt.Errorf("synth: write pcap: %w", err)
	}
	return t, nil
}

// heapEntry caches a session's next packet time so that heap comparisons
// touch no session memory.
type heapEntry struct {
	t  int64
	id int
	s  *session
}

// Heap of sessions by next packet time, then session id.

func (g *generator) top() int64 { return g.heap[0].t }

func (g *generator) less(i, j int) bool {
	a, b := &g.heap[i], &g.heap[j]
	if a.t != b.t {
		return a.t < b.t
	}
	return a.id < b.id
}

func (g *generator) push(s *session) {
	if len(s.pkts) == 0 {
		return
	}
	g.heap = append(g.heap, heapEntry{s.pkts[0].t, s.id, s})
	i := len(g.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !g.less(i, p) {
			break
		}
		g.heap[i], g.heap[p] = g.heap[p], g.heap[i]
		i = p
	}
}

func (g *generator) pop() {
	n := len(g.heap) - 1
	g.heap[0] = g.heap[n]
	g.heap[n] = heapEntry{}
	g.heap = g.heap[:n]
	if n > 0 {
		g.down(0)
	}
}

func (g *generator) down(i int) {
	n := len(g.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && g.less(r, l) {
			m = r
		}
		if !g.less(m, i) {
			return
		}
		g.heap[i], g.heap[m] = g.heap[m], g.heap[i]
		i = m
	}
}
