package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

var regulationChangesRE = regexp.MustCompile(`msg="capture ended" .* regulation_changes=(\d+)`)

// TestOverloadRegulationInReport replays a synthetic trace far faster
// than the probe can meter it (--speed with a small queue, so the
// overload does not depend on the machine) into mira-collector: every
// self-regulation change the probe made, including the first (into
// shedding, announced at rate 1) and those that keep the rate, must be
// in the report's regulation_changes and in the probe's ledger there.
func TestOverloadRegulationInReport(t *testing.T) {
	dir := t.TempDir()
	// Enough packets that the replay outlasts several regulator ticks
	// (20 ms) on an idle machine: 10000 flows were read in 45 ms once,
	// before the regulator had looked twice.
	pcap := synthPcap(t, dir, "--large", "--flows", "60000")
	cfg := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(cfg, []byte("pipeline: {speed: 100000, queue_batches: 4}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	coll := startCollector(t, false, true)
	_, stderr := runErr(t, bin(t, "mira-probe"), "--log-level", "info", "--config", cfg, "-r", pcap, "--export", "tcp://"+coll.tcp)
	m := regulationChangesRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no regulation_changes in mira-probe's last line:\n%s", stderr)
	}
	changes, _ := strconv.Atoi(m[1])
	if changes == 0 {
		t.Fatalf("the probe did not regulate at --speed 100000 with 4 queue batches:\n%s", stderr)
	}
	coll.p.terminate(t, 30*time.Second)
	var rep struct {
		Summary struct {
			RegulationChanges    int               `json:"regulation_changes"`
			QueueLossScaled      uint64            `json:"queue_loss_scaled"`
			Loss                 map[string]uint64 `json:"loss"`
			Packets              uint64            `json:"packets"`
			EstimatedPackets     uint64            `json:"estimated_packets"`
			EstimatedPacketsLow  uint64            `json:"estimated_packets_low"`
			EstimatedPacketsHigh uint64            `json:"estimated_packets_high"`
			Ledgers              []struct {
				RegulationChanges int `json:"regulation_changes"`
			} `json:"ledgers"`
		} `json:"summary"`
	}
	out := run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json", "--limit", "1")
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("mira report: %v\n%s", err, out)
	}
	s := rep.Summary
	if s.RegulationChanges != changes || len(s.Ledgers) != 1 || s.Ledgers[0].RegulationChanges != changes {
		t.Fatalf("report: %d regulation changes, ledgers %+v; the probe made %d", s.RegulationChanges, s.Ledgers, changes)
	}
	if s.QueueLossScaled < s.Loss["queue"] {
		t.Errorf("queue losses as packets of the wire (%d) below the packets dropped (%d)", s.QueueLossScaled, s.Loss["queue"])
	}
	t.Logf("metered %d, estimate %d [%d, %d], loss %v, queue loss scaled %d", s.Packets, s.EstimatedPackets,
		s.EstimatedPacketsLow, s.EstimatedPacketsHigh, s.Loss, s.QueueLossScaled)
	table := string(run(t, bin(t, "mira"), "report", "--db", coll.db, "--limit", "1"))
	if want := "Regulation: " + strconv.Itoa(changes) + " "; !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(table) {
		t.Fatalf("the report's table does not say %q:\n%s", want, table)
	}
}
