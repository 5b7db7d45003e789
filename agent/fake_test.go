package agent

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/synth"
)

// fakeProbe is a test Provider that plays a synthetic trace (the synth
// package's sample, generated in memory: no capture file): Advance
// processes more packets and updates the counters a probe would keep, so
// the values an SNMP manager sees change as the trace proceeds.
type fakeProbe struct {
	mu      sync.Mutex
	pkts    []synthPacket
	next    int
	start   time.Time
	eof     bool
	packets uint64
	octets  uint64
	decErr  [3]uint64 // not-ip, truncated, unknown-link
	flows   map[[5]uint64]bool
	ended   uint64
	http    uint64 // "HTTP/" occurrences
	httpFl  map[[5]uint64]bool
	scanned uint64
	pipe    Pipeline
	exp     []Exporter
	ifIndex int
}

// synthPacket is one frame of the synthetic trace.
type synthPacket struct {
	data []byte
	ci   drivers.CaptureInfo
}

// traceWriter keeps the frames synth.Generate writes.
type traceWriter struct{ pkts []synthPacket }

func (w *traceWriter) WritePacket(ci drivers.CaptureInfo, data []byte) error {
	w.pkts = append(w.pkts, synthPacket{bytes.Clone(data), ci})
	return nil
}

var (
	traceOnce sync.Once
	trace     []synthPacket
	traceErr  error
)

// sampleTrace returns the frames of synth.Default(), generated once per
// test binary.
func sampleTrace(t testing.TB) []synthPacket {
	t.Helper()
	traceOnce.Do(func() {
		var w traceWriter
		_, traceErr = synth.Generate(synth.Default(), &w)
		trace = w.pkts
	})
	if traceErr != nil {
		t.Fatal(traceErr)
	}
	if len(trace) < 2000 {
		t.Fatalf("synthetic trace has %d packets, the tests advance through 2000", len(trace))
	}
	return trace
}

// traceName is the capture interface name the fake probe reports.
const traceName = "synth-sample"

func newFakeProbe(t testing.TB) *fakeProbe {
	t.Helper()
	return &fakeProbe{
		pkts: sampleTrace(t), start: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC),
		flows: map[[5]uint64]bool{}, httpFl: map[[5]uint64]bool{},
		pipe: Pipeline{RegulationState: RegulationNormal, SamplingRate: 1,
			Queues: []Queue{{Name: "decode-0>meter-0", Capacity: 4096}, {Name: "meter-0>export", Capacity: 1024}}},
		exp: []Exporter{
			{Address: "udp://192.0.2.10:4739", Transport: TransportUDP, State: ExporterConnected},
			{Address: "tcp://192.0.2.11:4739", Transport: TransportTCP, State: ExporterConnected},
		},
	}
}

