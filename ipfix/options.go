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
	// Hash, when valid, describes hash-based selection as RFC 5477
	// announces it; Interval is then round(1/Hash.Probability()).
	Hash HashSelection
}

// HashSelection is an RFC 5475 hash-based selector's parameters (RFC
// 5477 §8.3: hashInitialiserValue, hashOutputRangeMin/Max and one
// hashSelectedRangeMin/Max, all inclusive). The zero value means
// unknown.
type HashSelection struct {
	Initialiser              uint64
	OutputMin, OutputMax     uint64
	SelectedMin, SelectedMax uint64
}

// Valid says whether the ranges describe a selection: a non-empty
// selected range inside an output range of more than one value.
func (h HashSelection) Valid() bool {
	return h.OutputMax > h.OutputMin && h.SelectedMin >= h.OutputMin &&
		h.SelectedMax >= h.SelectedMin && h.SelectedMax <= h.OutputMax
}

// Probability is the selected range's share of the output range: the
// probability that a flow is selected (0 when not Valid).
func (h HashSelection) Probability() float64 {
	if !h.Valid() {
		return 0
	}
	return (float64(h.SelectedMax-h.SelectedMin) + 1) / (float64(h.OutputMax-h.OutputMin) + 1)
}

// SelectionProbability is the probability that a packet (packet
// sampling) or a flow (hash-based selection) is selected: the hash
// ranges' share when known, else 1/Interval.
func (s Sampling) SelectionProbability() float64 {
	if s.Hash.Valid() {
		return s.Hash.Probability()
	}
	return 1 / float64(max(s.Interval, 1))
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
//     With hash-based selection whose parameters are known (Sampling.Hash)
//     PSAMPHashOptionsTemplate replaces it: the same fields, then
//     hashOutputRangeMin/Max, hashSelectedRangeMin/Max and
//     hashInitialiserValue, so that a collector computes the probability
//     as selected range size / output range size.
//
// samplingPacketInterval/Space (305/306) are not sent in these: RFC 5476
// reads them as "1 selected, N-1 skipped" but nfdump 1.7.x versions
// disagree on them without a selectorId (1.7.1 reads a 306 alone as N);
// samplingProbability says the same without ambiguity.
//
// The reason behind the quirks: every nfdump 1.7 reads only the first
// options template of a template set (and only the first record of a
// data set), so an options template behind SamplingOptionsTemplate in
// the set was never learnt. What the domain's records say is the rate
// announced last; a record names its own rate with its selectorId, which
// SelectorOptionsTemplate reports (each template and record in a set of
// its own).
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

// PSAMPHashOptionsTemplate is PSAMPOptionsTemplate followed by the RFC
// 5477 hash-based selection parameters.
func PSAMPHashOptionsTemplate(pen uint32) *Template {
	t := PSAMPOptionsTemplate(pen)
	t.ID = PSAMPHashOptionsTemplateID
	t.Fields = append(t.Fields,
		Field{ID: IEHashOutputRangeMin, Length: 8},
		Field{ID: IEHashOutputRangeMax, Length: 8},
		Field{ID: IEHashSelectedRangeMin, Length: 8},
		Field{ID: IEHashSelectedRangeMax, Length: 8},
		Field{ID: IEHashInitialiserValue, Length: 8},
	)
	return t
}

// PSAMPTemplate returns the PSAMP options template that describes s:
// PSAMPHashOptionsTemplate for hash-based selection with valid
// parameters, PSAMPOptionsTemplate otherwise.
func PSAMPTemplate(pen uint32, s Sampling) *Template {
	if s.Flow && s.Hash.Valid() {
		return PSAMPHashOptionsTemplate(pen)
	}
	return PSAMPOptionsTemplate(pen)
}

// AppendSamplingRecord appends the data record of SamplingOptionsTemplate.
func AppendSamplingRecord(b []byte, domain uint32, s Sampling) []byte {
	b = binary.BigEndian.AppendUint32(b, domain)
	return binary.BigEndian.AppendUint32(b, max(s.Interval, 1))
}

// AppendPSAMPRecord appends the data record of PSAMPTemplate(pen, s):
// with the hash parameters when that is PSAMPHashOptionsTemplate.
func AppendPSAMPRecord(b []byte, domain uint32, s Sampling) []byte {
	n := max(s.Interval, 1)
	be := binary.BigEndian
	b = be.AppendUint32(b, domain)
	b = be.AppendUint16(b, s.SelectorAlgorithm)
	b = be.AppendUint64(b, math.Float64bits(s.SelectionProbability()))
	var fi uint32
	if s.Flow {
		fi = n
	}
	b = be.AppendUint32(b, fi)
	if s.Flow && s.Hash.Valid() {
		h := s.Hash
		b = be.AppendUint64(b, h.OutputMin)
		b = be.AppendUint64(b, h.OutputMax)
		b = be.AppendUint64(b, h.SelectedMin)
		b = be.AppendUint64(b, h.SelectedMax)
		b = be.AppendUint64(b, h.Initialiser)
	}
	return b
}

// SelectorID is the selectorId (IE 302) of the selection a record of
// packet-sampling interval pkt and hash-based flow-selection interval
// flow (flow.Record's intervals; 0 is 1) went through: the same pair,
// the same id, in every exporting process (a spool replayed by a
// restarted probe names the same selectors), never 0 (nfdump reads 0 as
// "no selector"), and within 32 bits (nfdump 1.7.1 compares a record's
// selectorId as 32 bits). Pairs of pkt < 2^16 and flow < 2^15 are
// numbered flow<<16 | pkt, one to one (unsampled: 65537); larger ones
// get a hash of the pair with the top bit set, so they never meet the
// small ones.
func SelectorID(pkt, flow uint32) uint32 {
	pkt, flow = max(pkt, 1), max(flow, 1)
	if pkt <= 0xffff && flow <= 0x7fff {
		return flow<<16 | pkt
	}
	// FNV-1a over the eight octets.
	h := uint32(2166136261)
	for _, v := range [2]uint32{pkt, flow} {
		for i := 24; i >= 0; i -= 8 {
			h ^= (v >> i) & 0xff
			h *= 16777619
		}
	}
	return 1<<31 | h
}

// SelectorInterval is N of the overall "1 in N" a record of the
// intervals pkt and flow stands for: their product (the two selections
// are independent), at most 2^32-1.
func SelectorInterval(pkt, flow uint32) uint32 {
	return uint32(min(uint64(max(pkt, 1))*uint64(max(flow, 1)), math.MaxUint32))
}

// SelectorOptionsTemplate reports one selector (RFC 5476 §6.5.2): the
// overall rate of the records whose selectorId (IE 302, which every MIRA
// flow record carries: SelectorID) names it. Scope observationDomainId,
// then selectorId, samplingInterval (34: N), samplingPacketInterval (305:
// 1) and samplingPacketSpace (306: N-1), in this order:
//
//   - nfdump scales each record by the sampler whose id is the record's
//     selectorId, and only by the generic one (IE 34 of
//     SamplingOptionsTemplate, the rate announced last) when it knows
//     none: so a record metered before a change of rate (self-regulation)
//     is scaled by its own rate, not by the one in force when it is
//     exported.
//   - nfdump 1.7.1 takes an options template with a selectorId for a
//     sampler only when it holds IE 34 (and not 35), and reads 34 and 306
//     into one slot, the later field winning: 306 comes after 34. 1.7.2
//     to 1.7.8 take it when it holds 304 and 306, or 34, read 302 as the
//     sampler's id when 304 or 306 is there, and 0 as "generic". With 305
//     present all of them read 305 and 306 as RFC 5476 does (1 selected,
//     N-1 skipped): 1 in N. (Read from nfdump's ipfix.c at v1.7.1 to
//     v1.7.8; tested with Debian's 1.7.1 and with 1.7.4 and 1.7.8 built
//     from their tags: exporter TestNfdumpSelectors, e2e
//     TestNfdumpRegulatedTotals.) Every nfdump 1.7 reads only the first
//     options template of a template set and only the first record of a
//     data set: the exporter sends each in a set of its own.
//   - selectorAlgorithm (304) is left out: the record states a rate, the
//     composition of packet sampling and hash-based flow selection has no
//     one algorithm; the domain's PSAMP record says how it selects.
//
// MIRA's collector keeps these records per selector (not as the domain's
// sampling) and scales a record that carries a selectorId but no MIRA
// interval by its selector's rate.
func SelectorOptionsTemplate() *Template {
	return &Template{ID: SelectorOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4},
		{ID: IESelectorID, Length: 4},
		{ID: IESamplingInterval, Length: 4},
		{ID: IESamplingPacketInterval, Length: 4},
		{ID: IESamplingPacketSpace, Length: 4},
	}}
}

