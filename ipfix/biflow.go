package ipfix

import (
	"encoding/binary"

	"github.com/mira-project/mira/flow"
)

// Biflow template ids (RFC 5103 records the collector re-exports). They
// were 389 and 390 once, the ids of SymptomOptionsTemplateID and
// CategoryOptionsTemplateID, then 392 and 393, those of
// SpoolOptionsTemplateID and LedgerOptionsTemplateID: an exporter sending
// both would have redefined one with the other (TestTemplateIDsDistinct).
const (
	BiflowTemplateV4 = SymptomTemplateID + 14 // 398
	BiflowTemplateV6 = SymptomTemplateID + 15 // 399
	// BiflowSelectorTemplateV4 and V6 are BiflowSelectorTemplate's.
	BiflowSelectorTemplateV4 = SymptomTemplateID + 12 // 396
	BiflowSelectorTemplateV6 = SymptomTemplateID + 13 // 397
)

// BiflowSelectorTemplate is BiflowTemplate with selectorId (IE 302)
// last: the sampling of a re-exported biflow whose counters were
// sampled (flow.SampledBiflow), the selector reported by
// SelectorOptionsTemplate, by which nfdump scales both directions'
// counters.
func BiflowSelectorTemplate(v6 bool) *Template {
	t := BiflowTemplate(v6)
	t.ID = BiflowSelectorTemplateV4
	if v6 {
		t.ID = BiflowSelectorTemplateV6
	}
	t.Fields = append(t.Fields, Field{ID: IESelectorID, Length: 4})
	return t
}

// AppendBiflowSelectorRecord appends bf as a record of
// BiflowSelectorTemplate(IsV6(&bf.Key)), naming selector
// SelectorID(bf.PacketInterval, bf.FlowInterval).
func AppendBiflowSelectorRecord(b []byte, bf *flow.SampledBiflow) []byte {
	b = AppendBiflowRecord(b, &bf.Biflow)
	return binary.BigEndian.AppendUint32(b, SelectorID(bf.PacketInterval, bf.FlowInterval))
}

// BiflowTemplate returns the RFC 5103 biflow template: the initiator's
// flow (addresses, ports, protocol, forward counters and times, TCP
// flags, VLAN) and the responder's counters as reverseOctetDeltaCount and
// reversePacketDeltaCount (enterprise 29305). Only the reverse counters
// are sent reversed: nfdump 1.7.1 maps exactly those to its "out"
// counters, and reads any other reverse IE as the forward one (see
// notes/peer-tools.md (d)).
func BiflowTemplate(v6 bool) *Template {
	t := &Template{ID: BiflowTemplateV4}
	if v6 {
		t.ID = BiflowTemplateV6
		t.Fields = []Field{{ID: IESourceIPv6Address, Length: 16}, {ID: IEDestinationIPv6Address, Length: 16}}
	} else {
		t.Fields = []Field{{ID: IESourceIPv4Address, Length: 4}, {ID: IEDestinationIPv4Address, Length: 4}}
	}
	t.Fields = append(t.Fields,
		Field{ID: IESourceTransportPort, Length: 2},
		Field{ID: IEDestinationTransportPort, Length: 2},
		Field{ID: IEProtocolIdentifier, Length: 1},
		Field{ID: IETCPControlBits, Length: 2},
		Field{ID: IEPacketDeltaCount, Length: 8},
		Field{ID: IEOctetDeltaCount, Length: 8},
		Field{ID: IEFlowStartMilliseconds, Length: 8},
		Field{ID: IEFlowEndMilliseconds, Length: 8},
		Field{ID: IEVlanID, Length: 2},
		Field{ID: IEPacketDeltaCount, Enterprise: ReversePEN, Length: 8},
		Field{ID: IEOctetDeltaCount, Enterprise: ReversePEN, Length: 8},
	)
	return t
}

// IsV6 says whether a flow of key k needs the IPv6 templates.
func IsV6(k *flow.Key) bool { return k.Src.Is6() && !k.Src.Is4In6() }

// AppendBiflowRecord appends bf as a record of BiflowTemplate(IsV6(&bf.Key)):
// the initiator's key, forward counters, times and both directions' TCP
// flags (bf.Forward), then the responder's counters.
func AppendBiflowRecord(b []byte, bf *flow.Biflow) []byte {
	be := binary.BigEndian
	r := bf.Forward()
	if IsV6(&r.Key) {
		s, d := r.Src.As16(), r.Dst.As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	} else {
		b = appendAddr4(b, r.Src)
		b = appendAddr4(b, r.Dst)
	}
	b = be.AppendUint16(b, r.Sport)
	b = be.AppendUint16(b, r.Dport)
	b = append(b, r.Proto)
	b = be.AppendUint16(b, uint16(r.TCPFlags))
	b = be.AppendUint64(b, r.Packets)
	b = be.AppendUint64(b, r.Octets)
	b = be.AppendUint64(b, uint64(r.First/1e6))
	b = be.AppendUint64(b, uint64(r.Last/1e6))
	b = be.AppendUint16(b, r.VLAN)
	b = be.AppendUint64(b, bf.RPackets)
	return be.AppendUint64(b, bf.ROctets)
}
