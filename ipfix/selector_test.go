package ipfix

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mira-project/mira/flow"
)

// TestSelectorID: one id per pair of intervals (0 and 1 alike), never
// 0, the small pairs one to one and apart from the hashed large ones.
func TestSelectorID(t *testing.T) {
	seen := map[uint32][2]uint32{}
	add := func(p, f uint32) {
		id := SelectorID(p, f)
		k := [2]uint32{max(p, 1), max(f, 1)}
		if id == 0 {
			t.Fatalf("SelectorID(%d, %d) = 0", p, f)
		}
		if o, ok := seen[id]; ok && o != k {
			t.Fatalf("SelectorID(%d, %d) = %d, as for %v", p, f, id, o)
		}
		seen[id] = k
	}
	for p := uint32(0); p < 300; p++ {
		for f := uint32(0); f < 300; f++ {
			add(p, f)
		}
	}
	for _, v := range []uint32{0xffff, 0x10000, 0x7fff, 0x8000, 1 << 20, 1<<32 - 1} {
		for _, w := range []uint32{0, 1, 2, 0x7fff, 0x8000, 1<<32 - 1} {
			add(v, w)
			add(w, v)
		}
	}
	if SelectorID(0, 0) != SelectorID(1, 1) || SelectorID(10, 0) != 1<<16|10 || SelectorID(0, 4) != 4<<16|1 {
		t.Fatalf("SelectorID(0,0) %d, (10,0) %d, (0,4) %d", SelectorID(0, 0), SelectorID(10, 0), SelectorID(0, 4))
	}
	if SelectorID(1<<16, 1)&(1<<31) == 0 || SelectorID(1, 1<<15)&(1<<31) == 0 {
		t.Fatal("large intervals not in the hashed half")
	}
	if SelectorInterval(10, 4) != 40 || SelectorInterval(0, 0) != 1 || SelectorInterval(1<<20, 1<<20) != 1<<32-1 {
		t.Fatal("SelectorInterval")
	}
}

// TestSelectorReports: a selector report (SelectorOptionsTemplate) is
// not the domain's sampling; a record that names a reported selector
// without MIRA's intervals (another exporter's) is scaled by it, one
// naming an unreported selector by the domain's sampling; MIRA's
// records keep their own intervals whatever selector they name; MIRA's
// flow templates, with and without the selectorId, keep the compiled
// lead.
func TestSelectorReports(t *testing.T) {
	s := NewSession("test")
	calls := 0
	s.OnOptions = func(uint32, DomainOptions) { calls++ }
	be := binary.BigEndian
	dom := optionsMessage(1, SamplingOptionsTemplate(), AppendSamplingRecord(nil, 1, Sampling{Interval: 10}))
	if _, _, err := s.Decode(dom, nil); err != nil {
		t.Fatal(err)
	}
	sel := optionsMessage(1, SelectorOptionsTemplate(), AppendSelectorRecord(nil, 1, 77, 40))
	be.PutUint32(sel[8:], 1)
	if _, _, err := s.Decode(sel, nil); err != nil {
		t.Fatal(err)
	}
	o, _ := s.DomainOptions(1)
	if !o.HaveSampling || o.Sampling.Interval != 10 || calls != 1 || s.Stats().SelectorReports != 1 {
		t.Fatalf("domain sampling %+v after a selector report (OnOptions %d, reports %d)", o.Sampling, calls, s.Stats().SelectorReports)
	}
	// Another exporter's flow template: addresses, counters, selectorId.
	tm := &Template{ID: 300, Fields: []Field{
		{ID: IESourceIPv4Address, Length: 4}, {ID: IEDestinationIPv4Address, Length: 4},
		{ID: IEPacketDeltaCount, Length: 8}, {ID: IEOctetDeltaCount, Length: 8}, {ID: IESelectorID, Length: 8},
	}}
	rec := func(id uint64) []byte {
		b := []byte{10, 0, 0, 1, 10, 0, 0, 2}
		b = be.AppendUint64(be.AppendUint64(b, 3), 300)
		return be.AppendUint64(b, id)
	}
	msg := AppendHeader(nil, Header{ExportTime: testExportTime, Sequence: 2, Domain: 1})
	var st int
	msg, st = AppendSetHeader(msg, TemplateSetID)
	msg = AppendTemplate(msg, tm)
	msg = FinishSet(msg, st, 0)
	msg, st = AppendSetHeader(msg, tm.ID)
	msg = append(append(msg, rec(77)...), rec(78)...)
	msg = FinishSet(msg, st, 0)
	FinishMessage(msg)
	out, _, err := s.Decode(msg, nil)
	if err != nil || len(out) != 2 {
		t.Fatalf("%d records, %v", len(out), err)
	}
	if out[0].SamplingPacketInterval != 40 || out[1].SamplingPacketInterval != 10 {
		t.Fatalf("intervals %d (reported selector, want 40) and %d (unreported, want the domain's 10)",
			out[0].SamplingPacketInterval, out[1].SamplingPacketInterval)
	}
	// MIRA's records: their intervals, whatever their selector says.
	e := NewFlowEncoder(0)
	r := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: 17, Sport: 1, Dport: 2},
		Packets: 1, Octets: 60, First: 1e15, Last: 1e15, Direction: 255, ObservationDomain: 1, SamplingPacketInterval: 3}
	m := encodeMessage(e, 1, 4, []flow.Record{r})
	out, _, err = s.Decode(m, nil)
	if err != nil || len(out) != 1 || out[0].SamplingPacketInterval != 3 {
		t.Fatalf("MIRA record: %+v, %v", out, err)
	}
	// The lead, with the selectorId (runMIRASel) and without (a MIRA
	// exporter from before it).
	tmpl, _ := e.Template(&r)
	for _, withSel := range []bool{true, false} {
		var plan []fieldOp
		for _, f := range tmpl.Fields {
			if f.ID == IESelectorID && !withSel {
				continue
			}
			plan = append(plan, fieldOp{s.opFor(f), f.Length})
		}
		fast := compileFast(plan)
		want := uint16(runMIRALen)
		if withSel {
			want = runMIRASelLen
		}
		if !hasLead(fast) || fast[3].length != want {
			t.Fatalf("selectorId %v: compiled %+v, want the lead with a MIRA run of %d bytes", withSel, fast, want)
		}
	}
}
