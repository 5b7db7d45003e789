package atm

import (
	"time"

	"github.com/mira-project/mira/drivers"
)

// Filter selects VCs the way adapter hardware does: a cell matches when
// its VPI and VCI equal the filter's under the masks. A zero mask matches
// any value; use 0xffff (or 0xfff) to match exactly.
type Filter struct {
	VPI, VCI         uint16
	VPIMask, VCIMask uint16
}

// Exact returns a filter that selects exactly one VC.
func Exact(vpi, vci uint16) Filter {
	return Filter{VPI: vpi, VCI: vci, VPIMask: 0xffff, VCIMask: 0xffff}
}

// Match reports whether the filter selects vpi/vci.
func (f Filter) Match(vpi, vci uint16) bool {
	return (vpi^f.VPI)&f.VPIMask == 0 && (vci^f.VCI)&f.VCIMask == 0
}

// Config configures a Processor. The zero value means: UNI headers,
// promiscuous, LLC encapsulation on every VC, reassembly defaults.
type Config struct {
	// NNI says cell headers are NNI (12-bit VPI, no GFC).
	NNI bool
	// Filters select VCs; none means promiscuous.
	Filters []Filter
	// Encap gives the encapsulation of VC-multiplexed VCs; VCs not listed
	// use DefaultEncap.
	Encap        map[VC]Encap
	DefaultEncap Encap
	// FirstCell says each cell is the first cell of its PDU (captures that
	// kept only the first cell, e.g. the Auckland and NLANR traces). Each
	// cell becomes a frame truncated to what the cell holds, with the
	// packet's full length taken from its IP header.
	FirstCell  bool
	Reassembly ReassemblyConfig
}

// Frame is a decapsulated packet with its VC.
type Frame struct {
	// Data is the IP packet or Ethernet frame, aliasing the reassembly
	// buffer or the cell until the next call on the Processor.
	Data []byte
	Link drivers.LinkType
	VC   VC
	// Length is the packet's length on the wire; it exceeds len(Data)
	// for first-cell frames.
	Length    int
	Timestamp int64
	// FirstCell says Data came from a PDU's first cell only.
	FirstCell bool
	UU, CPI   uint8
}

// Stats are a Processor's counters.
type Stats struct {
	Cells        uint64    // cells presented
	ByKind       [7]uint64 // cells by Kind
	HECCorrected uint64    // single-bit header errors corrected
	PDUs         uint64    // AAL5 PDUs that passed their checks
	Frames       uint64    // frames delivered
	FirstCells   uint64    // of Frames, those made from a PDU's first cell only
	Truncated    uint64    // of FirstCells, those the cell could not hold whole
	Octets       uint64    // wire octets of delivered frames
	Drops        Drops     // drops by reason, over all VCs
}

// Processor chains HEC check, VC filtering, AAL5 reassembly and RFC 2684
// decapsulation. It is owned by one goroutine.
type Processor struct {
	cfg       Config
	encapAll  bool // no per-VC encapsulation map: skip the lookup
	r         *Reassembler
	stats     Stats
	nextSweep int64
	sweep     int64
}

// NewProcessor returns a processor; cfg may be nil. The configuration's
// slices and maps are copied.
func NewProcessor(cfg *Config) *Processor {
	p := &Processor{}
	if cfg != nil {
		p.cfg = *cfg
		p.cfg.Filters = append([]Filter(nil), cfg.Filters...)
		if len(cfg.Encap) > 0 {
			p.cfg.Encap = make(map[VC]Encap, len(cfg.Encap))
			for k, v := range cfg.Encap {
				p.cfg.Encap[k] = v
			}
		}
	}
	p.encapAll = len(p.cfg.Encap) == 0
	p.r = NewReassembler(&p.cfg.Reassembly)
	p.sweep = int64(p.cfg.Reassembly.Timeout)
	if p.sweep == 0 {
		p.sweep = int64(10 * time.Second)
	}
	if p.sweep > 0 {
		p.sweep /= 2
	}
	return p
}

// Cell processes a 53-byte cell with its HEC, as it comes off the line.
func (p *Processor) Cell(cell []byte, ts int64) (Frame, bool) {
	p.stats.Cells++
	if len(cell) < CellSize {
		p.stats.Drops[ReasonShortCell]++
		return Frame{}, false
	}
	h, st := CheckHEC(cell)
	switch st {
	case HECCorrected:
		p.stats.HECCorrected++
	case HECBad:
		p.stats.Drops[ReasonHEC]++
		return Frame{}, false
	}
	return p.record(h, cell[5:CellSize], ts)
}

