//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/vethtest"
)

// TestReloadSIGHUPLive: mira-probe captures live (-i, two fanout
// workers) on a veth end in a network namespace, beside mira-collector;
// a first batch of UDP flows is metered under aggregate "before", SIGHUP
// reloads a configuration naming it "after", and a second batch
// follows. The store must name every flow of the first batch "before"
// and every flow of the second "after", with every packet sent.
func TestReloadSIGHUPLive(t *testing.T) {
	pair := vethtest.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "probe.yaml")
	write := func(name string) {
		t.Helper()
		y := fmt.Sprintf("aggregates:\n  rules: [{name: %s, id: 1, net: [0.0.0.0/0]}]\n", name)
		if err := os.WriteFile(cfg+".new", []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg+".new", cfg); err != nil {
			t.Fatal(err)
		}
	}
	write("before")
	db := filepath.Join(dir, "flows.db")
	coll, addr := startCollectorIn(t, pair.NS[1], db)
	probe := start(t, "ip", "netns", "exec", pair.NS[1], bin(t, "mira-probe"), "--config", cfg, "-i", pair.Iface[1],
		"--workers", "2", "--export", "tcp://"+addr, "--metrics", "127.0.0.1:9110", "--log-level", "info")
	// /metrics is inside the namespace.
	metric := func(name string) string {
		out, _ := pair.Command(1, "curl", "-s", "http://127.0.0.1:9110/metrics").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return ""
	}
	// A receiver, so that no ICMP port-unreachable comes back.
	var rx *net.UDPConn
	if err := pair.Do(1, func() (err error) {
		rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[1], 9500)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	const n = 40
	buf := make([]byte, 64)
	send := func(port0 int) {
		t.Helper()
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[1], 9500))
		rx.SetDeadline(time.Now().Add(20 * time.Second))
		for i := range n {
			var tx *net.UDPConn
			if err := pair.Do(0, func() (err error) {
				tx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[0], uint16(port0+i))))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			_, err := tx.WriteToUDP([]byte("mira"), to)
			tx.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rx.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Once the probe says so its sockets are open: frames sent from
	// then on are queued in their rings.
	poll(t, 10*time.Second, "mira-probe to capture", func() (bool, string) {
		if probe.exited() {
			t.Fatalf("mira-probe exited: %v\n%s", probe.err, probe.stderr.String())
		}
		return strings.Contains(probe.stderr.String(), "capture started"), probe.stderr.String()
	})
	send(20000)
	write("after")
	if v := metric("mira_probe_reloads_total{result=\"applied\"}"); v != "0" {
		t.Fatalf("reloads applied before SIGHUP: %q", v)
	}
	if err := probe.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the reload", func() (bool, string) {
		return strings.Contains(probe.stderr.String(), "configuration reloaded"), probe.stderr.String()
	})
	send(30000)
	// SIGTERM at once: the probe reads what its rings hold before it
	// stops.
	probe.terminate(t, 60*time.Second)
	coll.terminate(t, 30*time.Second)
	var fl struct {
		Flows []struct {
			Sport     int    `json:"sport"`
			Packets   uint64 `json:"packets"`
			Aggregate string `json:"aggregate"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(run(t, bin(t, "mira"), "flows", "--db", db, "--format", "json"), &fl); err != nil {
		t.Fatal(err)
	}
	var packets uint64
	seen := map[int]bool{}
	for _, f := range fl.Flows {
		seen[f.Sport] = true
		packets += f.Packets
		want := "before"
		if f.Sport >= 30000 {
			want = "after"
		}
		if f.Aggregate != want {
			t.Errorf("flow from port %d is named %q, want %q", f.Sport, f.Aggregate, want)
		}
	}
	var missing []int
	for _, p0 := range []int{20000, 30000} {
		for i := range n {
			if !seen[p0+i] {
				missing = append(missing, p0+i)
			}
		}
	}
	if len(fl.Flows) != 2*n || packets != 2*n {
		t.Fatalf("%d flows with %d packets stored, want %d of each; missing source ports %v\n%s", len(fl.Flows), packets, 2*n, missing, probe.stderr.String())
	}
}