// Advance processes up to n more packets; it reports whether any were read.
func (p *fakeProbe) Advance(t testing.TB, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	read := false
	for i := 0; i < n && !p.eof; i++ {
		if p.next == len(p.pkts) {
			p.eof = true
			break
		}
		data, ci := p.pkts[p.next].data, p.pkts[p.next].ci
		p.next++
		read = true
		p.packets++
		p.octets += uint64(ci.Length)
		pkt := gopacket.NewPacket(data, layers.LinkType(ci.LinkType), gopacket.Lazy)
		nl := pkt.NetworkLayer()
		if nl == nil {
			p.decErr[0]++
			continue
		}
		if pkt.ErrorLayer() != nil {
			p.decErr[1]++
		}
		var key [5]uint64
		key[0] = nl.NetworkFlow().FastHash()
		if tl := pkt.TransportLayer(); tl != nil {
			key[1] = tl.TransportFlow().FastHash()
			pl := tl.LayerPayload()
			p.scanned += uint64(len(pl))
			if c := bytes.Count(pl, []byte("HTTP/")); c > 0 {
				p.http += uint64(c)
				p.httpFl[key] = true
			}
			if tcp, ok := tl.(*layers.TCP); ok && (tcp.FIN || tcp.RST) {
				p.ended++
			}
		}
		p.flows[key] = true
	}
	depth := uint32(p.packets % 4096)
	p.pipe.Queues[0].Depth = depth
	p.pipe.Queues[1].Depth = uint32(len(p.flows) % 1024)
	// Distinct values per column, so a column served from the wrong
	// field shows.
	p.pipe.SelOutOfScope = p.packets / 7
	p.pipe.SelUnsampled = p.packets / 11
	p.pipe.RegulatedOut = p.packets / 13
	p.pipe.RegulationChanges = p.packets / 500
	for i := range p.exp {
		p.exp[i].Dropped = p.ended/3 + uint64(i)
		p.exp[i].Unacknowledged = p.ended/5 + uint64(i)
		p.exp[i].SpoolDropped = p.ended/9 + uint64(i)
	}
	for i := range p.exp {
		if p.exp[i].State == ExporterConnected {
			p.exp[i].Records = p.ended
			p.exp[i].Messages = p.ended / 20
			p.exp[i].Templates = 3 + p.packets/1000
		} else {
			p.exp[i].SpoolDepth = uint32(p.ended)
		}
	}
	return read
}

func (p *fakeProbe) setRegulation(state int, rate uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pipe.RegulationState = state
	p.pipe.SamplingRate = rate
	if state == RegulationSampling {
		p.pipe.OverloadEvents++
	}
}

func (p *fakeProbe) setExporter(i, state int, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exp[i].State = state
	p.exp[i].LastError = lastErr
}

// Snapshot implements Provider.
func (p *fakeProbe) Snapshot(s *Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.Name = "probe-test"
	s.Version = "mira-test-1"
	s.ObservationDomain = 42
	s.StartTime = p.start
	// Reloads as the replay goes on: one applied every 500 packets, one
	// refused every 2000, the last applied at a time after the start.
	s.ReloadsApplied, s.ReloadsRefused = p.packets/500, p.packets/2000
	s.LastReload = time.Time{}
	if s.ReloadsApplied > 0 {
		s.LastReload = p.start.Add(time.Duration(s.ReloadsApplied) * 1500 * time.Millisecond)
	}
	s.Interfaces = append(s.Interfaces[:0], CaptureInterface{
		Name: traceName, IfIndex: 0, LinkType: uint16(drivers.LinkEthernet),
		Packets: p.packets, Octets: p.octets,
	})
	ci := &s.Interfaces[0]
	ci.DecodeErrors = append(ci.DecodeErrors[:0],
		ReasonCount{"not-ip", p.decErr[0]}, ReasonCount{"truncated", p.decErr[1]}, ReasonCount{"unknown-link", p.decErr[2]})
	if p.ifIndex > 0 {
		s.Interfaces = append(s.Interfaces, CaptureInterface{Name: "lo", IfIndex: p.ifIndex, LinkType: 1})
	}
	s.Pipeline = p.pipe
	s.Pipeline.Queues = append([]Queue(nil), p.pipe.Queues...)
	s.Flows = FlowTable{
		Active: uint32(uint64(len(p.flows)) - p.ended%uint64(len(p.flows)+1)), Capacity: 1 << 20,
		Created: uint64(len(p.flows)), ExpiredEnd: p.ended, ExpiredIdle: p.packets / 100,
		ExpiredActive: p.packets / 1000, ExpiredForced: 0, Evicted: 0,
	}
	s.Symptoms = append(s.Symptoms[:0],
		Symptom{ID: 7, Name: "HTTP", Occurrences: p.http, Flows: uint64(len(p.httpFl)), BytesScanned: p.scanned},
		Symptom{ID: 3, Name: "MAIL", Occurrences: 0, Flows: 0, BytesScanned: p.scanned},
	)
	s.Exporters = append(s.Exporters[:0], p.exp...)
}
