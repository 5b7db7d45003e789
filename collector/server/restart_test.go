package server_test

import (
	"syscall"
	"testing"
	"time"
)

// TestCrashLosesNothingCommitted: records the collector has committed
// (visible to readers of its store, here through its HTTP API) survive
// the collector being killed without warning; a collector restarted on
// the same store serves them and adds what arrives next, and a clean
// stop keeps everything received.
func TestCrashLosesNothingCommitted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	c := startCollector(t, collBin)
	n := runProbes(t, probeBin, pcap, c.port, []string{rules})
	if n == 0 {
		t.Fatal("the probe exported nothing")
	}
	c.waitRecords(t, n)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mira-collector survived SIGKILL")
	}

	r := startCollectorDB(t, collBin, c.db)
	r.waitRecords(t, n)
	m := runProbes(t, probeBin, pcap, r.port, []string{rules, rules})
	r.waitRecords(t, n+m)
	r.stop(t)

	last := startCollectorDB(t, collBin, c.db)
	last.waitRecords(t, n+m)
	last.stop(t)
}
