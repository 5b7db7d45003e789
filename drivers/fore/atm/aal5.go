package atm

import (
	"encoding/binary"
	"time"
)

// VC identifies a virtual circuit: VPI in the high 16 bits, VCI in the low
// 16. It is comparable and cheap as a map key.
type VC uint32

// MakeVC returns the VC for a VPI/VCI pair.
func MakeVC(vpi, vci uint16) VC { return VC(uint32(vpi)<<16 | uint32(vci)) }

// VPI returns the virtual path identifier.
func (v VC) VPI() uint16 { return uint16(v >> 16) }

// VCI returns the virtual channel identifier.
func (v VC) VCI() uint16 { return uint16(v) }

// Reason says why a cell or a frame was dropped. Every drop is counted by
// reason, per VC where the VC is known, and in total.
type Reason uint8

// Drop reasons.
const (
	ReasonNone      Reason = iota
	ReasonHEC              // header error not correctable
	ReasonShortCell        // cell record shorter than a header plus 48 bytes
	ReasonFiltered         // VPI/VCI not selected by the filters
	ReasonVCTable          // too many VCs: no reassembly state for a new one
	ReasonCRC              // AAL5 CRC-32 mismatch
	ReasonLength           // AAL5 length field inconsistent with the PDU size
	ReasonAbort            // AAL5 abort PDU (length field 0)
	ReasonOversize         // PDU grew past the maximum SDU (lost last cell)
	ReasonTimeout          // partial PDU expired waiting for its last cell
	ReasonFlushed          // partial PDU discarded at the end of the capture
	ReasonNoLLC            // LLC-encapsulated VC without a known LLC/SNAP header
	ReasonNonIP            // routed PDU whose protocol is not IPv4 or IPv6
	ReasonShortPDU         // PDU too short for its encapsulation
	NumReasons
)

var reasonNames = [...]string{
	"none", "hec-uncorrectable", "short-cell", "filtered", "vc-table-full",
	"crc", "length", "abort", "oversize", "timeout", "flushed",
	"no-llc-header", "non-ip", "short-pdu",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Drops counts drops by reason.
type Drops [NumReasons]uint64

// Total is the sum over all reasons.
func (d *Drops) Total() uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}

// VCStats are the counters of one VC.
type VCStats struct {
	Cells  uint64 // user cells accepted for reassembly
	PDUs   uint64 // AAL5 PDUs that passed the length and CRC checks
	Octets uint64 // SDU octets of those PDUs
	Frames uint64 // frames delivered after decapsulation
	Drops  Drops
}

type vcState struct {
	buf        []byte
	crc        uint32
	last       int64 // timestamp of the newest cell of the partial PDU
	discarding bool  // dropping cells until the next last cell
	stats      VCStats
}

// ReassemblyConfig configures a Reassembler. The zero value means the
// defaults.
type ReassemblyConfig struct {
	// MaxSDU is the largest CPCS-SDU accepted (default and maximum 65535).
	MaxSDU int
	// Timeout expires a partial PDU whose newest cell is older than this
	// in capture time (default 10s; negative disables).
	Timeout time.Duration
	// MaxVCs bounds the number of VCs with state (default 65536).
	MaxVCs int
}

// Reassembler reassembles AAL5 CPCS-PDUs per VC.
type Reassembler struct {
	maxPDU  int // MaxSDU + pad + trailer, a multiple of 48
	timeout int64
	maxVCs  int
	vcs     map[VC]*vcState
	lastVC  VC
	lastSt  *vcState
	total   Drops
}