// AppendSelectorRecord appends the data record of SelectorOptionsTemplate
// for selector id of overall interval n (0 is 1).
func AppendSelectorRecord(b []byte, domain, id, n uint32) []byte {
	n = max(n, 1)
	be := binary.BigEndian
	b = be.AppendUint32(b, domain)
	b = be.AppendUint32(b, id)
	b = be.AppendUint32(b, n)
	b = be.AppendUint32(b, 1)
	return be.AppendUint32(b, n-1)
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
	// SpoolInstance, when not zero, is the spooling exporting process's
	// instance (SpoolOptionsTemplate): its sequence numbers identify
	// records across reconnects and restarts.
	SpoolInstance uint64
	// HaveLedger says a ledger options record (LedgerOptionsTemplate, or
	// any options record with exportedFlowRecordTotalCount) was received;
	// Ledger is the latest.
	HaveLedger bool
	Ledger     Ledger
}

// samplingFields collects one options record's sampling elements.
type samplingFields struct {
	legacyInterval, pktInterval, pktSpace, flowInterval uint32
	selector                                            uint16
	legacyAlg                                           uint8
	prob                                                float64
	haveLegacy, havePkt, haveSpace, haveSel             bool
	haveProb, haveFlow, haveLegacyAlg                   bool
	hash                                                HashSelection
	haveHash                                            uint8 // bits: out min, out max, sel min, sel max, init
}

func (f *samplingFields) any() bool {
	return f.haveLegacy || f.havePkt || f.haveSel || f.haveProb || f.haveFlow || f.haveLegacyAlg || f.haveHash != 0
}

// hashRanges says whether the record gave both ranges (the initialiser
// is optional: it does not change the probability) and they are valid.
func (f *samplingFields) hashRanges() bool {
	return f.haveHash&15 == 15 && f.hash.Valid()
}

// resolve turns the elements into a Sampling: hash selectors mean flow
// selection; hash output and selected ranges (RFC 5477) give the
// probability, selected size / output size, and take precedence over
// the other elements; samplingPacketInterval with samplingPacketSpace is read as
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
	case f.hashRanges():
		s.Hash = f.hash
		s.Interval = inv(f.hash.Probability())
		// The ranges give 1/N rounded to the output's resolution; keep
		// the N the exporter states beside them when it agrees (within
		// 0.1%), so its bare samplingInterval record agrees too.
		if p := f.hash.Probability(); f.haveFlow && f.flowInterval > 0 && math.Abs(p*float64(f.flowInterval)-1) < 1e-3 {
			s.Interval = f.flowInterval
		}
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
	s.Flow = (f.haveFlow && f.flowInterval > 1) || (f.haveSel && IsHashSelector(f.selector)) || f.hashRanges()
	return s
}
