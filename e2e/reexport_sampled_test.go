package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// TestReexportSampledTotals: sampled probes (examples/out.yaml, 1 packet
// in 4 at random, beside an incoming probe counting 1 in 10, or
// unsampled) export to mira-collector, which forwards its biflows
// (collector.yaml forward:) to one nfcapd, and `mira report --export`
// sends the store's to another: each nfdump's packets and bytes, in and
// out, scaled by the sampling the records state, equal the report's
// estimated packets and octets. Before, the re-export sent the observed
// counters with no sampling: nfdump showed 10,813 packets where the
// report estimated 65,836.
func TestReexportSampledTotals(t *testing.T) {
	peertest.Program(t, "nfdump")
	dir := t.TempDir()
	// Enough connections for the forward's UDP export to resend its
	// templates and selectors (every 20 messages).
	pcap := synthPcap(t, dir, "--flows", "4000")
	out, err := os.ReadFile(filepath.Join("..", "examples", "out.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(filepath.Join("..", "examples", "in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	flowOut := strings.Replace(string(out), "sampling: {mode: random, interval: 4, seed: 1}", "sampling: {mode: flow, interval: 3, seed: 7}", 1)
	if flowOut == string(out) {
		t.Fatal("examples/out.yaml does not sample 1 in 4 at random any more")
	}
	for _, tc := range []struct {
		name, out, in string
		// oneRate: both directions of every biflow at one rate, one
		// record each.
		oneRate bool
	}{
		{"in 1 in 10", string(out), string(in) + "sampling: {mode: count, interval: 10}\n", false},
		{"in unsampled", string(out), string(in), false},
		// Connections kept 1 in 3 by both probes (one seed): nfdump
		// scales the packets and bytes, not its count of flows (the
		// report estimates 3 biflows for each kept one).
		{"flow sampled", flowOut, string(in) + "sampling: {mode: flow, interval: 3, seed: 7}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			outCfg, inCfg := filepath.Join(dir, "out.yaml"), filepath.Join(dir, "in.yaml")
			if err := os.WriteFile(outCfg, []byte(tc.out), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(inCfg, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			fwd := peertest.StartNfcapd(t)
			exp := peertest.StartNfcapd(t)
			collCfg := filepath.Join(dir, "collector.yaml")
			if err := os.WriteFile(collCfg, []byte(fmt.Sprintf("forward: [%q]\n", fwd.URL())), 0o644); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "flows.db")
			coll := start(t, bin(t, "mira-collector"), "--config", collCfg, "--db", db, "--listen", "tcp://127.0.0.1:0", "--log-level", "info")
			var addr string
			poll(t, 10*time.Second, "mira-collector to listen", func() (bool, string) {
				if coll.exited() {
					t.Fatalf("mira-collector exited: %v\n%s", coll.err, coll.stderr.String())
				}
				m := listeningRE.FindStringSubmatch(coll.stderr.String())
				if m == nil {
					return false, coll.stderr.String()
				}
				addr = m[2]
				return true, ""
			})
			runProbe(t, "--config", outCfg, "--domain", "1", "-r", pcap, "--export", "tcp://"+addr)
			runProbe(t, "--config", inCfg, "--domain", "2", "-r", pcap, "--export", "tcp://"+addr)
			coll.terminate(t, 30*time.Second)
			var rep struct {
				Summary struct {
					Biflows          uint64 `json:"biflows"`
					Packets          uint64 `json:"packets"`
					EstimatedPackets uint64 `json:"estimated_packets"`
					EstimatedOctets  uint64 `json:"estimated_octets"`
				} `json:"summary"`
			}
			b := run(t, bin(t, "mira"), "report", "--db", db, "--format", "json", "--export", exp.URL())
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatalf("mira report: %v\n%s", err, b)
			}
			s := rep.Summary
			// An operator's override (--sampling) is what the records
			// then state: 1 in 3 packets for both probes.
			ovr := peertest.StartNfcapd(t)
			var repO struct {
				Summary struct {
					EstimatedPackets uint64 `json:"estimated_packets"`
					EstimatedOctets  uint64 `json:"estimated_octets"`
				} `json:"summary"`
			}
			b = run(t, bin(t, "mira"), "report", "--db", db, "--format", "json", "--sampling", "127.0.0.1=packet:3", "--export", ovr.URL())
			if err := json.Unmarshal(b, &repO); err != nil {
				t.Fatalf("mira report --sampling: %v\n%s", err, b)
			}
			for _, x := range []struct {
				what     string
				nf       *peertest.Nfcapd
				pkt, oct uint64
			}{{"mira report --export", exp, s.EstimatedPackets, s.EstimatedOctets}, {"collector forward", fwd, s.EstimatedPackets, s.EstimatedOctets},
				{"mira report --sampling 127.0.0.1=packet:3 --export", ovr, repO.Summary.EstimatedPackets, repO.Summary.EstimatedOctets}} {
				recs := x.nf.Records(t)
				var pk, oc uint64
				for _, r := range recs {
					pk += r.InPackets + r.OutPackets
					oc += r.InBytes + r.OutBytes
				}
				t.Logf("%s: nfdump %d records, %d packets %d bytes; report %d biflows, %d packets observed, estimate %d packets %d bytes",
					x.what, len(recs), pk, oc, s.Biflows, s.Packets, x.pkt, x.oct)
				if tc.oneRate && uint64(len(recs)) != s.Biflows {
					t.Errorf("%s: nfdump shows %d records of %d biflows, each sampled at one rate", x.what, len(recs), s.Biflows)
				}
				if uint64(len(recs)) < s.Biflows {
					t.Errorf("%s: nfdump shows %d records, fewer than the report's %d biflows", x.what, len(recs), s.Biflows)
				}
				if pk != x.pkt || oc != x.oct {
					t.Errorf("%s: nfdump totals %d packets %d bytes, the report's estimate %d and %d (%+.2f %% packets)",
						x.what, pk, oc, x.pkt, x.oct, 100*(float64(pk)/float64(x.pkt)-1))
				}
			}
		})
	}
}
