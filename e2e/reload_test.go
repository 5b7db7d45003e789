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

// TestReloadSIGHUP replays the sample capture at 20 times its pace
// into mira-collector and, mid-replay, rewrites the probe's
// configuration and sends SIGHUP: first a file with an unknown key
// (refused with file, line and key; the probe runs on), then one that
// renames the aggregate every flow falls in and adds a symptom database.
// The collector must name every record by the announcement in force
// when it was metered (the old name before the reload, the new one
// after, none unnamed), the probe must count one reload applied and
// one refused, and the stored packets plus the probe's ledger must
// account for every packet of the capture.
func TestReloadSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pcap := synthPcap(t, dir)
	want, err := pcapPackets(pcap)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "probe.yaml")
	write := func(s string) {
		t.Helper()
		// Write and rename: the probe never reads a half-written file.
		tmp := cfg + ".new"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	const all = `net: [0.0.0.0/0, "::/0"]`
	write("aggregates:\n  rules: [{name: before, id: 1, " + all + "}]\n")
	syms := filepath.Join(dir, "symptoms.yaml")
	if err := os.WriteFile(syms, []byte("version: 1\nsymptoms:\n  - name: WEBGET\n    description: an HTTP GET\n    patterns:\n      - {content: \"GET /\", anchor: line}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	coll := startCollector(t, false, true)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	probe := start(t, bin(t, "mira-probe"), "--config", cfg, "-r", pcap, "--speed", "20",
		"--export", "tcp://"+coll.tcp, "--metrics", metrics, "--log-level", "info")
	metric := func(name string) float64 {
		v, _ := probeMetric(metrics, name)
		return v
	}
	poll(t, 20*time.Second, "a third of the capture read", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited early: %v\n%s", probe.err, probe.stderr.String())
		}
		n := metric("mira_probe_packets_total")
		return n > float64(want)/3, fmt.Sprintf("%v of %d packets", n, want)
	})
	write("aggregates:\n  rules: [{name: before, id: 1, " + all + "}]\nsymptom: {file: x}\n")
	if err := probe.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The counter moves before the log line is written: wait for both.
	poll(t, 10*time.Second, "the bad file refused, naming "+cfg+":3 and the key", func() (bool, string) {
		s := probe.stderr.String()
		return metric(`mira_probe_reloads_total{result="refused"}`) == 1 && strings.Contains(s, cfg+":3") && strings.Contains(s, "symptom"), s
	})
	write("symptoms: {file: " + syms + "}\naggregates:\n  rules: [{name: after, id: 2, " + all + "}]\n")
	if err := probe.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the new file applied", func() (bool, string) {
		return metric(`mira_probe_reloads_total{result="applied"}`) == 1, probe.stderr.String()
	})
	if n := metric("mira_probe_packets_total"); n >= float64(want) {
		t.Fatalf("the replay ended (%v packets) before the reload: nothing to check", n)
	}
	probe.wait(t, 60*time.Second)
	coll.p.terminate(t, 30*time.Second)

	var fl struct {
		Flows []struct {
			Last      time.Time         `json:"last"`
			Packets   uint64            `json:"packets"`
			Aggregate string            `json:"aggregate"`
			Symptoms  map[string]uint64 `json:"symptoms"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(run(t, bin(t, "mira"), "flows", "--db", coll.db, "--format", "json"), &fl); err != nil {
		t.Fatal(err)
	}
	var stored uint64
	count := map[string]int{}
	var lastBefore, firstAfter time.Time
	webget := 0
	for _, f := range fl.Flows {
		stored += f.Packets
		count[f.Aggregate]++
		switch f.Aggregate {
		case "before":
			if f.Last.After(lastBefore) {
				lastBefore = f.Last
			}
			if f.Symptoms["WEBGET"] > 0 {
				t.Fatalf("a record metered before the reload has the new database's symptom: %+v", f)
			}
		case "after":
			if firstAfter.IsZero() || f.Last.Before(firstAfter) {
				firstAfter = f.Last
			}
			if f.Symptoms["WEBGET"] > 0 {
				webget++
			}
			for name := range f.Symptoms {
				if name != "WEBGET" {
					// Only a record metered before the reload (by
					// the default database) can have another id.
					t.Errorf("a record named after the reload has symptom %s: %+v", name, f)
				}
			}
		}
	}
	if count["before"] == 0 || count["after"] == 0 || count["before"]+count["after"] != len(fl.Flows) {
		t.Fatalf("stored flows by aggregate: %v; want all named before or after, some of each", count)
	}
	if webget == 0 {
		t.Errorf("no record after the reload has the new database's symptom WEBGET")
	}
	if firstAfter.Before(lastBefore) {
		t.Errorf("a record named after the reload ends at %v, before the last one named before it (%v)", firstAfter, lastBefore)
	}
	var rep lossReport
	if err := json.Unmarshal(run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json", "--limit", "1"), &rep); err != nil {
		t.Fatal(err)
	}
	l := rep.Summary.Loss
	if stored+l["ring"]+l["queue"]+l["regulation"] != uint64(want) {
		t.Fatalf("stored %d packets + ledger (ring %d, queue %d, regulation %d) != %d in the capture",
			stored, l["ring"], l["queue"], l["regulation"], want)
	}
	t.Logf("flows before %d, after %d; packets stored %d of %d (ledger %v)", count["before"], count["after"], stored, want, l)
}
