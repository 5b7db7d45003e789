package ipfix

import (
	"encoding/binary"
	"math"
)

// Selector algorithms (IANA PSAMP selectorAlgorithm) that mean hash-based
// flow selection (RFC 5475 §6.2): whole flows are kept or dropped.
const (
	selectorHashBOB  = 6
	selectorHashIPSX = 7
	selectorHashCRC  = 8
)

// IsHashSelector says whether a selectorAlgorithm value is hash-based
// (flow) selection.
func IsHashSelector(a uint16) bool {
	return a == selectorHashBOB || a == selectorHashIPSX || a == selectorHashCRC
}

// Sampling is an observation domain's selection configuration as the
// sampling options record carries it.
type Sampling struct {
	// Interval is N of "1 in N" (0 or 1: unsampled).
	Interval uint32
	// Flow says whole flows are selected by hash (RFC 5475) rather than
	// single packets.
	Flow bool
	// SelectorAlgorithm is the IANA PSAMP selectorAlgorithm (RFC 5477).
	SelectorAlgorithm uint16
	// LegacyAlgorithm is NetFlow v9 samplingAlgorithm (IE 35): 1
	// deterministic, 2 random.
	LegacyAlgorithm uint8
}

// The sampling configuration travels in two options records per domain,
// in this order:
//
//   - SamplingOptionsTemplate: scope observationDomainId, samplingInterval
//     (IE 34) only. This is the one layout nfdump 1.7.1 scales its counts
//     by: tested, a template that also holds samplingAlgorithm (35) or
//     selectorAlgorithm (304), or a PSAMP record sent before it, leaves
//     nfdump's counts unscaled.
//   - PSAMPOptionsTemplate: scope observationDomainId, selectorAlgorithm
//     (304), samplingProbability (311) and MIRA's flowSamplingInterval, for
//     RFC 5477 readers and MIRA's collector (hash-based flow selection).
//
// samplingPacketInterval/Space (305/306) are not sent: RFC 5476 reads
// them as "1 selected, N-1 skipped" but nfdump 1.7.x versions disagree on
// them; samplingProbability says the same without ambiguity.
func SamplingOptionsTemplate() *Template {
	return &Template{ID: SamplingOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4},
		{ID: IESamplingInterval, Length: 4},
	}}
}

// PSAMPOptionsTemplate is the RFC 5477 sampling options template; MIRA's
// elements carry enterprise number pen (DefaultPEN if 0).
func PSAMPOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: PSAMPOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4},
		{ID: IESelectorAlgorithm, Length: 2},
		{ID: IESamplingProbability, Length: 8},
		{ID: MIRASamplingFlowInterval, Enterprise: pen, Length: 4},
	}}
}

// AppendSamplingRecord appends the data record of SamplingOptionsTemplate.
func AppendSamplingRecord(b []byte, domain uint32, s Sampling) []byte {
	b = binary.BigEndian.AppendUint32(b, domain)
	return binary.BigEndian.AppendUint32(b, max(s.Interval, 1))
}

// AppendPSAMPRecord appends the data record of PSAMPOptionsTemplate.
func AppendPSAMPRecord(b []byte, domain uint32, s Sampling) []byte {
	n := max(s.Interval, 1)
	be := binary.BigEndian
	b = be.AppendUint32(b, domain)
	b = be.AppendUint16(b, s.SelectorAlgorithm)
	b = be.AppendUint64(b, math.Float64bits(1/float64(n)))
	var fi uint32
	if s.Flow {
		fi = n
	}
	return be.AppendUint32(b, fi)
}

// AggregateOptionsTemplate is the options template naming aggregates:
// scope aggregateId, then aggregateName (both MIRA elements).
func AggregateOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: AggregateOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: MIRAAggregateID, Enterprise: pen, Length: 4},
		{ID: MIRAAggregateName, Enterprise: pen, Length: VarLen},
	}}
}

// AppendAggregateRecord appends one aggregate id -> name record. Names
// longer than 255 bytes are cut.
func AppendAggregateRecord(b []byte, id uint32, name string) []byte {
	if len(name) > 255 {
		name = name[:255]
	}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, byte(len(name)))
	return append(b, name...)
}

// DomainOptions is what a domain's options records have said so far.
type DomainOptions struct {
	// HaveSampling says a sampling options record was received; Sampling
	// is then its meaning (Interval 1 when unsampled).
	HaveSampling bool
	Sampling     Sampling
	// Aggregates maps aggregate ids to names.
	Aggregates map[uint32]string
	// Symptoms and Categories map symptom and fast-class category ids
	// to names (SymptomOptionsTemplate, CategoryOptionsTemplate).
	Symptoms   map[uint16]string
	Categories map[uint16]string
}

// samplingFields collects one options record's sampling elements.
type samplingFields struct {
	legacyInterval, pktInterval, pktSpace, flowInterval uint32
	selector                                            uint16
	legacyAlg                                           uint8
	prob                                                float64
	haveLegacy, havePkt, haveSpace, haveSel             bool
	haveProb, haveFlow, haveLegacyAlg                   bool
}

func (f *samplingFields) any() bool {
	return f.haveLegacy || f.havePkt || f.haveSel || f.haveProb || f.haveFlow || f.haveLegacyAlg
}

// resolve turns the elements into a Sampling: hash selectors mean flow
// selection; samplingPacketInterval with samplingPacketSpace is read as
// RFC 5476 (rate (interval+space)/interval); samplingProbability as 1/N;
// samplingInterval (34), or samplingPacketInterval alone, as nfdump and
// NetFlow v9 exporters use them: N of 1 in N.
func (f *samplingFields) resolve() Sampling {
	s := Sampling{SelectorAlgorithm: f.selector, LegacyAlgorithm: f.legacyAlg}
	inv := func(p float64) uint32 {
		if p <= 0 || p > 1 || math.IsNaN(p) {
			return 0
		}
		return uint32(min(math.Round(1/p), math.MaxUint32))
	}
	switch {
	case f.haveFlow && f.flowInterval > 0:
		s.Interval = f.flowInterval
	case f.havePkt && f.haveSpace && f.pktInterval > 0:
		s.Interval = uint32(min((uint64(f.pktInterval)+uint64(f.pktSpace))/uint64(f.pktInterval), math.MaxUint32))
	case f.haveProb && inv(f.prob) > 0:
		s.Interval = inv(f.prob)
	case f.haveLegacy:
		s.Interval = f.legacyInterval
	case f.havePkt:
		s.Interval = f.pktInterval
	}
	if s.Interval == 0 {
		s.Interval = 1
	}
	s.Flow = (f.haveFlow && f.flowInterval > 1) || (f.haveSel && IsHashSelector(f.selector))
	return s
}
