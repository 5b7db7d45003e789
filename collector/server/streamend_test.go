package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/synth"
)

// synthCapture writes the synthesiser's default capture (SMTP, HTTP,
// FTP, DNS, ... with payloads that match the default symptoms) and
// returns its path.
func synthCapture(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "synth.pcap")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WritePcap(synth.Default(), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// runProbe runs mira-probe on pcap, exporting to the collector's TCP
// port with the extra arguments, and returns the records it exported.
func runProbe(t *testing.T, bin, pcap string, port int, extra ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-r", pcap, "--export", fmt.Sprintf("tcp://127.0.0.1:%d", port)}, extra...)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mira-probe %v: %v\n%s", args, err, out)
	}
	m := recordsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("mira-probe: no record count in its log:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestStoredWhenExporterCloses: once a mira-probe exporting over TCP has
// exited, the collector's store already holds every record it exported:
// the collector commits when the connection ends, before closing its
// end, and the probe's exporter waits for that close. No waiting here.
func TestStoredWhenExporterCloses(t *testing.T) {
	probe, coll := binaries(t)
	pcap := synthCapture(t)
	c := startCollector(t, coll)
	for i := range 2 {
		n := runProbe(t, probe, pcap, c.port, "--domain", strconv.Itoa(1+i))
		if n == 0 {
			t.Fatal("the probe exported no records")
		}
		if got := storedFlows(t, c.db); got != n*(i+1) {
			t.Fatalf("after probe %d exited the store holds %d records, the probes exported %d", i+1, got, n*(i+1))
		}
	}
	c.stop(t)
}

// storedFlows lists the store as `mira flows --db` does (read-only,
// waiting up to 2 s for a running collector's lock) and returns the flow
// count.
func storedFlows(t *testing.T, db string) int {
	t.Helper()
	st, err := store.Open(db, &store.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("mira flows --db: %v", err)
	}
	defer st.Close()
	l, err := report.FlowsFromStore(context.Background(), st, store.Query{}, report.Options{Limit: 1})
	if err != nil {
		t.Fatalf("mira flows --db: %v", err)
	}
	return l.Summary.Flows
}