// NewReassembler returns a reassembler; cfg may be nil.
func NewReassembler(cfg *ReassemblyConfig) *Reassembler {
	var c ReassemblyConfig
	if cfg != nil {
		c = *cfg
	}
	if c.MaxSDU <= 0 || c.MaxSDU > 65535 {
		c.MaxSDU = 65535
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxVCs <= 0 {
		c.MaxVCs = 65536
	}
	return &Reassembler{
		maxPDU:  (c.MaxSDU + 8 + PayloadSize - 1) / PayloadSize * PayloadSize,
		timeout: int64(c.Timeout),
		maxVCs:  c.MaxVCs,
		vcs:     make(map[VC]*vcState),
	}
}

func (r *Reassembler) state(vc VC) *vcState {
	if r.lastSt != nil && r.lastVC == vc {
		return r.lastSt
	}
	st := r.vcs[vc]
	if st == nil {
		if len(r.vcs) >= r.maxVCs {
			return nil
		}
		st = &vcState{buf: make([]byte, 0, 4*PayloadSize)}
		r.vcs[vc] = st
	}
	r.lastVC, r.lastSt = vc, st
	return st
}

// drop counts a drop for vc (or in total only when vc has no state).
func (r *Reassembler) drop(vc VC, reason Reason) {
	r.total[reason]++
	if st := r.state(vc); st != nil {
		st.stats.Drops[reason]++
	}
}

// Trailer is the AAL5 CPCS-PDU trailer.
type Trailer struct {
	UU     uint8
	CPI    uint8
	Length uint16
	CRC    uint32
}

// Push adds the 48-byte payload of a user cell of vc. end is the
// AAL-indicate bit (PTI&1). When the cell completes a correct PDU, Push
// returns its SDU (aliasing the VC's buffer until the next call) and
// trailer; otherwise ok is false and any failure has been counted.
func (r *Reassembler) Push(vc VC, payload []byte, end bool, ts int64) (sdu []byte, tr Trailer, ok bool) {
	if len(payload) < PayloadSize {
		r.drop(vc, ReasonShortCell)
		return nil, tr, false
	}
	st := r.state(vc)
	if st == nil {
		r.total[ReasonVCTable]++
		return nil, tr, false
	}
	st.stats.Cells++
	if st.discarding {
		st.discarding = !end
		return nil, tr, false
	}
	if len(st.buf) == 0 {
		st.crc = 0xffffffff
	}
	if len(st.buf)+PayloadSize > r.maxPDU {
		st.buf = st.buf[:0]
		st.discarding = !end
		st.stats.Drops[ReasonOversize]++
		r.total[ReasonOversize]++
		return nil, tr, false
	}
	st.buf = append(st.buf, payload[:PayloadSize]...)
	st.crc = crcUpdate(st.crc, payload[:PayloadSize])
	st.last = ts
	if !end {
		return nil, tr, false
	}
	pdu := st.buf
	st.buf = st.buf[:0]
	n := len(pdu)
	t := pdu[n-8:]
	tr = Trailer{UU: t[0], CPI: t[1], Length: binary.BigEndian.Uint16(t[2:]), CRC: binary.BigEndian.Uint32(t[4:])}
	var reason Reason
	switch {
	case tr.Length == 0:
		reason = ReasonAbort
	case int(tr.Length) > n-8 || n-8-int(tr.Length) >= PayloadSize:
		// A lost cell (or lost last cell merging two PDUs) shows here
		// first; the CRC would fail too.
		reason = ReasonLength
	case st.crc != CRCResidue:
		reason = ReasonCRC
	}
	if reason != ReasonNone {
		st.stats.Drops[reason]++
		r.total[reason]++
		return nil, tr, false
	}
	st.stats.PDUs++
	st.stats.Octets += uint64(tr.Length)
	return pdu[:tr.Length], tr, true
}

// Expire discards partial PDUs whose newest cell is older than the
// timeout at capture time now, counting each as ReasonTimeout.
func (r *Reassembler) Expire(now int64) {
	if r.timeout < 0 {
		return
	}
	for _, st := range r.vcs {
		if len(st.buf) > 0 && now-st.last > r.timeout {
			st.buf = st.buf[:0]
			st.stats.Drops[ReasonTimeout]++
			r.total[ReasonTimeout]++
		}
	}
}

// Flush discards every partial PDU (end of capture), counting each as
// ReasonFlushed.
func (r *Reassembler) Flush() {
	for _, st := range r.vcs {
		if len(st.buf) > 0 || st.discarding {
			st.buf = st.buf[:0]
			st.discarding = false
			st.stats.Drops[ReasonFlushed]++
			r.total[ReasonFlushed]++
		}
	}
}

// Drops returns the drops counted over all VCs.
func (r *Reassembler) Drops() Drops { return r.total }

// VCStats returns the counters of one VC (zero if it was never seen).
func (r *Reassembler) VCStats(vc VC) VCStats {
	if st := r.vcs[vc]; st != nil {
		return st.stats
	}
	return VCStats{}
}

// EachVC calls fn for every VC with state, in no particular order.
func (r *Reassembler) EachVC(fn func(VC, VCStats)) {
	for vc, st := range r.vcs {
		fn(vc, st.stats)
	}
}

// StripTrailer checks that pdu is a whole CPCS-PDU (a multiple of 48
// bytes whose trailer length fits and whose CRC-32 is right) and returns
// its SDU and trailer. Devices that deliver reassembled PDUs differ on
// whether they keep the trailer; callers use this to tell.
func StripTrailer(pdu []byte) (sdu []byte, tr Trailer, ok bool) {
	n := len(pdu)
	if n == 0 || n%PayloadSize != 0 || n > 65535+8+PayloadSize {
		return nil, tr, false
	}
	t := pdu[n-8:]
	tr = Trailer{UU: t[0], CPI: t[1], Length: binary.BigEndian.Uint16(t[2:]), CRC: binary.BigEndian.Uint32(t[4:])}
	l := int(tr.Length)
	if l == 0 || l > n-8 || n-8-l >= PayloadSize || crcUpdate(0xffffffff, pdu) != CRCResidue {
		return nil, tr, false
	}
	return pdu[:l], tr, true
}
