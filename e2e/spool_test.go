package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startCollectorOn starts mira-collector with store db listening on TCP
// addr (fixed, so that a restarted collector is found again by a probe).
func startCollectorOn(t *testing.T, db, addr string) *collectorProc {
	t.Helper()
	c := &collectorProc{db: db, tcp: addr, metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))}
	c.p = start(t, bin(t, "mira-collector"), "--db", db, "--metrics", c.metrics, "--log-level", "info", "--listen", "tcp://"+addr)
	poll(t, 10*time.Second, "mira-collector to listen", func() (bool, string) {
		if c.p.exited() {
			t.Fatalf("mira-collector exited: %v\nstderr:\n%s", c.p.err, c.p.stderr.String())
		}
		if !listeningRE.MatchString(c.p.stderr.String()) {
			return false, "no listening line"
		}
		_, err := c.scrape()
		return err == nil, fmt.Sprint("metrics: ", err)
	})
	return c
}

// metric reads one sample of c's /metrics (0 when absent).
func (c *collectorProc) metric(name string) float64 {
	m, err := c.scrape()
	if err != nil {
		return 0
	}
	return m[name]
}

// probeMetric reads one sample of a probe's /metrics.
func probeMetric(addr, name string) (float64, error) {
	c := collectorProc{metrics: addr}
	m, err := c.scrape()
	if err != nil {
		return 0, err
	}
	return m[name], nil
}

// spoolConfig writes a probe.yaml exporting to tcp://addr with a spool
// in dir.
func spoolConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	cfg := filepath.Join(dir, "probe.yaml")
	y := fmt.Sprintf("export:\n  - url: tcp://%s\n    spool: {dir: %s, max_bytes: 268435456, window: 30s}\n", addr, filepath.Join(dir, "spool"))
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// storedTotals reports the flows and packets a store holds.
func storedTotals(t *testing.T, db string) (flows int, packets uint64) {
	t.Helper()
	rep := parseReport(t, "mira report", run(t, bin(t, "mira"), "report", "--db", db, "--format", "json", "--limit", "1"))
	return rep.Summary.Flows, rep.Summary.Packets
}

// TestSpoolCollectorOutage: the collector is down when the export starts;
// it is started once the probe has spooled records, killed with SIGKILL
// while the probe replays (before the probe knows its records stored), and
// restarted on the same store. The store then holds exactly what a clean
// run gives, and mira-probe -r exits 0.
func TestSpoolCollectorOutage(t *testing.T) {
	dir := t.TempDir()
	// About 200k records: more than the sockets between probe and
	// collector hold. Writing and analysing 1.2 GB takes a while on a
	// busy machine: no 60 s limit here.
	pcap := filepath.Join(dir, "synth.pcap")
	start(t, bin(t, "mira"), "synth", "-o", pcap, "--flows", "100000").wait(t, 10*time.Minute)
	ap := start(t, bin(t, "mira"), "analyze", "--format", "json", pcap)
	ap.wait(t, 10*time.Minute)
	an := parseReport(t, "mira analyze", []byte(ap.stdout.String()))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	db := filepath.Join(dir, "flows.db")
	pm := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	probe := start(t, bin(t, "mira-probe"), "--config", spoolConfig(t, dir, addr), "-r", pcap,
		"--metrics", pm, "--drain-timeout", "120s", "--log-level", "info")
	// The whole capture is metered and spooled while nobody listens.
	poll(t, 60*time.Second, "the probe to spool its records", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited with the collector down: %v\n%s", probe.err, probe.stderr.String())
		}
		done := strings.Contains(probe.stderr.String(), "capture done")
		n, err := probeMetric(pm, `mira_probe_spool_records{target="tcp://`+addr+`"}`)
		return done && n > 0 && err == nil, fmt.Sprintf("capture done %v, spooled %v (%v)", done, n, err)
	})
	coll := startCollectorOn(t, db, addr)
	// The probe is stopped (SIGSTOP) as soon as its replay reaches the
	// collector, with more left to send than the sockets hold; the
	// collector commits what it has (at most a second), and is killed
	// with part of the stream stored and the rest not yet sent.
	poll(t, 30*time.Second, "the collector to receive records", func() (bool, string) {
		n := coll.metric("mira_collector_records_total")
		return n > 0, fmt.Sprint(n, " records")
	})
	if err := probe.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the collector to store records", func() (bool, string) {
		n := coll.metric("mira_collector_stored_records_total")
		return n > 0, fmt.Sprint(n, " records stored")
	})
	stored := coll.metric("mira_collector_stored_records_total")
	if err := coll.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-coll.p.done
	if stored >= float64(an.Summary.Flows) {
		t.Fatalf("the collector stored all %v records before it was killed: not mid-stream", stored)
	}
	if err := probe.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("collector killed with %v records stored", stored)
	coll = startCollectorOn(t, db, addr)
	probe.wait(t, 120*time.Second)
	dups := coll.metric("mira_collector_duplicate_records_total")
	t.Logf("restarted collector: %v records received, %v dropped as already stored",
		coll.metric("mira_collector_records_total"), dups)
	if dups == 0 {
		t.Errorf("the restarted collector dropped no resent record, though the first had stored some")
	}
	coll.p.terminate(t, 30*time.Second)
	flows, packets := storedTotals(t, db)
	if flows != an.Summary.Flows || packets != an.Summary.Packets {
		t.Fatalf("store holds %d flows, %d packets; a clean run (mira analyze) has %d flows, %d packets\nprobe:\n%s",
			flows, packets, an.Summary.Flows, an.Summary.Packets, probe.stderr.String())
	}
	// The replays leave no sequence gap, and the probe's ledger (sent at
	// its end, delivered by the last replay) says nothing was lost.
	var rep lossReport
	out := run(t, bin(t, "mira"), "report", "--db", db, "--format", "json", "--limit", "1")
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if n := rep.Summary.Loss["sequence"]; n != 0 {
		t.Errorf("the collector counted %d records missing by sequence numbers", n)
	}
	if len(rep.Summary.Ledgers) == 0 || rep.Summary.Ledgers[len(rep.Summary.Ledgers)-1].Records != uint64(flows) {
		t.Errorf("probe ledgers %+v: want the last to say %d records exported", rep.Summary.Ledgers, flows)
	}
	for st, n := range rep.Summary.Loss {
		if n != 0 {
			t.Errorf("loss %s = %d", st, n)
		}
	}
}

