package consolidate

import (
	"math"
	"slices"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/sum"
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

// EstimateSum is a sum of Estimates added exactly (package sum): the
// same biflows' estimates give the same sum, bit for bit, in whichever
// order they were added and however they were split into partial sums
// (a report's biflows one by one, the rollups' cells, a cluster's
// workers).
type EstimateSum struct {
	Biflows, Packets, Octets          sum.Exact
	VarBiflows, VarPackets, VarOctets sum.Exact
}

// Add adds e's totals and variances.
func (s *EstimateSum) Add(e *Estimate) {
	s.Biflows.Add(e.Biflows)
	s.Packets.Add(e.Packets)
	s.Octets.Add(e.Octets)
	s.VarBiflows.Add(e.VarBiflows)
	s.VarPackets.Add(e.VarPackets)
	s.VarOctets.Add(e.VarOctets)
}

// Merge adds o.
func (s *EstimateSum) Merge(o *EstimateSum) {
	s.Biflows.Merge(&o.Biflows)
	s.Packets.Merge(&o.Packets)
	s.Octets.Merge(&o.Octets)
	s.VarBiflows.Merge(&o.VarBiflows)
	s.VarPackets.Merge(&o.VarPackets)
	s.VarOctets.Merge(&o.VarOctets)
}

// Estimate returns the sums as an Estimate.
func (s *EstimateSum) Estimate() Estimate {
	return Estimate{Biflows: s.Biflows.Float(), Packets: s.Packets.Float(), Octets: s.Octets.Float(),
		VarBiflows: s.VarBiflows.Float(), VarPackets: s.VarPackets.Float(), VarOctets: s.VarOctets.Float()}
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
	// Rates are the observed counters by direction and sampling (one
	// entry per direction and pair of intervals, in the order first
	// seen): what a re-export needs to state each counter's sampling
	// (SplitRates). Its counters sum to the biflow's.
	Rates []Rate

	flowQ float64 // flow selection probability
}

// Rate is what a biflow's kept observations of one direction counted
// at one pair of sampling intervals (1: not sampled).
type Rate struct {
	Reverse                      bool
	PacketInterval, FlowInterval uint32
	Packets, Octets              uint64
}

// addRate adds observed counts of one direction and intervals to b.Rates.
func (b *Biflow) addRate(reverse bool, pi, fi uint32, packets, octets uint64) {
	pi, fi = max(pi, 1), max(fi, 1)
	for i := range b.Rates {
		if r := &b.Rates[i]; r.Reverse == reverse && r.PacketInterval == pi && r.FlowInterval == fi {
			r.Packets = SatAdd(r.Packets, packets)
			r.Octets = SatAdd(r.Octets, octets)
			return
		}
	}
	b.Rates = append(b.Rates, Rate{Reverse: reverse, PacketInterval: pi, FlowInterval: fi, Packets: packets, Octets: octets})
}

// SplitRates appends biflow b, whose counters rates break down (a
// Biflow's Rates), to dst as biflows of one sampling each, for a
// collector that scales each record by the rate it names (nfdump by its
// selectorId): one record when both directions were observed at one
// pair of intervals, else one per pair, each with the counters of that
// pair in each direction (a connection whose directions were sampled at
// different rates goes as two records: the initiator's counters in one,
// the responder's in the other), each with b's key, times and flags.
// The scaled counters of the records sum to the biflow's estimated
// packets and octets. Without rates b goes whole, as unsampled.
func SplitRates(dst []flow.SampledBiflow, b *flow.Biflow, rates []Rate) []flow.SampledBiflow {
	if len(rates) == 0 {
		return append(dst, flow.SampledBiflow{Biflow: *b})
	}
	start := len(dst)
	for i := range rates {
		r := &rates[i]
		j := start
		for ; j < len(dst); j++ {
			if dst[j].PacketInterval == r.PacketInterval && dst[j].FlowInterval == r.FlowInterval {
				break
			}
		}
		if j == len(dst) {
			x := flow.SampledBiflow{Biflow: *b, PacketInterval: r.PacketInterval, FlowInterval: r.FlowInterval}
			x.Packets, x.Octets, x.RPackets, x.ROctets = 0, 0, 0, 0
			if j > start {
				x.ScannedOctets, x.RScannedOctets = 0, 0
			}
			dst = append(dst, x)
		}
		x := &dst[j]
		if r.Reverse {
			x.RPackets = SatAdd(x.RPackets, r.Packets)
			x.ROctets = SatAdd(x.ROctets, r.Octets)
		} else {
			x.Packets = SatAdd(x.Packets, r.Packets)
			x.Octets = SatAdd(x.Octets, r.Octets)
		}
	}
	return dst
}

// intervalEst is a connection's observed traffic of one flow selection
// interval, before flow selection is applied.
type intervalEst struct {
	flowInterval uint32
	est          Estimate
}

// addObserved adds observed counts of flow interval fi to ivs.
func addObserved(ivs *[]intervalEst, fi uint32, packets, octets uint64, pktInterval uint32) {
	for i := range *ivs {
		if x := &(*ivs)[i]; x.flowInterval == fi {
			x.est.AddObserved(packets, octets, pktInterval)
			return
		}
	}
	*ivs = append(*ivs, intervalEst{flowInterval: fi})
	(*ivs)[len(*ivs)-1].est.AddObserved(packets, octets, pktInterval)
}

// setDirection adds an observation to one direction (but its symptom
// counts: Consolidator.addSymptomsTo; a is its attrs, parts its
// obsExt's); its observed traffic goes to ivs by flow interval.
func (b *Biflow) setDirection(o *obs, a *attrs, parts []part, reverse bool, origins []Origin, ivs *[]intervalEst) {
	if reverse {
		b.RPackets = SatAdd(b.RPackets, o.packets)
		b.ROctets = SatAdd(b.ROctets, o.octets)
		b.RScannedOctets = SatAdd(b.RScannedOctets, o.scanned)
		b.RTCPFlags |= o.flags
	} else {
		b.Packets = SatAdd(b.Packets, o.packets)
		b.Octets = SatAdd(b.Octets, o.octets)
		b.ScannedOctets = SatAdd(b.ScannedOctets, o.scanned)
		b.TCPFlags |= o.flags
	}
	b.First = min(b.First, o.first)
	b.Last = max(b.Last, o.last)
	if b.Aggregate == 0 {
		b.Aggregate = a.aggregate
	}
	if b.Category == 0 {
		b.Category = a.category
	}
	if og := origins[a.probe]; !slices.Contains(b.Origins, og) {
		b.Origins = append(b.Origins, og)
		if !slices.Contains(b.Probes, og.Probe) {
			b.Probes = append(b.Probes, og.Probe)
		}
	}
	b.Flows += int(o.records)
	b.SamplingUnknown = b.SamplingUnknown || o.bits&obsUnknown != 0
	// Packet sampling: n/p, variance n(1-p)/p²; octets o/p with
	// variance (1-p)/p² · o²/n.
	p := 1.0
	if a.pktInterval > 1 {
		p = 1 / float64(a.pktInterval)
		b.PacketSampled = true
	}
	q := 1.0
	if a.flowInterval > 1 {
		q = 1 / float64(a.flowInterval)
		b.FlowSampled = true
	}
	if b.flowQ == 0 || q < b.flowQ {
		b.flowQ = q
	}
	if b.Sampling == 0 || p*q < b.Sampling {
		b.Sampling = p * q
	}
	if len(parts) == 0 {
		addObserved(ivs, max(a.flowInterval, 1), o.packets, o.octets, a.pktInterval)
		b.addRate(reverse, a.pktInterval, a.flowInterval, o.packets, o.octets)
		return
	}
	for _, p := range parts {
		addObserved(ivs, p.flowInterval, p.packets, p.octets, p.pktInterval)
		b.addRate(reverse, p.pktInterval, p.flowInterval, p.packets, p.octets)
	}
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

// finish applies flow selection to the connection's traffic of each
// flow interval (ivs, from setDirection): traffic metered while every
// connection was kept counts once, traffic of 1 in N selection N times
// (Horvitz-Thompson per interval; a self-regulating probe draws a new
// selection at each change of rate, so the parts are independent and
// their variances add). The connection counts for 1/q connections, q
// its lowest selection probability.
func (b *Biflow) finish(ivs []intervalEst) {
	n := uint32(1)
	if b.flowQ > 0 && b.flowQ < 1 {
		n = uint32(math.Round(1 / b.flowQ))
	}
	var est Estimate
	for i := range ivs {
		e := ivs[i].est
		e.SelectFlows(ivs[i].flowInterval)
		est.Add(&e)
	}
	var sel Estimate
	sel.SelectFlows(n)
	est.Biflows, est.VarBiflows = sel.Biflows, sel.VarBiflows
	b.Est = est
}
