package ipfix

import (
	"encoding/binary"
	"math"
	"testing"
)

// optionsMessage builds a message with the given options template and one
// record of it.
func optionsMessage(domain uint32, t *Template, rec []byte) []byte {
	b := AppendHeader(nil, Header{ExportTime: testExportTime, Domain: domain})
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
		// RFC 5477 hash ranges alone say flow selection and give the
		// probability: 2^16 of 2^24 outputs is 1 in 256.
		{"hash ranges", []Field{f(IEObservationDomainID, 4), f(IEHashOutputRangeMin, 8), f(IEHashOutputRangeMax, 4), f(IEHashSelectedRangeMin, 8), f(IEHashSelectedRangeMax, 8)},
			u64s(be.AppendUint32(u64s(be.AppendUint32(nil, 1), 0), 1<<24-1), 0, 1<<16-1),
			Sampling{Interval: 256, Flow: true, Hash: HashSelection{OutputMax: 1<<24 - 1, SelectedMax: 1<<16 - 1}}},
		// The ranges win over samplingProbability and MIRA's flow interval.
		{"hash ranges first", []Field{f(IEObservationDomainID, 4), f(IESelectorAlgorithm, 2), f(IESamplingProbability, 8), f(IEHashOutputRangeMin, 8), f(IEHashOutputRangeMax, 8), f(IEHashSelectedRangeMin, 8), f(IEHashSelectedRangeMax, 8), f(IEHashInitialiserValue, 8)},
			u64s(be.AppendUint16(be.AppendUint32(nil, 1), 6), math.Float64bits(0.5), 100, 1099, 600, 609, 42),
			Sampling{Interval: 100, Flow: true, SelectorAlgorithm: 6, Hash: HashSelection{Initialiser: 42, OutputMin: 100, OutputMax: 1099, SelectedMin: 600, SelectedMax: 609}}},
		// A selected range outside the output range is ignored.
		{"bad hash ranges", []Field{f(IEObservationDomainID, 4), f(IESelectorAlgorithm, 2), f(IESamplingProbability, 8), f(IEHashOutputRangeMin, 8), f(IEHashOutputRangeMax, 8), f(IEHashSelectedRangeMin, 8), f(IEHashSelectedRangeMax, 8)},
			u64s(be.AppendUint16(be.AppendUint32(nil, 1), 6), math.Float64bits(0.25), 0, 99, 50, 100),
			Sampling{Interval: 4, Flow: true, SelectorAlgorithm: 6}},
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

func u64s(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// TestPSAMPHashRoundTrip encodes hash-based selection with
// PSAMPTemplate and decodes it: the Sampling comes back whole, and the
// record's samplingProbability is the ranges' exact share.
func TestPSAMPHashRoundTrip(t *testing.T) {
	for _, n := range []uint32{2, 3, 10, 1000} {
		sel := (uint64(1)<<32 + uint64(n)/2) / uint64(n)
		smp := Sampling{Interval: n, Flow: true, SelectorAlgorithm: 6, LegacyAlgorithm: 2,
			Hash: HashSelection{Initialiser: 7, OutputMax: 1<<32 - 1, SelectedMax: sel - 1}}
		tm := PSAMPTemplate(0, smp)
		if tm.ID != PSAMPHashOptionsTemplateID || len(tm.Fields) != 9 {
			t.Fatalf("template %d with %d fields", tm.ID, len(tm.Fields))
		}
		rec := AppendPSAMPRecord(nil, 5, smp)
		if p := math.Float64frombits(binary.BigEndian.Uint64(rec[6:])); p != float64(sel)/(1<<32) {
			t.Fatalf("1 in %d: samplingProbability %v, want %v", n, p, float64(sel)/(1<<32))
		}
		s := NewSession("test")
		if _, _, err := s.Decode(optionsMessage(5, tm, rec), nil); err != nil {
			t.Fatal(err)
		}
		o, _ := s.DomainOptions(5)
		want := smp
		want.LegacyAlgorithm = 0 // not in the PSAMP record
		if !o.HaveSampling || o.Sampling != want || o.Sampling.SelectionProbability() != float64(sel)/(1<<32) {
			t.Fatalf("1 in %d: decoded %+v, want %+v", n, o.Sampling, want)
		}
	}
	// Without valid hash parameters the plain PSAMP template is used.
	if tm := PSAMPTemplate(0, Sampling{Interval: 4, Flow: true, SelectorAlgorithm: 6}); tm.ID != PSAMPOptionsTemplateID {
		t.Fatalf("template %d for flow selection without hash parameters", tm.ID)
	}
}

// TestHashResendQuiet: for 1 in 10^6 the selected range (4295 of 2^32
// outputs) is 1/999993; the domain keeps the stated interval, so the
// bare samplingInterval record that precedes each PSAMP record agrees
// with it, and resending both changes nothing (no OnOptions call).
func TestHashResendQuiet(t *testing.T) {
	const n = 1000000
	smp := Sampling{Interval: n, Flow: true, SelectorAlgorithm: 6,
		Hash: HashSelection{OutputMax: 1<<32 - 1, SelectedMax: 4294}}
	s := NewSession("test")
	var got []Sampling
	s.OnOptions = func(d uint32, o DomainOptions) { got = append(got, o.Sampling) }
	for round := 0; round < 3; round++ {
		for _, m := range [][]byte{
			optionsMessage(1, SamplingOptionsTemplate(), AppendSamplingRecord(nil, 1, smp)),
			optionsMessage(1, PSAMPTemplate(0, smp), AppendPSAMPRecord(nil, 1, smp)),
		} {
			if _, _, err := s.Decode(m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(got) != 2 || got[1] != smp || got[1].SelectionProbability() != 4295.0/(1<<32) {
		t.Fatalf("OnOptions calls %+v, want 2 ending with %+v", got, smp)
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
// the decoder: it must never panic, and an accepted sampling interval
// (a domain's or a selector's) is never 0.
func FuzzOptions(f *testing.F) {
	be := binary.BigEndian
	f.Add(optionsMessage(1, SamplingOptionsTemplate(), AppendSamplingRecord(nil, 1, Sampling{Interval: 10})))
	f.Add(optionsMessage(1, PSAMPOptionsTemplate(0), AppendPSAMPRecord(nil, 1, Sampling{Interval: 4, Flow: true, SelectorAlgorithm: 6})))
	hs := Sampling{Interval: 3, Flow: true, SelectorAlgorithm: 6, Hash: HashSelection{OutputMax: 1<<32 - 1, SelectedMax: 1431655764}}
	f.Add(optionsMessage(1, PSAMPTemplate(0, hs), AppendPSAMPRecord(nil, 1, hs)))
	f.Add(optionsMessage(2, AggregateOptionsTemplate(0), AppendAggregateRecord(nil, 9, "x")))
	f.Add(optionsMessage(1, &Template{ID: 300, ScopeCount: 1, Fields: []Field{{ID: IEObservationDomainID, Length: 4}, {ID: IESamplingPacketInterval, Length: 4}, {ID: IESamplingPacketSpace, Length: 4}}},
		be.AppendUint32(be.AppendUint32(be.AppendUint32(nil, 1), 0), 7)))
	f.Add(optionsMessage(1, SelectorOptionsTemplate(), AppendSelectorRecord(nil, 1, SelectorID(10, 4), 40)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := NewSession("fuzz")
		defer func() {
			// Selector reports: kept within bounds, never of interval 0.
			for d, ds := range s.domains {
				if len(ds.selectors) > maxSelectors {
					t.Fatalf("domain %d: %d selectors", d, len(ds.selectors))
				}
				for id, smp := range ds.selectors {
					if smp.Interval == 0 {
						t.Fatalf("domain %d: selector %d of interval 0", d, id)
					}
				}
			}
		}()
		s.OnOptions = func(d uint32, o DomainOptions) {
			if o.HaveSampling && o.Sampling.Interval == 0 {
				t.Fatalf("domain %d: interval 0", d)
			}
			if p := o.Sampling.SelectionProbability(); o.HaveSampling && !(p > 0 && p <= 1) {
				t.Fatalf("domain %d: selection probability %v from %+v", d, p, o.Sampling)
			}
		}
		s.Decode(msg, nil)
	})
}

// TestNamesOncePerMessage: a message naming many symptoms hands the
// domain's options over once (not once per record, which copied the
// names map per record), names are cut at 254 bytes, and the maps handed
// over are not changed by later messages.
func TestNamesOncePerMessage(t *testing.T) {
	var calls int
	var got []DomainOptions
	s := NewSession("t")
	s.OnOptions = func(d uint32, o DomainOptions) { calls++; got = append(got, o) }
	var rec []byte
	for id := uint16(1); id <= 500; id++ {
		rec = AppendNameRecord(rec, id, "S"+string(rune('A'+id%26)))
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	rec = append(rec, 0x02, 0x01, 0xff) // id 513, 3-byte length prefix
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(long)))
	rec = append(rec, long...)
	if _, _, err := s.Decode(optionsMessage(1, SymptomOptionsTemplate(0), rec), nil); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(got[0].Symptoms) != 501 || len(got[0].Symptoms[513]) != 254 {
		t.Fatalf("%d calls, %d names, name 513 of %d bytes", calls, len(got[0].Symptoms), len(got[0].Symptoms[513]))
	}
	if _, _, err := s.Decode(optionsMessage(1, SymptomOptionsTemplate(0), AppendNameRecord(nil, 1, "NEW")), nil); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || got[0].Symptoms[1] == "NEW" || got[1].Symptoms[1] != "NEW" {
		t.Fatalf("%d calls; first map says %q, second %q", calls, got[0].Symptoms[1], got[1].Symptoms[1])
	}
}
