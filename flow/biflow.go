package flow

import "cmp"

// Biflow is one connection: both directions of a flow paired, with RFC
// 5103 semantics. Key is the initiator's view (Src opened the connection
// where that is known; VLAN is the initiator's first record's), the
// forward counters are the initiator's (Src to Dst), the R-prefixed ones
// the responder's; a direction seen alone leaves the other zero. It is
// the one connection type: the collector's consolidation result and
// report extend it, the biflow re-export (ipfix.AppendBiflowRecord)
// encodes it.
type Biflow struct {
	Key
	Packets, Octets     uint64 // initiator to responder
	RPackets, ROctets   uint64 // responder to initiator
	TCPFlags, RTCPFlags uint8  // union of each direction's flags
	First, Last         int64  // ns since the Unix epoch, over both directions
	// ScannedOctets and RScannedOctets are the payload octets of each
	// direction the probes' symptom matchers were given
	// (Record.ScannedOctets summed): 0 when not scanned, fewer than the
	// payload when scanning stopped early.
	ScannedOctets, RScannedOctets uint64
}

// Forward returns the initiator's direction of b as a flow record: its
// key, forward counters, both directions' TCP flags and b's times.
func (b *Biflow) Forward() Record {
	return Record{Key: b.Key, Packets: b.Packets, Octets: b.Octets, ScannedOctets: b.ScannedOctets,
		TCPFlags: b.TCPFlags | b.RTCPFlags, First: b.First, Last: b.Last}
}

// Compare orders keys by source address, destination address, source
// port, destination port, protocol and VLAN: -1, 0 or +1 as k sorts
// before, with or after o. It is the one 5-tuple order of the code base.
func (k Key) Compare(o Key) int {
	if c := k.Src.Compare(o.Src); c != 0 {
		return c
	}
	if c := k.Dst.Compare(o.Dst); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Sport, o.Sport); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Dport, o.Dport); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Proto, o.Proto); c != 0 {
		return c
	}
	return cmp.Compare(k.VLAN, o.VLAN)
}

// Reverse returns the key of the opposite direction (addresses and
// ports swapped).
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, Sport: k.Dport, Dport: k.Sport, Proto: k.Proto, VLAN: k.VLAN}
}

// SampledBiflow is a biflow whose counters, both directions', were all
// observed sampling 1 in PacketInterval packets of the connections kept
// 1 in FlowInterval (0 or 1: not sampled), as a re-exported record
// states them (exporter.Exporter.ExportSampledBiflows).
type SampledBiflow struct {
	Biflow
	PacketInterval, FlowInterval uint32
}

// Sampled says whether b's counters were sampled.
func (b *SampledBiflow) Sampled() bool { return b.PacketInterval > 1 || b.FlowInterval > 1 }
