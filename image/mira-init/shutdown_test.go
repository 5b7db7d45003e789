//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startFake runs a shell standing for a service: on SIGTERM it writes
// "NAME term", takes 300 ms to finish (the probe exporting its pending
// flows), writes "NAME exit" and exits.
func startFake(t *testing.T, name, journal string) *service {
	t.Helper()
	script := `trap 'echo "$0 term" >> "$1"; sleep 0.3; echo "$0 exit" >> "$1"; exit 0' TERM
echo "$0 up" >> "$1"
while :; do sleep 0.02; done`
	cmd := exec.Command("sh", "-c", script, name, journal)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{name: name, cmd: cmd, done: make(chan struct{}), started: time.Now()}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-s.done })
	return s
}

// TestStopServicesProbeFirst: at power-off the collector of an
// all-in-one box must still run while mira-probe exports its last flows,
// so the services stop one after the other, the probe first (they were
// stopped together: the box's collector went first and the probe's last
// records to it were refused).
func TestStopServicesProbeFirst(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal")
	probe := startFake(t, "mira-probe", journal)
	collector := startFake(t, "mira-collector", journal)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(journal)
		if strings.Count(string(b), " up\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake services did not start: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopServices([]*service{probe, collector}, 10*time.Second)
	b, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasSuffix(l, " up") {
			got = append(got, l)
		}
	}
	want := []string{"mira-probe term", "mira-probe exit", "mira-collector term", "mira-collector exit"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stop order %q, want %q", got, want)
	}
}
