package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

var (
	cleanExporter   = netip.MustParseAddrPort("192.0.2.2:4739")
	garbageExporter = netip.MustParseAddrPort("192.0.2.1:4739")
)

func exportStream(t testing.TB, cfg *exporter.Config, recs []flow.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, cfg)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ingest runs the collector's decode → batch → store path over streams
// (one per exporter), saves its counters as Run does, and returns the
// store, open.
func ingest(t testing.TB, streams map[netip.AddrPort][]byte) *store.Store {
	t.Helper()
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = filepath.Join(t.TempDir(), "f.db")
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := store.Open(cfg.DB, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.st = st
	s.coll = collector.New(s, nil)
	for _, a := range []netip.AddrPort{garbageExporter, cleanExporter} {
		if b, ok := streams[a]; ok {
			s.coll.ServeStream(context.Background(), bytes.NewReader(b), collector.Origin{Exporter: a, Transport: "file"})
		}
	}
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	if err := st.AddStats(statsDelta(collector.Stats{}, s.coll.Stats())); err != nil {
		t.Fatal(err)
	}
	return st
}

// cleanStream is the well-behaved exporter's input: random records, some
// sampled, with names.
func cleanStream(t testing.TB) []byte {
	recs := ipfixtest.Random(5, 60)
	return exportStream(t, &exporter.Config{SymptomNames: map[uint16]string{1: "MAIL", 2: "WEB"}}, recs)
}

// implausibleMessage is well-formed IPFIX whose records would wreck a
// report: octets far beyond packets × 65535, packet counts near 2^64,
// times beyond int64 ns (1677 and 2246 in reports), an end after the
// export, an end before its start.
func implausibleMessage(export uint32) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: export, Domain: 1})
	b, s := ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
	b = ipfix.AppendTemplate(b, &ipfix.Template{ID: 256, Fields: []ipfix.Field{
		{ID: ipfix.IESourceIPv4Address, Length: 4}, {ID: ipfix.IEDestinationIPv4Address, Length: 4},
		{ID: ipfix.IEProtocolIdentifier, Length: 1},
		{ID: ipfix.IEPacketDeltaCount, Length: 8}, {ID: ipfix.IEOctetDeltaCount, Length: 8},
		{ID: ipfix.IEFlowStartMilliseconds, Length: 8}, {ID: ipfix.IEFlowEndMilliseconds, Length: 8},
	}})
	b = ipfix.FinishSet(b, s, 0)
	b, s = ipfix.AppendSetHeader(b, 256)
	now := uint64(export) * 1000
	for i, r := range []struct{ pkts, octs, first, last uint64 }{
		{10, 1 << 50, now - 1000, now},                            // octets
		{math.MaxUint64 - 5, math.MaxUint64 - 5, now - 1000, now}, // counts
		{10, 1000, 1 << 62, 1<<62 + 10},                           // 2246 and beyond int64 ns
		{10, 1000, now, now + 2*3600*1000},                        // ends 2 h after its export
		{10, 1000, now, now - 1000},                               // end before start
		{10, 1000, now - 1000, now},                               // plausible
	} {
		b = append(b, 10, 9, 9, byte(i), 10, 9, 9, 99, 17)
		for _, v := range []uint64{r.pkts, r.octs, r.first, r.last} {
			b = binary.BigEndian.AppendUint64(b, v)
		}
	}
	b = ipfix.FinishSet(b, s, 0)
	ipfix.FinishMessage(b)
	return b
}

// TestImplausibleRejected: implausible records are dropped, counted by
// reason in the report summary, and the plausible one is kept.
func TestImplausibleRejected(t *testing.T) {
	st := ingest(t, map[netip.AddrPort][]byte{garbageExporter: implausibleMessage(uint32(time.Now().Unix()))})
	rep, err := report.FromStore(st, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"implausible-octets": 1, "implausible-count": 1, "implausible-time": 3}
	if !reflect.DeepEqual(rep.Summary.Malformed, want) || rep.Summary.Flows != 1 || rep.Summary.Octets != 1000 {
		t.Errorf("summary flows %d octets %d malformed %v, want 1 1000 %v",
			rep.Summary.Flows, rep.Summary.Octets, rep.Summary.Malformed, want)
	}
	checkReport(t, rep)
}

