package consolidate

import (
	"math"
	"net/netip"
	"slices"

	"github.com/mira-project/mira/appliance/flow"
)

// Estimate holds extrapolated totals and the estimated variances of the
// estimators (see the package documentation for the formulas).
type Estimate struct {
	Biflows, Packets, Octets          float64
	VarBiflows, VarPackets, VarOctets float64
}

func (e *Estimate) add(o *Estimate) {
	e.Biflows += o.Biflows
	e.Packets += o.Packets
	e.Octets += o.Octets
	e.VarBiflows += o.VarBiflows
	e.VarPackets += o.VarPackets
	e.VarOctets += o.VarOctets
}

// Biflow is one consolidated connection (RFC 5103 semantics): the
// forward counters are the initiator's (Src to Dst), the R-prefixed ones
// the responder's; a direction seen alone leaves the other zero.
type Biflow struct {
	Src, Dst     netip.Addr
	Sport, Dport uint16
	Proto        uint8
	// Observed counters, after duplicate suppression, before scaling.
	Packets, Octets   uint64
	RPackets, ROctets uint64
	TCPFlags          uint8
	RTCPFlags         uint8
	First, Last       int64 // ns since the Unix epoch
	Aggregate         uint32
	Category          uint16
	Symptoms          []flow.SymptomCount
	// Probes are the probes whose observations were kept: the
	// initiator's, then the responder's when it differs.
	Probes []string
	// Flows is the number of records the kept observations summed.
	Flows int
	// Merged is the number of duplicate observations dropped.
	Merged int
	// Sampling is the lowest selection probability of the two
	// directions (1 when unsampled).
	Sampling float64
	// FlowSampled says the connection was kept by hash-based flow
	// selection; PacketSampled that packets were sampled.
	FlowSampled, PacketSampled bool
	// SamplingUnknown marks a biflow with records released without their
	// domain's sampling options: its estimates are not scaled.
	SamplingUnknown bool
	// Est are the estimated true totals of the connection.
	Est Estimate

	flowQ float64 // flow selection probability
}

// setDirection fills one direction from an observation.
func (b *Biflow) setDirection(o *obs, reverse bool, names []string) {
	if reverse {
		b.RPackets, b.ROctets, b.RTCPFlags = o.packets, o.octets, o.flags
	} else {
		b.Packets, b.Octets, b.TCPFlags = o.packets, o.octets, o.flags
		b.First, b.Last = o.first, o.last
	}
	b.First = min(b.First, o.first)
	b.Last = max(b.Last, o.last)
	if b.Aggregate == 0 {
		b.Aggregate = o.aggregate
	}
	if b.Category == 0 {
		b.Category = o.category
	}
	for _, s := range o.symptoms {
		b.Symptoms = addSymptom(b.Symptoms, s)
	}
	if !slices.Contains(b.Probes, names[o.probe]) {
		b.Probes = append(b.Probes, names[o.probe])
	}
	b.Flows += int(o.records)
	b.SamplingUnknown = b.SamplingUnknown || o.unknown
	// Packet sampling: n/p, variance n(1-p)/p²; octets o/p with
	// variance (1-p)/p² · o²/n.
	p := 1.0
	if o.pktInterval > 1 {
		p = 1 / float64(o.pktInterval)
		b.PacketSampled = true
	}
	q := 1.0
	if o.flowInterval > 1 {
		q = 1 / float64(o.flowInterval)
		b.FlowSampled = true
	}
	if b.flowQ == 0 || q < b.flowQ {
		b.flowQ = q
	}
	if b.Sampling == 0 || p*q < b.Sampling {
		b.Sampling = p * q
	}
	n, x := float64(o.packets), float64(o.octets)
	b.Est.Packets += n / p
	b.Est.Octets += x / p
	if p < 1 && n > 0 {
		b.Est.VarPackets += n * (1 - p) / (p * p)
		b.Est.VarOctets += (1 - p) / (p * p) * x * x / n
	}
}

// finish applies flow selection to the whole connection: the packet-level
// estimates are divided by q, their variances by q², and the variance of
// selecting the connection, (1-q)/q² · X², is added.
func (b *Biflow) finish() {
	q := b.flowQ
	if q <= 0 {
		q = 1
	}
	e := &b.Est
	e.Biflows = 1 / q
	if q < 1 {
		P, X := e.Packets, e.Octets
		e.Packets, e.Octets = P/q, X/q
		e.VarPackets = e.VarPackets/(q*q) + (1-q)/(q*q)*P*P
		e.VarOctets = e.VarOctets/(q*q) + (1-q)/(q*q)*X*X
		e.VarBiflows = (1 - q) / (q * q)
	}
	if math.IsNaN(e.VarOctets) {
		e.VarOctets = 0
	}
}
