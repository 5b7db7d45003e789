package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/tools/peertest"
)

// TestReexportToNfdump: `mira report --export udp://...` sends the
// consolidated biflows to a real nfcapd; nfdump shows each biflow once,
// with the initiator's counters in and the responder's out, scaled by
// the sampling its record names (1 in 10 for one of them).
func TestReexportToNfdump(t *testing.T) {
	nf := peertest.StartNfcapd(t)
	db := reporttest.DB(t)
	out, err := run(t, reportCmd, "--db", db, "--format", "json", "--export", nf.URL())
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	got := nf.Records(t)
	if len(got) != len(rep.Biflows) {
		t.Fatalf("nfdump shows %d records, the report %d biflows", len(got), len(rep.Biflows))
	}
	type k struct {
		src    string
		sp, dp uint16
	}
	want := map[k]report.Biflow{}
	for _, b := range rep.Biflows {
		want[k{b.Src.String(), b.Sport, b.Dport}] = b
	}
	for _, g := range got {
		sp, dp := g.Ports()
		b, ok := want[k{g.Src4 + g.Src6, sp, dp}]
		if !ok {
			t.Fatalf("nfdump record %+v not in the report", g)
		}
		// Each biflow here was sampled at one rate in both directions
		// (one record each): nfdump scales it by that rate.
		n := uint64(math.Round(1 / b.Sampling))
		if g.InPackets != n*b.Packets || g.InBytes != n*b.Octets || g.OutPackets != n*b.RPackets || g.OutBytes != n*b.ROctets {
			t.Errorf("%s:%d: nfdump in %d/%d out %d/%d, report %d/%d and %d/%d sampled 1 in %d", b.Src, b.Sport,
				g.InPackets, g.InBytes, g.OutPackets, g.OutBytes, b.Packets, b.Octets, b.RPackets, b.ROctets, n)
		}
	}
}

// TestReexportAllFromTable: a table report (the default format, which
// lists the 50 largest biflows) exports every biflow, and its table
// still lists 50 and says how many it left out. Before, --export sent
// only the 50 listed: nfdump showed 50 of 1,772 biflows.
func TestReexportAllFromTable(t *testing.T) {
	nf := peertest.StartNfcapd(t)
	db := manyBiflowsDB(t, 120)
	out, err := run(t, reportCmd, "--db", db, "--export", nf.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got := nf.Records(t); len(got) != 120 {
		t.Fatalf("nfdump shows %d records, want the report's 120 biflows", len(got))
	}
	if rows := strings.Count(out, "<->"); rows != DefaultTableLimit || !strings.Contains(out, "... 70 more biflows not listed (50 of 120 shown;") {
		t.Errorf("table of %d rows:\n%s", rows, out)
	}
}
