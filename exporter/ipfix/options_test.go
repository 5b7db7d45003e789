package ipfix

import (
	"encoding/binary"
	"math"
	"testing"
)

// optionsMessage builds a message with the given options template and one
// record of it.
func optionsMessage(domain uint32, t *Template, rec []byte) []byte {
	b := AppendHeader(nil, Header{ExportTime: 1, Domain: domain})
	var s int
	b, s = AppendSetHeader(b, OptionsSetID)
	b = AppendTemplate(b, t)
	b = FinishSet(b, s, 0)
	b, s = AppendSetHeader(b, t.ID)
	b = append(b, rec...)
	b = FinishSet(b, s, 0)
	FinishMessage(b)
	return b
}

func TestSamplingOptionsDecode(t *testing.T) {
	be := binary.BigEndian
	f := func(id uint16, l uint16) Field { return Field{ID: id, Length: l} }
	for _, tc := range []struct {
		name   string
		fields []Field
		rec    []byte
		want   Sampling
	}{
		{"nfdump interval", []Field{f(IEObservationDomainID, 4), f(IESamplingInterval, 4)},
			be.AppendUint32(be.AppendUint32(nil, 1), 100), Sampling{Interval: 100}},
		{"rfc5476 interval and space", []Field{f(IEObservationDomainID, 4), f(IESelectorAlgorithm, 2), f(IESamplingPacketInterval, 4), f(IESamplingPacketSpace, 4)},
			be.AppendUint32(be.AppendUint32(be.AppendUint16(be.AppendUint32(nil, 1), 1), 2), 6), Sampling{Interval: 4, SelectorAlgorithm: 1}},
		{"probability", []Field{f(IEObservationDomainID, 4), f(IESelectorAlgorithm, 2), f(IESamplingProbability, 8)},
			be.AppendUint64(be.AppendUint16(be.AppendUint32(nil, 1), 4), math.Float64bits(0.05)), Sampling{Interval: 20, SelectorAlgorithm: 4}},
		{"hash selector", []Field{f(IEObservationDomainID, 4), f(IESelectorAlgorithm, 1), f(IESamplingProbability, 4)},
			be.AppendUint32(append(be.AppendUint32(nil, 1), 8), math.Float32bits(0.125)), Sampling{Interval: 8, Flow: true, SelectorAlgorithm: 8}},
		{"legacy algorithm", []Field{f(IEObservationDomainID, 4), f(IESamplingInterval, 4), f(IESamplingAlgorithm, 1)},
			append(be.AppendUint32(be.AppendUint32(nil, 1), 10), 2), Sampling{Interval: 10, LegacyAlgorithm: 2}},
		{"zero interval", []Field{f(IEObservationDomainID, 4), f(IESamplingInterval, 4)},
			be.AppendUint32(be.AppendUint32(nil, 1), 0), Sampling{Interval: 1}},
		{"bad probability", []Field{f(IEObservationDomainID, 4), f(IESamplingProbability, 8)},
			be.AppendUint64(be.AppendUint32(nil, 1), math.Float64bits(math.NaN())), Sampling{Interval: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession("test")
			calls := 0
			s.OnOptions = func(d uint32, o DomainOptions) { calls++ }
			msg := optionsMessage(1, &Template{ID: 300, ScopeCount: 1, Fields: tc.fields}, tc.rec)
			if _, _, err := s.Decode(msg, nil); err != nil {
				t.Fatal(err)
			}
			o, ok := s.DomainOptions(1)
			if !ok || !o.HaveSampling || o.Sampling != tc.want || calls != 1 {
				t.Fatalf("got %+v (calls %d), want %+v", o.Sampling, calls, tc.want)
			}
		})
	}
}

func TestAggregateOptionsDecode(t *testing.T) {
	s := NewSession("test")
	rec := AppendAggregateRecord(nil, 5, "campus-out")
	rec = AppendAggregateRecord(rec, 6, "campus-in")
	msg := optionsMessage(3, AggregateOptionsTemplate(0), rec)
	if _, _, err := s.Decode(msg, nil); err != nil {
		t.Fatal(err)
	}
	o, _ := s.DomainOptions(3)
	if o.Aggregates[5] != "campus-out" || o.Aggregates[6] != "campus-in" || o.HaveSampling {
		t.Fatalf("options %+v", o)
	}
}

// FuzzOptions feeds option templates and records, valid and mangled, to
// the decoder: it must never panic, and an accepted sampling interval is
// never 0.
func FuzzOptions(f *testing.F) {
	be := binary.BigEndian
	f.Add(optionsMessage(1, SamplingOptionsTemplate(), AppendSamplingRecord(nil, 1, Sampling{Interval: 10})))
	f.Add(optionsMessage(1, PSAMPOptionsTemplate(0), AppendPSAMPRecord(nil, 1, Sampling{Interval: 4, Flow: true, SelectorAlgorithm: 6})))
	f.Add(optionsMessage(2, AggregateOptionsTemplate(0), AppendAggregateRecord(nil, 9, "x")))
	f.Add(optionsMessage(1, &Template{ID: 300, ScopeCount: 1, Fields: []Field{{ID: IEObservationDomainID, Length: 4}, {ID: IESamplingPacketInterval, Length: 4}, {ID: IESamplingPacketSpace, Length: 4}}},
		be.AppendUint32(be.AppendUint32(be.AppendUint32(nil, 1), 0), 7)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := NewSession("fuzz")
		s.OnOptions = func(d uint32, o DomainOptions) {
			if o.HaveSampling && o.Sampling.Interval == 0 {
				t.Fatalf("domain %d: interval 0", d)
			}
		}
		s.Decode(msg, nil)
	})
}