// checkReport checks the invariants of a report over any input: sums
// that never wrap, estimate intervals that hold their estimates, a
// plausible time window.
func checkReport(t *testing.T, rep *report.Report) {
	t.Helper()
	s := &rep.Summary
	var pk, oc uint64
	for _, u := range rep.Usage {
		pk, oc = satAdd(pk, u.Packets), satAdd(oc, u.Octets)
		checkEstimate(t, "usage row", u.Estimate, u.Packets, u.Octets)
		if u.EstimatedOctets < u.Octets {
			t.Errorf("usage row estimated octets %d below observed %d", u.EstimatedOctets, u.Octets)
		}
	}
	if pk != s.Packets || oc != s.Octets {
		t.Errorf("usage rows sum to %d packets %d octets, summary says %d %d", pk, oc, s.Packets, s.Octets)
	}
	for _, b := range rep.Biflows {
		if satAdd(b.Packets, b.RPackets) > s.Packets || satAdd(b.Octets, b.ROctets) > s.Octets {
			t.Errorf("biflow %v has more than the summary: a sum wrapped", b)
		}
		if b.First > b.Last {
			t.Errorf("biflow %v ends before it starts", b)
		}
	}
	checkEstimate(t, "summary", s.Estimate, s.Packets, s.Octets)
	if s.EstimatedOctets < s.Octets {
		t.Errorf("summary estimated octets %d below observed %d", s.EstimatedOctets, s.Octets)
	}
	lo, hi := report.Timestamp(0), report.Timestamp(math.MaxUint32*1e9+int64(ipfix.MaxClockSkew))
	if s.First != nil && (*s.First < lo || *s.Last > hi || *s.First > *s.Last) {
		t.Errorf("time window %v – %v", *s.First, *s.Last)
	}
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return math.MaxUint64
	}
	return a + b
}

func checkEstimate(t *testing.T, what string, e *report.Estimate, packets, octets uint64) {
	t.Helper()
	if e == nil {
		return
	}
	if !(e.PacketsLow <= e.Packets && e.Packets <= e.PacketsHigh && e.OctetsLow <= e.Octets && e.Octets <= e.OctetsHigh &&
		e.BiflowsLow <= e.Biflows && e.Biflows <= e.BiflowsHigh) {
		t.Errorf("%s: estimate intervals out of order: %+v", what, *e)
	}
	if e.PacketsLow < packets || e.OctetsLow < octets {
		t.Errorf("%s: interval below what was observed (%d packets, %d octets): %+v", what, packets, octets, *e)
	}
}

// FuzzPipeline runs arbitrary input from one exporter beside a clean
// exporter through decode → store → report: the report's sums never
// wrap, its intervals hold their estimates, its time window is one an
// export time can explain, and the clean exporter's flows, names and
// figures are exactly what they are without the other's input.
func FuzzPipeline(f *testing.F) {
	clean := cleanStream(f)
	f.Add(clean)
	f.Add(implausibleMessage(uint32(time.Now().Unix())))
	f.Add(exportStream(f, &exporter.Config{SymptomNames: map[uint16]string{1: "FDP", 2: "TNS"}}, ipfixtest.Random(9, 20)))
	base := ingest(f, map[netip.AddrPort][]byte{cleanExporter: clean})
	onlyClean := store.Query{Exporter: cleanExporter.Addr().String()}
	want, err := report.FlowsFromStore(context.Background(), base, onlyClean, report.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st := ingest(t, map[netip.AddrPort][]byte{garbageExporter: b, cleanExporter: clean})
		rep, err := report.FromStore(st, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep)
		got, err := report.FlowsFromStore(context.Background(), st, onlyClean, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got.Summary.StoreErrors, want.Summary.StoreErrors = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("the clean exporter's flows changed with the other's input")
		}
	})
}

// TestIngestKeepsScannedOctets: records' scanned octets go through the
// collector's IPFIX decode, batch and store path unchanged (0 where the
// exporter sent none: the template without the element).
func TestIngestKeepsScannedOctets(t *testing.T) {
	recs := ipfixtest.Random(7, 300)
	var want []string
	var sum uint64
	for i := range recs {
		r := &recs[i]
		if i%3 != 0 {
			r.ScannedOctets = r.InnerOctets/2 + uint64(i) // most of the payload, as a scan that stopped early
		}
		sum += r.ScannedOctets
		want = append(want, fmt.Sprintf("%v %v %d %d %d", r.Src, r.Dst, r.Proto, r.Octets, r.ScannedOctets))
	}
	st := ingest(t, map[netip.AddrPort][]byte{cleanExporter: exportStream(t, nil, recs)})
	l, err := report.FlowsFromStore(context.Background(), st, store.Query{}, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range l.Flows {
		got = append(got, fmt.Sprintf("%v %v %d %d %d", f.Src, f.Dst, f.Proto, f.Octets, f.ScannedOctets))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || l.Summary.ScannedOctets != sum || sum == 0 {
		t.Fatalf("stored %d flows, scanned octets sum %d, want %d records summing %d; first differences:\n%v\n%v",
			len(got), l.Summary.ScannedOctets, len(want), sum, got[:min(5, len(got))], want[:min(5, len(want))])
	}
}
