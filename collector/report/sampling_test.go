package report

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
)

// TestStoredSamplingAnnouncements: records without a sampling interval
// of their own take the announcement in force at their end, the first
// one retroactively; a domain of a sampling exporter that announced
// nothing is unknown, unless it is a MIRA probe's (it announced
// names: an unsampled MIRA probe beside a sampled one on the same
// address, whose records are its word that they are not sampled);
// records with their own interval and operator overrides are left
// alone.
func TestStoredSamplingAnnouncements(t *testing.T) {
	at := func(s float64) int64 { return t0.Add(time.Duration(s * 1e9)).UnixNano() }
	flowOf := func(exp string, dom uint32, ends string, stop float64, own uint32) store.StoredFlow {
		r := uf{ends: ends, start: stop - 1, stop: stop, pkts: 10}.record(17, 0)
		r.SamplingPacketInterval = own
		return store.StoredFlow{Origin: store.Origin{Exporter: exp, Domain: dom}, Record: r}
	}
	ann := map[store.Origin][]store.Announcement{
		// Domain 1: 1 in 10 announced when records up to 5s had come,
		// unsampled from 100s.
		{Exporter: "legacy", Domain: 1}: {{Since: at(5), Interval: 10}, {Since: at(100), Interval: 1}},
		// Domain 3: flow selection 1 in 4.
		{Exporter: "legacy", Domain: 3}: {{Since: at(0), Interval: 4, Flow: true}},
		{Exporter: "quiet", Domain: 1}:  {{Since: at(0), Interval: 1}},
	}
	flows := []store.StoredFlow{
		flowOf("legacy", 1, "10.0.0.1:1>10.0.0.2:2", 2, 0),   // before the options: 1 in 10
		flowOf("legacy", 1, "10.0.0.1:3>10.0.0.2:4", 50, 0),  // under them: 1 in 10
		flowOf("legacy", 1, "10.0.0.1:5>10.0.0.2:6", 150, 0), // after "unsampled"
		flowOf("legacy", 1, "10.0.0.1:7>10.0.0.2:8", 50, 3),  // its own interval
		flowOf("legacy", 2, "10.0.0.1:9>10.0.0.2:10", 50, 0), // never announced: unknown
		flowOf("legacy", 3, "10.0.0.1:11>10.0.0.2:12", 50, 0),
		flowOf("quiet", 2, "10.0.0.1:13>10.0.0.2:14", 50, 0),  // exporter does not sample
		flowOf("legacy", 4, "10.0.0.1:15>10.0.0.2:16", 50, 0), // an unsampled MIRA probe
	}
	// Domain 4 is a MIRA probe: it announced its names.
	names := &store.NameIndex{Origins: map[store.Origin][]store.NameAnnouncement{
		{Exporter: "legacy", Domain: 4}: {{Since: at(0), Names: store.Names{Categories: map[uint16]string{1: "Web"}}}},
	}}
	want := map[uint16]struct {
		est     float64
		unknown bool
	}{1: {100, false}, 3: {100, false}, 5: {10, false}, 7: {30, false}, 9: {10, true}, 11: {40, false}, 13: {10, false}, 15: {10, false}}
	rep := Build(flows, Options{Announcements: ann, Names: names})
	if len(rep.Biflows) != len(want) {
		t.Fatalf("%d biflows", len(rep.Biflows))
	}
	for _, b := range rep.Biflows {
		w := want[b.Sport]
		if b.est.Packets != w.est || b.SamplingUnknown != w.unknown {
			t.Errorf("port %d: estimated %v packets, unknown %v; want %v, %v", b.Sport, b.est.Packets, b.SamplingUnknown, w.est, w.unknown)
		}
	}
	if rep.Summary.SamplingUnknown != 1 {
		t.Errorf("summary: %d records of unknown sampling, want 1", rep.Summary.SamplingUnknown)
	}
	// An operator override wins over announcements and unknowns.
	rep = Build(flows, Options{Announcements: ann, Overrides: map[string]consolidate.Override{"legacy": {PacketInterval: 2}}})
	for _, b := range rep.Biflows {
		if b.Sport != 13 && (b.est.Packets != 20 || b.SamplingUnknown) {
			t.Errorf("override: port %d estimated %v packets, unknown %v", b.Sport, b.est.Packets, b.SamplingUnknown)
		}
	}
	if rep.Summary.SamplingUnknown != 0 {
		t.Errorf("override: %d unknown", rep.Summary.SamplingUnknown)
	}
	// mira flows states each record's sampling as the report scales it
	// (it said 1 for every record without an interval of its own).
	wantFlow := map[uint16]struct {
		sampling float64
		unknown  bool
	}{1: {0.1, false}, 3: {0.1, false}, 5: {1, false}, 7: {1.0 / 3, false}, 9: {1, true}, 11: {0.25, false}, 13: {1, false}, 15: {1, false}}
	l := ListFlows(flows, Options{Announcements: ann, Names: names})
	if len(l.Flows) != len(wantFlow) {
		t.Fatalf("%d flows listed", len(l.Flows))
	}
	for _, f := range l.Flows {
		if w := wantFlow[f.Sport]; f.Sampling != w.sampling || f.SamplingUnknown != w.unknown {
			t.Errorf("flow port %d: sampling %v, unknown %v; want %v, %v", f.Sport, f.Sampling, f.SamplingUnknown, w.sampling, w.unknown)
		}
	}
	l = ListFlows(flows, Options{Announcements: ann, Overrides: map[string]consolidate.Override{"legacy": {PacketInterval: 2}}})
	for _, f := range l.Flows {
		if f.Sport != 13 && (f.Sampling != 0.5 || f.SamplingUnknown) {
			t.Errorf("override: flow port %d sampling %v, unknown %v", f.Sport, f.Sampling, f.SamplingUnknown)
		}
	}
	// The rollups count the same records unscaled (one), whether the
	// Roller had the names from the start or was given them later.
	for _, late := range []bool{false, true} {
		r := NewRoller(RollupConfig{Window: DefaultWindow}, names, ann, nil)
		if late {
			r = NewRoller(RollupConfig{Window: DefaultWindow}, nil, ann, nil)
			r.SetNames(names)
		}
		for i := range flows {
			r.Add(flows[i].Origin, &flows[i].Record)
		}
		r.Flush()
		unscaled := uint64(0)
		for k, c := range r.Take().Cells[store.RollupMinute] {
			if k.Kind == store.RollupRecords {
				unscaled += c.Unscaled
			}
		}
		if unscaled != 1 {
			t.Errorf("rollups (names given late: %v): %d records unscaled, want 1", late, unscaled)
		}
	}
}