// TestSpoolProbeKilled: a probe killed with SIGKILL while its records are
// spooled (collector down) delivers them when started again over the same
// spool, with nothing to capture.
func TestSpoolProbeKilled(t *testing.T) {
	dir := t.TempDir()
	pcap := synthPcap(t, dir, "--flows", "5000")
	an := analyzeJSON(t, pcap)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	db := filepath.Join(dir, "flows.db")
	pm := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	cfg := spoolConfig(t, dir, addr)
	probe := start(t, bin(t, "mira-probe"), "--config", cfg, "-r", pcap, "--metrics", pm, "--log-level", "info")
	var exported float64
	poll(t, 60*time.Second, "the probe to spool every record", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited with the collector down: %v\n%s", probe.err, probe.stderr.String())
		}
		done := strings.Contains(probe.stderr.String(), "capture done")
		n, err := probeMetric(pm, `mira_probe_spool_records{target="tcp://`+addr+`"}`)
		exported, _ = probeMetric(pm, "mira_probe_records_exported_total")
		return done && err == nil && n == exported && n > 0, fmt.Sprintf("capture done %v, spooled %v of %v (%v)", done, n, exported, err)
	})
	if err := probe.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-probe.done
	coll := startCollectorOn(t, db, addr)
	empty := filepath.Join(dir, "empty.pcap")
	// A classic pcap header (microseconds, Ethernet) and no packets.
	hdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	if err := os.WriteFile(empty, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	again := start(t, bin(t, "mira-probe"), "--config", cfg, "-r", empty, "--drain-timeout", "60s", "--log-level", "info")
	again.wait(t, 90*time.Second)
	coll.p.terminate(t, 30*time.Second)
	flows, packets := storedTotals(t, db)
	if float64(flows) != exported || flows != an.Summary.Flows || packets != an.Summary.Packets {
		t.Fatalf("store holds %d flows, %d packets; the killed probe spooled %v records; mira analyze has %d flows, %d packets\nprobe:\n%s",
			flows, packets, exported, an.Summary.Flows, an.Summary.Packets, again.stderr.String())
	}
}

