package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/tools/peertest"
)

// TestReportMatchesForward: the two consumers of consolidation give the
// same biflows. Real mira-probe processes read 1kxun.pcap (one probe,
// two probes split by direction, two probes seeing everything) into a
// mira-collector that also forwards the biflows it consolidates live
// (collector.yaml forward) to a real nfcapd; the report built afterwards
// from the collector's store (as `mira report` and the HTTP API build
// it) must list exactly the biflows nfdump reads from the forwarded
// stream: same count, same initiator, same forward and reverse counters.
func TestReportMatchesForward(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	for _, tc := range []struct {
		name    string
		configs []string
	}{
		{"one probe", []string{rules}},
		{"split by direction", []string{
			rules + "  scope: {directions: [outgoing, internal]}\n",
			rules + "  scope: {directions: [incoming, transit]}\n",
		}},
		{"same flows seen twice", []string{rules, rules}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := peertest.StartNfcapd(t)
			cfg := filepath.Join(t.TempDir(), "collector.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf("forward: [%s]\n", nf.URL())), 0o644); err != nil {
				t.Fatal(err)
			}
			c := startCollector(t, collBin, "--config", cfg)
			n := runProbes(t, probeBin, pcap, c.port, tc.configs)
			c.waitRecords(t, n)
			c.stop(t)
			fwd := nf.Records(t)

			st, err := store.Open(c.db, &store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rep, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{})
			if err != nil {
				t.Fatal(err)
			}
			type counters = [4]uint64 // packets, octets, rpackets, roctets
			want := map[string][]counters{}
			var wantSum, gotSum counters
			for _, b := range rep.Biflows {
				k := fmt.Sprintf("%s:%d>%s:%d/%d", b.Src, b.Sport, b.Dst, b.Dport, b.Proto)
				v := counters{b.Packets, b.Octets, b.RPackets, b.ROctets}
				want[k] = append(want[k], v)
				for i := range v {
					wantSum[i] += v[i]
				}
			}
			got := map[string][]counters{}
			for i := range fwd {
				r := &fwd[i]
				src, dst, err := r.Endpoints()
				if err != nil {
					t.Fatal(err)
				}
				sp, dp := r.Ports()
				k := fmt.Sprintf("%s:%d>%s:%d/%d", src, sp, dst, dp, r.Proto)
				v := counters{r.InPackets, r.InBytes, r.OutPackets, r.OutBytes}
				got[k] = append(got[k], v)
				for i := range v {
					gotSum[i] += v[i]
				}
			}
			t.Logf("%d records from %d probes: report %d biflows %v (merged %d), forwarded %d biflows %v",
				n, len(tc.configs), len(rep.Biflows), wantSum, rep.Summary.Merged, len(fwd), gotSum)
			if len(fwd) != len(rep.Biflows) || gotSum != wantSum {
				t.Errorf("forwarded %d biflows, totals %v; report %d biflows, totals %v", len(fwd), gotSum, len(rep.Biflows), wantSum)
			}
			cmpC := func(a, b counters) int { return slices.Compare(a[:], b[:]) }
			for k, w := range want {
				g := got[k]
				slices.SortFunc(w, cmpC)
				slices.SortFunc(g, cmpC)
				if !slices.Equal(g, w) {
					t.Errorf("%s: forwarded %v, report %v", k, g, w)
				}
			}
			for k, g := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: forwarded %v, not in the report", k, g)
				}
			}
		})
	}
}