// TestOverrideUnknownExporter: --sampling for an exporter none of the
// report's records came from is refused, naming it and the exporters
// the records came from (it applied to nothing, silently); one present
// scales its records; a range without records is not refused.
func TestOverrideUnknownExporter(t *testing.T) {
	d := rollupStores[1] // exporters 192.0.2.10 and 192.0.2.11
	d.conns = 50
	s, _ := writeRollupStore(t, d, 2)
	run := func(args ...string) (*Report, error) {
		p := rollupParams(t, append([]string{"--source", "records"}, args...)...)
		return p.Report(context.Background(), s, p.Options(), RollupSource{})
	}
	_, err := run("--sampling", "10.9.9.9=packet:4", "--sampling", "192.0.2.10=packet:2")
	if err == nil || !strings.Contains(err.Error(), `"10.9.9.9"`) || !strings.Contains(err.Error(), "records from: 192.0.2.10, 192.0.2.11") || strings.Contains(err.Error(), `"192.0.2.10"`) {
		t.Fatalf("override of an absent exporter: %v", err)
	}
	plain, err := run()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run("--sampling", "192.0.2.10=packet:2")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.EstimatedPackets <= plain.Summary.EstimatedPackets {
		t.Errorf("override of a present exporter: estimated %d packets, %d without", rep.Summary.EstimatedPackets, plain.Summary.EstimatedPackets)
	}
	if _, err := run("--sampling", "10.9.9.9=packet:4", "--from", "2031-01-01T00:00:00Z"); err != nil {
		t.Errorf("a range without records: %v", err)
	}
}