// TestSpoolDrainTimeout: with no collector at all, mira-probe -r gives up
// after --drain-timeout and exits non-zero saying how many records remain.
func TestSpoolDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	pcap := synthPcap(t, dir, "--flows", "200")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	probe := start(t, bin(t, "mira-probe"), "--config", spoolConfig(t, dir, addr), "-r", pcap, "--drain-timeout", "1s")
	select {
	case <-probe.done:
	case <-time.After(60 * time.Second):
		t.Fatal("mira-probe did not give up after --drain-timeout 1s")
	}
	if probe.err == nil {
		t.Fatalf("mira-probe exited 0 with its records undelivered\n%s", probe.stderr.String())
	}
	if !strings.Contains(probe.stderr.String(), "records remain spooled") {
		t.Fatalf("mira-probe did not say how many records remain:\n%s", probe.stderr.String())
	}
}

// lossReport is the part of mira report's JSON summary about losses.
type lossReport struct {
	Summary struct {
		Packets              uint64            `json:"packets"`
		EstimatedPackets     uint64            `json:"estimated_packets"`
		EstimatedPacketsLow  uint64            `json:"estimated_packets_low"`
		EstimatedPacketsHigh uint64            `json:"estimated_packets_high"`
		Loss                 map[string]uint64 `json:"loss"`
		RegulationChanges    *int              `json:"regulation_changes"`
		Ledgers              []struct {
			Probe   string            `json:"probe"`
			Records uint64            `json:"records"`
			Loss    map[string]uint64 `json:"loss"`
		} `json:"ledgers"`
	} `json:"summary"`
}

// TestLossLedgerInReport runs a probe whose flow table is too small for
// the capture into a collector: the probe's ledger (IPFIX options) must
// reach the report, its eviction stage equal to the stored flows that
// ended for lack of resources, its exported records to the flows stored,
// and every stage must be listed.
func TestLossLedgerInReport(t *testing.T) {
	dir := t.TempDir()
	pcap := synthPcap(t, dir, "--flows", "300")
	coll := startCollector(t, false, true)
	cfg := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(cfg, []byte("meter: {max_flows: 64}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runProbe(t, "--config", cfg, "-r", pcap, "--export", "tcp://"+coll.tcp)
	metricEvicted := coll.metric(`mira_collector_loss_total{stage="eviction"}`)
	coll.p.terminate(t, 30*time.Second)
	var rep lossReport
	out := run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json", "--limit", "1")
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("mira report: %v\n%s", err, out)
	}
	var fl struct {
		Flows []struct {
			EndReason string `json:"end_reason"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(run(t, bin(t, "mira"), "flows", "--db", coll.db, "--format", "json"), &fl); err != nil {
		t.Fatal(err)
	}
	var evicted uint64
	for _, f := range fl.Flows {
		if f.EndReason == "resource" {
			evicted++
		}
	}
	s := rep.Summary
	if len(s.Loss) != 10 || s.RegulationChanges == nil {
		t.Fatalf("summary loss %v, regulation_changes %v: want all 10 stages and a count", s.Loss, s.RegulationChanges)
	}
	if len(s.Ledgers) != 1 {
		t.Fatalf("%d probe ledgers in the report, want 1: %+v", len(s.Ledgers), s.Ledgers)
	}
	l := s.Ledgers[0]
	if evicted == 0 || l.Loss["eviction"] != evicted || s.Loss["eviction"] != evicted {
		t.Errorf("probe ledger eviction %d, summary %d; stored flows ended for lack of resources: %d (want equal, > 0)",
			l.Loss["eviction"], s.Loss["eviction"], evicted)
	}
	if metricEvicted != float64(evicted) {
		t.Errorf("collector /metrics eviction loss %v, want %d", metricEvicted, evicted)
	}
	if l.Records != res.records || uint64(len(fl.Flows)) != res.records {
		t.Errorf("ledger says %d records exported, the probe %d, the store holds %d", l.Records, res.records, len(fl.Flows))
	}
	for _, st := range []string{"ring", "queue", "export", "spool", "socket", "sequence", "malformed", "store"} {
		if s.Loss[st] != 0 {
			t.Errorf("loss %s = %d on a clean run", st, s.Loss[st])
		}
	}
	if s.EstimatedPackets != s.Packets || s.EstimatedPacketsLow != s.Packets || s.EstimatedPacketsHigh != s.Packets {
		t.Errorf("unsampled: estimated packets %d [%d, %d], want %d", s.EstimatedPackets, s.EstimatedPacketsLow, s.EstimatedPacketsHigh, s.Packets)
	}
}
