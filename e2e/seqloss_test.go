package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var gapRE = regexp.MustCompile(`level=WARN msg="records lost between transport sessions[^"]*" exporter=\S+ transport=tcp domain=1 records=(\d+) `)

var unackedRE = regexp.MustCompile(`level=WARN msg="export connection ended without the collector confirming[^"]*" target=\S+ unacknowledged=(\d+) unacknowledged_total=(\d+)`)

// TestCollectorKilledNoSpool: mira-probe exports over TCP without a
// spool; mira-collector is killed with SIGKILL while it holds records it
// has not committed (a reader holds its store) and restarted on the same
// store. What the killed collector had not committed is lost, and the
// ledger must say so exactly: the restarted collector counts the gap
// between the sequence position committed before the kill and the
// probe's first message on its new connection, so stored records plus
// the report's sequence loss equal what the probe exported, the
// restarted collector's /metrics show the same loss, and the probe warns
// that its first connection's records were never confirmed stored.
func TestCollectorKilledNoSpool(t *testing.T) {
	dir := t.TempDir()
	pcap := synthPcap(t, dir, "--flows", "3000", "--seed", "7")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	db := filepath.Join(dir, "flows.db")
	coll := startCollectorOn(t, db, addr)
	// --speed 20: the 126 s capture takes about 6 s, so the kill lands
	// mid-run. Self-regulation is off: each change of it is announced in
	// an options message, whose records take sequence numbers too (RFC
	// 7011), so one sent into the killed connection would count in the
	// gap beside the flow records this test compares.
	cfg := filepath.Join(dir, "probe.yaml")
	y := fmt.Sprintf("pipeline:\n  regulation: {disabled: true}\nexport:\n  - url: tcp://%s\n", addr)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	probe := start(t, bin(t, "mira-probe"), "--config", cfg, "-r", pcap, "--speed", "20", "--domain", "1",
		"--log-level", "info")
	poll(t, 30*time.Second, "the collector to store records", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited before the kill: %v\n%s", probe.err, probe.stderr.String())
		}
		n := coll.metric("mira_collector_stored_records_total")
		return n > 0, fmt.Sprint(n, " records stored")
	})
	// A reader's lock on the store: the collector's commits wait (records
	// kept for the next commit), so what it receives from here on is
	// held uncommitted when it is killed.
	f, err := os.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	stored := coll.metric("mira_collector_stored_records_total")
	poll(t, 30*time.Second, "the collector to receive records it cannot commit", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited before the kill: %v\n%s", probe.err, probe.stderr.String())
		}
		n := coll.metric("mira_collector_records_total")
		return n >= stored+100, fmt.Sprintf("%v received, %v stored", n, stored)
	})
	// The probe is stopped while the collector is down, so that its
	// reconnect finds the restarted one (it would otherwise give up
	// after its retries and count the message as export loss).
	if err := probe.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := coll.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-coll.p.done
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	coll = startCollectorOn(t, db, addr)
	if err := probe.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	probe.wait(t, 120*time.Second)
	m := captureEndedRE.FindStringSubmatch(probe.stderr.String())
	if m == nil {
		t.Fatalf("mira-probe printed no \"capture ended\" line:\n%s", probe.stderr.String())
	}
	sent, _ := strconv.ParseUint(m[3], 10, 64)

	// The restarted collector stored everything of the second connection
	// (committed before it closed its end: the probe has exited).
	metricsLost := coll.metric("mira_collector_lost_records_total")
	metricsSeq := coll.metric(`mira_collector_loss_total{stage="sequence"}`)
	coll.p.terminate(t, 30*time.Second)

	var rep lossReport
	if err := json.Unmarshal(run(t, bin(t, "mira"), "report", "--db", db, "--format", "json", "--limit", "1"), &rep); err != nil {
		t.Fatal(err)
	}
	flows, _ := storedTotals(t, db)
	lost := rep.Summary.Loss["sequence"]
	t.Logf("probe sent %d records; stored %d, sequence loss %d (restarted collector's /metrics: lost %v, loss{sequence} %v)",
		sent, flows, lost, metricsLost, metricsSeq)
	if lost == 0 {
		t.Errorf("the report counts no sequence loss, though the killed collector held uncommitted records")
	}
	if uint64(flows)+lost != sent {
		t.Errorf("stored %d + sequence loss %d = %d, the probe exported %d", flows, lost, uint64(flows)+lost, sent)
	}
	if metricsLost != float64(lost) || metricsSeq != float64(lost) {
		t.Errorf("restarted collector's /metrics: lost_records_total %v, loss_total{sequence} %v; the report says %d",
			metricsLost, metricsSeq, lost)
	}
	if m := gapRE.FindStringSubmatch(coll.p.stderr.String()); m == nil || m[1] != strconv.FormatUint(lost, 10) {
		t.Errorf("the restarted collector did not warn of the %d records lost between sessions:\n%s", lost, coll.p.stderr.String())
	}
	w := unackedRE.FindStringSubmatch(probe.stderr.String())
	if w == nil {
		t.Fatalf("mira-probe did not warn of unacknowledged records:\n%s", probe.stderr.String())
	}
	if n, _ := strconv.ParseUint(w[2], 10, 64); n < lost || n >= sent {
		t.Errorf("the probe says %d records unacknowledged; the collector lost %d of %d", n, lost, sent)
	}
}