// Record processes a cell without HEC: the header word and the 48-byte
// payload (ERF TYPE_ATM, legacy ATM records, the device ring).
func (p *Processor) Record(h uint32, payload []byte, ts int64) (Frame, bool) {
	p.stats.Cells++
	return p.record(h, payload, ts)
}

func (p *Processor) header(h uint32) Header {
	if p.cfg.NNI {
		return ParseNNI(h)
	}
	return ParseUNI(h)
}

func (p *Processor) record(h uint32, payload []byte, ts int64) (Frame, bool) {
	k := Classify(h)
	p.stats.ByKind[k]++
	if k != KindUser {
		return Frame{}, false
	}
	hd := p.header(h)
	vc := MakeVC(hd.VPI, hd.VCI)
	if !p.selected(hd.VPI, hd.VCI) {
		p.stats.Drops[ReasonFiltered]++
		return Frame{}, false
	}
	if p.sweep > 0 && ts > p.nextSweep {
		if p.nextSweep != 0 {
			p.r.Expire(ts)
		}
		p.nextSweep = ts + p.sweep
	}
	end := hd.PTI&PTIUserEnd != 0
	if p.cfg.FirstCell && !end {
		if len(payload) < PayloadSize {
			p.count(vc, ReasonShortCell)
			return Frame{}, false
		}
		return p.deliver(vc, payload[:PayloadSize], ts, true, Trailer{})
	}
	sdu, tr, ok := p.r.Push(vc, payload, end, ts)
	if !ok {
		return Frame{}, false
	}
	p.stats.PDUs++
	return p.deliver(vc, sdu, ts, false, tr)
}

// PDU processes an AAL5 SDU that the capture device reassembled already
// (ERF TYPE_AAL5, the device's AAL5 mode). wireLen is the length the
// device reports (0: len(sdu)).
func (p *Processor) PDU(vpi, vci uint16, sdu []byte, wireLen int, ts int64) (Frame, bool) {
	vc := MakeVC(vpi, vci)
	if !p.selected(vpi, vci) {
		p.stats.Drops[ReasonFiltered]++
		return Frame{}, false
	}
	p.stats.PDUs++
	f, ok := p.deliver(vc, sdu, ts, false, Trailer{})
	if ok && wireLen > len(sdu) {
		f.Length += wireLen - len(sdu)
	}
	return f, ok
}

func (p *Processor) selected(vpi, vci uint16) bool {
	if len(p.cfg.Filters) == 0 {
		return true
	}
	for _, f := range p.cfg.Filters {
		if f.Match(vpi, vci) {
			return true
		}
	}
	return false
}

func (p *Processor) deliver(vc VC, sdu []byte, ts int64, first bool, tr Trailer) (Frame, bool) {
	e := p.cfg.DefaultEncap
	if !p.encapAll {
		if v, ok := p.cfg.Encap[vc]; ok {
			e = v
		}
	}
	data, link, reason := Decap(sdu, e)
	if reason != ReasonNone {
		p.count(vc, reason)
		return Frame{}, false
	}
	f := Frame{Data: data, Link: link, VC: vc, Length: len(data), Timestamp: ts, FirstCell: first, UU: tr.UU, CPI: tr.CPI}
	if first {
		// The cell holds the packet's beginning and maybe cell padding:
		// keep what belongs to the packet and report its real length.
		n := WireLength(data, link)
		if n < len(data) {
			f.Data = data[:n]
		}
		f.Length = n
		p.stats.FirstCells++
		if n > len(f.Data) {
			p.stats.Truncated++
		}
	}
	p.stats.Frames++
	p.stats.Octets += uint64(f.Length)
	if st := p.r.state(vc); st != nil {
		st.stats.Frames++
	}
	return f, true
}

func (p *Processor) count(vc VC, reason Reason) { p.r.drop(vc, reason) }

// Flush discards partial PDUs at the end of a capture (counted).
func (p *Processor) Flush() { p.r.Flush() }

// Stats returns the processor's counters. Drops adds the drops counted
// before a VC is known (HEC, filter) to the per-VC ones.
func (p *Processor) Stats() Stats {
	s := p.stats
	for i, v := range p.r.total {
		s.Drops[i] += v
	}
	return s
}

// VCStats returns one VC's counters.
func (p *Processor) VCStats(vc VC) VCStats { return p.r.VCStats(vc) }

// EachVC calls fn for every VC seen.
func (p *Processor) EachVC(fn func(VC, VCStats)) { p.r.EachVC(fn) }

// NNI reports whether the processor parses NNI headers.
func (p *Processor) NNI() bool { return p.cfg.NNI }
