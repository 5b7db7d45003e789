package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// TestNfdumpRegulatedTotals replays a trace far faster than the probe can
// meter it (as TestOverloadRegulationInReport), so that self-regulation
// changes its rate while records of the old one are still being
// exported, into nfcapd (live over UDP, and from the probe's file
// export) and mira-collector at once: nfdump's totals,
// each record scaled by the sampler its selectorId names, must equal the
// report's estimated packets and octets (each record scaled by its own
// intervals). Before records named their rate nfdump scaled them all by
// the rate announced last.
func TestNfdumpRegulatedTotals(t *testing.T) {
	peertest.Program(t, "nfdump")
	dir := t.TempDir()
	pcap := synthPcap(t, dir, "--large", "--flows", "60000")
	cfg := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(cfg, []byte("pipeline: {speed: 100000, queue_batches: 4}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nf := peertest.StartNfcapd(t)
	live := peertest.StartNfcapd(t)
	coll := startCollector(t, false, true)
	// Two nfcapd: one gets the export live over UDP (paced by its
	// socket's queue; templates and options resent every 20 messages),
	// the other the messages a stream carries, from a file the probe
	// writes, fed to it at its pace.
	fileDir := filepath.Join(dir, "export")
	if err := os.Mkdir(fileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, stderr := runErr(t, bin(t, "mira-probe"), "--log-level", "info", "--config", cfg, "-r", pcap,
		"--export", "file://"+fileDir, "--export", live.URL(), "--export", "tcp://"+coll.tcp)
	m := regulationChangesRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no regulation_changes in mira-probe's last line:\n%s", stderr)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatalf("the probe did not regulate:\n%s", stderr)
	}
	coll.p.terminate(t, 30*time.Second)
	var rep struct {
		Summary struct {
			Flows            uint64 `json:"flows"`
			Packets          uint64 `json:"packets"`
			Octets           uint64 `json:"octets"`
			EstimatedPackets uint64 `json:"estimated_packets"`
			EstimatedOctets  uint64 `json:"estimated_octets"`
		} `json:"summary"`
	}
	out := run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json", "--limit", "1")
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("mira report: %v\n%s", err, out)
	}
	s := rep.Summary
	// The flows' intervals, as mira flows lists them: the rates in use.
	var fl struct {
		Flows []struct {
			Sampling float64 `json:"sampling"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(run(t, bin(t, "mira"), "flows", "--db", coll.db, "--format", "json"), &fl); err != nil {
		t.Fatal(err)
	}
	rates := map[int64]int{}
	for _, f := range fl.Flows {
		rates[int64(math.Round(1/f.Sampling))]++
	}
	feedNfcapd(t, nf, fileDir)
	recs := nf.Records(t)
	var pk, oc uint64
	for _, r := range recs {
		pk += r.InPackets
		oc += r.InBytes
	}
	t.Logf("%d records (%d in the store) at rates %v: nfdump %d packets %d bytes, report estimate %d packets %d bytes (%+.2f %% packets), metered %d packets",
		len(recs), s.Flows, rates, pk, oc, s.EstimatedPackets, s.EstimatedOctets, 100*(float64(pk)/float64(s.EstimatedPackets)-1), s.Packets)
	if len(rates) < 2 {
		t.Skipf("the replay's records carry one rate (%v): nothing to compare", rates)
	}
	if uint64(len(recs)) != s.Flows {
		t.Fatalf("nfdump shows %d records, the report %d flows", len(recs), s.Flows)
	}
	if pk != s.EstimatedPackets || oc != s.EstimatedOctets {
		t.Fatalf("nfdump totals %d packets %d bytes, the report's estimate %d and %d", pk, oc, s.EstimatedPackets, s.EstimatedOctets)
	}
	lr := live.Records(t)
	var lpk, loc uint64
	for _, r := range lr {
		lpk += r.InPackets
		loc += r.InBytes
	}
	t.Logf("live over UDP: nfdump %d records, %d packets %d bytes", len(lr), lpk, loc)
	if uint64(len(lr)) != s.Flows || lpk != s.EstimatedPackets || loc != s.EstimatedOctets {
		t.Fatalf("nfdump of the live UDP export: %d records, %d packets %d bytes; the report: %d flows, estimate %d and %d",
			len(lr), lpk, loc, s.Flows, s.EstimatedPackets, s.EstimatedOctets)
	}
}

// feedNfcapd sends the IPFIX messages of the RFC 5655 files in dir, in
// name order, to nf, a few at a time, each few read by nfcapd before the
// next go.
func feedNfcapd(t *testing.T, nf *peertest.Nfcapd, dir string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no export files in %s: %v", dir, err)
	}
	slices.Sort(names)
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", nf.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := 0
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 4 {
			l := int(binary.BigEndian.Uint16(b[2:]))
			if l < 16 || l > len(b) {
				t.Fatalf("%s: not framed at %d", name, len(b))
			}
			if _, err := conn.Write(b[:l]); err != nil {
				t.Fatal(err)
			}
			b = b[l:]
			if sent++; sent%8 == 0 {
				peertest.WaitUntil(t, 20*time.Second, "nfcapd to read its socket", func() bool {
					q, ok := peertest.UDPQueue(nf.Port)
					return ok && q == 0
				})
			}
		}
	}
	t.Logf("%d messages from %d files sent to nfcapd", sent, len(names))
}
