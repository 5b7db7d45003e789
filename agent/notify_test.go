package agent

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// trapd runs snmptrapd and delivers its output lines.
type trapd struct {
	addr  string
	lines chan string
}

func startTrapd(t *testing.T, engineID []byte) *trapd {
	t.Helper()
	bin := needPeer(t, "snmptrapd")
	dir := t.TempDir()
	port := freeUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`authCommunity log public
createUser -e 0x%s ops SHA-256 ops-auth-pass AES ops-priv-pass
createUser ops SHA-256 ops-auth-pass AES ops-priv-pass
authUser log ops
`, hex.EncodeToString(engineID))
	cf := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-f", "-Lo", "-C", "-c", cf, "--persistentDir="+dir,
		"-M", mibDirs(t), "-m", mibList, "-OU", "-F", "NOTIFY %P\t%v\n", "udp:"+addr)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "HOME="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	td := &trapd{addr: addr, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			td.lines <- sc.Text()
		}
		close(td.lines)
	}()
	td.waitFor(t, "NET-SNMP version", 1)
	return td
}

// waitFor reads output until n lines contain every fragment of want
// (separated by "|"), returning those lines.
func (td *trapd) waitFor(t *testing.T, want string, n int) []string {
	t.Helper()
	frags := strings.Split(want, "|")
	var got []string
	var seen []string
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case l, ok := <-td.lines:
			if !ok {
				t.Fatalf("snmptrapd exited; output:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			match := true
			for _, f := range frags {
				if !strings.Contains(l, f) {
					match = false
				}
			}
			if match {
				got = append(got, l)
			}
		case <-deadline:
			t.Fatalf("waiting for %d lines with %q; output:\n%s", n, want, strings.Join(seen, "\n"))
		}
	}
	return got
}

// TestNotificationsReachSnmptrapd drives the probe through overload and
// a collector outage and checks snmptrapd logs each notification from
// every target kind: v2c trap and inform, v3 authPriv trap and inform.
func TestNotificationsReachSnmptrapd(t *testing.T) {
	p := newFakeProbe(t)
	p.Advance(t, 200)
	cfg := testConfig()
	cfg.EngineID = "80007ed9040102030405060708"
	cfg.PollInterval = 10 * time.Millisecond
	eng, _ := hex.DecodeString(cfg.EngineID)
	td := startTrapd(t, eng)
	cfg.Targets = []Target{
		// Informs first: when snmptrapd logs the last (a trap), every
		// earlier send has returned and been counted.
		{Address: td.addr, Version: "v2c", Community: "public", Inform: true},
		{Address: td.addr, Version: "v3", User: "ops", Inform: true},
		{Address: td.addr, Version: "v2c", Community: "public"},
		{Address: td.addr, Version: "v3", User: "ops"},
	}
	a, err := New(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before startAgent, so it runs after the agent stopped.
	t.Cleanup(func() {
		if n := a.stats.NotificationsSent.Load(); n != 16 {
			t.Errorf("NotificationsSent = %d, want 16", n)
		}
		if n := a.stats.NotificationErrors.Load(); n != 0 {
			t.Errorf("NotificationErrors = %d", n)
		}
	})
	startAgent(t, a)

	p.setRegulation(RegulationSampling, 8)
	lines := td.waitFor(t, "MIRA-PROBE-MIB::miraOverloadEntered|miraRegulationState.0 = INTEGER: sampling(2)|miraSamplingRate.0 = Gauge32: 8", 4)
	// Two v2c notifications (trap, inform) and two v3 ones from user ops.
	var v2, v3 int
	for _, l := range lines {
		sec, _, _ := strings.Cut(l, "\t")
		switch {
		case strings.Contains(sec, "community public"):
			v2++
		case strings.Contains(sec, "user ops"):
			v3++
		}
	}
	if v2 != 2 || v3 != 2 {
		t.Errorf("got %d v2c and %d v3 notifications, want 2 and 2:\n%s", v2, v3, strings.Join(lines, "\n"))
	}

	p.setExporter(1, ExporterSpooling, "connection refused")
	td.waitFor(t, "MIRA-PROBE-MIB::miraCollectorLost|miraExpAddress.2 = STRING: tcp://192.0.2.11:4739|miraExpState.2 = INTEGER: spooling(3)|miraExpLastError.2 = STRING: connection refused", 4)
	p.setExporter(1, ExporterConnected, "")
	td.waitFor(t, "MIRA-PROBE-MIB::miraCollectorRegained|miraExpState.2 = INTEGER: connected(1)", 4)
	p.setRegulation(RegulationNormal, 1)
	td.waitFor(t, "MIRA-PROBE-MIB::miraOverloadLeft|miraRegulationState.0 = INTEGER: normal(1)", 4)
}

// TestFinalPollAnnounces: a state entered after the watcher's last tick
// (a replay that ends in overload) is announced as the agent stops. The
// poll interval is an hour, so only the poll made at the stop can send.
func TestFinalPollAnnounces(t *testing.T) {
	p := newFakeProbe(t)
	cfg := testConfig()
	cfg.EngineID = "80007ed9040102030405060708"
	cfg.PollInterval = time.Hour
	eng, _ := hex.DecodeString(cfg.EngineID)
	td := startTrapd(t, eng)
	cfg.Targets = []Target{{Address: td.addr, Version: "v2c", Community: "public"}}
	polled := make(chan struct{}, 1)
	a, err := New(cfg, ProviderFunc(func(s *Snapshot) {
		p.Snapshot(s)
		select {
		case polled <- struct{}{}:
		default:
		}
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := serveAgent(t, a)
	<-polled // the watcher's first poll: regulation normal, nothing sent
	p.setRegulation(RegulationSampling, 8)
	if err := stop(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	td.waitFor(t, "MIRA-PROBE-MIB::miraOverloadEntered|miraSamplingRate.0 = Gauge32: 8", 1)
	if n := a.stats.NotificationsSent.Load(); n != 1 {
		t.Errorf("NotificationsSent = %d, want 1", n)
	}
}
