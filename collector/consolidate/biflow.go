package consolidate

import (
	"math"
	"slices"

	"github.com/mira-project/mira/flow"
)

// Estimate holds extrapolated totals and the estimated variances of the
// estimators (see the package documentation for the formulas).
type Estimate struct {
	Biflows, Packets, Octets          float64
	VarBiflows, VarPackets, VarOctets float64
}

// Add adds o's totals and variances (independent estimators).
func (e *Estimate) Add(o *Estimate) {
	e.Biflows += o.Biflows
	e.Packets += o.Packets
	e.Octets += o.Octets
	e.VarBiflows += o.VarBiflows
	e.VarPackets += o.VarPackets
	e.VarOctets += o.VarOctets
}

// Biflow is one consolidated connection: the connection (flow.Biflow,
// RFC 5103 semantics; its VLAN is the initiator's first record's and not
// part of the connection key; its counters are observed, after duplicate
// suppression, before scaling) and what consolidation learnt about it.
type Biflow struct {
	flow.Biflow
	Aggregate uint32
	Category  uint16
	Symptoms  []flow.SymptomCount
	// Probes are the probes (Origin.Probe) whose observations were
	// kept: the initiator's, then the responder's when it differs.
	Probes []string
	// Origins are the origins (probe and observation domain) whose
	// observations were kept: two observation
	// domains of one exporter are two origins but one entry of Probes.
	Origins []Origin
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
	// App is the application metadata of the connection's records, both
	// directions and every probe merged: each name as the first record
	// that carried it gave it, the DNS response code from a response.
	App flow.App

	flowQ float64 // flow selection probability
}

// setDirection adds an observation to one direction.
func (b *Biflow) setDirection(o *obs, reverse bool, origins []Origin) {
	if reverse {
		b.RPackets = SatAdd(b.RPackets, o.packets)
		b.ROctets = SatAdd(b.ROctets, o.octets)
		b.RTCPFlags |= o.flags
	} else {
		b.Packets = SatAdd(b.Packets, o.packets)
		b.Octets = SatAdd(b.Octets, o.octets)
		b.TCPFlags |= o.flags
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
	if og := origins[o.probe]; !slices.Contains(b.Origins, og) {
		b.Origins = append(b.Origins, og)
		if !slices.Contains(b.Probes, og.Probe) {
			b.Probes = append(b.Probes, og.Probe)
		}
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
	b.Est.AddObserved(o.packets, o.octets, o.pktInterval)
}

// AddObserved adds a direction's (or record's) observed counts, packet
// sampled 1 in pktInterval (0 or 1: unsampled): n/p packets with
// variance n(1-p)/p², o/p octets with variance (1-p)/p² · o²/n.
func (e *Estimate) AddObserved(packets, octets uint64, pktInterval uint32) {
	p := 1.0
	if pktInterval > 1 {
		p = 1 / float64(pktInterval)
	}
	n, x := float64(packets), float64(octets)
	e.Packets += n / p
	e.Octets += x / p
	if p < 1 && n > 0 {
		e.VarPackets += n * (1 - p) / (p * p)
		e.VarOctets += (1 - p) / (p * p) * x * x / n
	}
}

// SelectFlows turns the estimate of one connection's observed traffic
// into the estimate of the population it stands for when connections
// were kept by hash-based selection with probability q = 1/flowInterval:
// totals divided by q, variances by q², plus the selection variance
// (1-q)/q² · X²; the biflow count is 1/q with variance (1-q)/q².
func (e *Estimate) SelectFlows(flowInterval uint32) {
	q := 1.0
	if flowInterval > 1 {
		q = 1 / float64(flowInterval)
	}
	e.Biflows = 1 / q
	e.VarBiflows = 0
	if q < 1 {
		P, X := e.Packets, e.Octets
		e.Packets, e.Octets = P/q, X/q
		e.VarPackets = e.VarPackets/(q*q) + (1-q)/(q*q)*P*P
		e.VarOctets = e.VarOctets/(q*q) + (1-q)/(q*q)*X*X
		e.VarBiflows = (1 - q) / (q * q)
	}
}

// finish applies flow selection to the whole connection.
func (b *Biflow) finish() {
	n := uint32(1)
	if b.flowQ > 0 && b.flowQ < 1 {
		n = uint32(math.Round(1 / b.flowQ))
	}
	b.Est.SelectFlows(n)
}
