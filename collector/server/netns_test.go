package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/tools/peertest"
)

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// netnsLab makes a collector namespace linked to the test's namespace
// (10.200.0.0/24) and to one namespace per probe (10.200.N.0/24).
type netnsLab struct {
	prefix string
	coll   string
	probes []string
}

func newLab(t *testing.T, probes int) *netnsLab {
	t.Helper()
	peertest.Program(t, "ip") // iproute2
	peertest.NetNamespaces(t)
	l := &netnsLab{prefix: fmt.Sprintf("mira%d", os.Getpid()%100000)}
	l.coll = l.prefix + "c"
	if err := ipCmd("netns", "add", l.coll); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.destroy)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	// Test namespace <-> collector: the HTTP API is reached over it.
	must("link", "add", l.prefix+"r0", "type", "veth", "peer", "name", l.prefix+"c0")
	must("link", "set", l.prefix+"c0", "netns", l.coll)
	must("addr", "add", "10.200.0.2/24", "dev", l.prefix+"r0")
	must("link", "set", l.prefix+"r0", "up")
	must("-n", l.coll, "addr", "add", "10.200.0.1/24", "dev", l.prefix+"c0")
	must("-n", l.coll, "link", "set", l.prefix+"c0", "up")
	must("-n", l.coll, "link", "set", "lo", "up")
	for i := 1; i <= probes; i++ {
		ns := fmt.Sprintf("%sp%d", l.prefix, i)
		must("netns", "add", ns)
		l.probes = append(l.probes, ns)
		a, b := fmt.Sprintf("%sc%d", l.prefix, i), fmt.Sprintf("%sp%d", l.prefix, i)
		must("link", "add", a, "type", "veth", "peer", "name", b)
		must("link", "set", a, "netns", l.coll)
		must("link", "set", b, "netns", ns)
		must("-n", l.coll, "addr", "add", fmt.Sprintf("10.200.%d.1/24", i), "dev", a)
		must("-n", l.coll, "link", "set", a, "up")
		must("-n", ns, "addr", "add", fmt.Sprintf("10.200.%d.2/24", i), "dev", b)
		must("-n", ns, "link", "set", b, "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

func (l *netnsLab) destroy() {
	for _, ns := range l.probes {
		ipCmd("netns", "del", ns)
	}
	ipCmd("netns", "del", l.coll)
	ipCmd("link", "del", l.prefix+"r0")
}

// TestMultiProbeNetns runs the collector and two probes in their own
// network namespaces, each on its own address: the probes split the
// capture by direction and export over real TCP sockets between
// namespaces; the collector tells them apart by address (both use the
// same observation domain), and the consolidated totals equal one
// probe's.
func TestMultiProbeNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	base := consolidate(t, probeBin, collBin, pcap, []string{rules}, 0)

	l := newLab(t, 2)
	db := filepath.Join(t.TempDir(), "flows.db")
	var clog bytes.Buffer
	coll := exec.Command("ip", "netns", "exec", l.coll, collBin, "--listen", "tcp://0.0.0.0:4739", "--db", db, "--http", "10.200.0.1:8080")
	coll.Stdout, coll.Stderr = &clog, &clog
	if err := coll.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { coll.Wait(); close(done) }()
	t.Cleanup(func() { coll.Process.Kill(); <-done })
	api := "http://10.200.0.1:8080"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(api + "/api/flows?limit=1")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("collector exited:\n%s", clog.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector API unreachable: %v\n%s", err, clog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	dir := t.TempDir()
	scopes := []string{"  scope: {directions: [outgoing, internal]}\n", "  scope: {directions: [incoming, transit]}\n"}
	total := 0
	for i, ns := range l.probes {
		f := filepath.Join(dir, fmt.Sprintf("p%d.yaml", i))
		if err := os.WriteFile(f, []byte(rules+scopes[i]), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, probeBin, "--config", f, "-r", pcap,
			"--export", fmt.Sprintf("tcp://10.200.%d.1:4739", i+1)).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("probe in %s: %v\n%s", ns, err, out)
		}
		m := recordsRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("probe in %s: no record count:\n%s", ns, out)
		}
		n, _ := strconv.Atoi(string(m[1]))
		total += n
	}
	deadline = time.Now().Add(60 * time.Second)
	var l2 report.FlowList
	for time.Now().Before(deadline) {
		resp, err := http.Get(api + "/api/flows?limit=1")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(b, &l2) == nil && l2.Summary.Flows >= total {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l2.Summary.Flows != total {
		t.Fatalf("collector holds %d records, probes exported %d", l2.Summary.Flows, total)
	}
	coll.Process.Signal(syscall.SIGTERM)
	<-done
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := result{byAggregate: map[string]report.UsageRow{}, byCategory: map[string]report.UsageRow{}}
	exporters := map[string]bool{}
	for _, by := range []string{report.ByAggregate, report.ByCategory, report.ByProbe} {
		rep, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{By: by, Rules: classify.Default()})
		if err != nil {
			t.Fatal(err)
		}
		got.biflows, got.merged, got.packets, got.octets = rep.Summary.Biflows, rep.Summary.Merged, rep.Summary.Packets, rep.Summary.Octets
		for _, u := range rep.Usage {
			switch by {
			case report.ByAggregate:
				got.byAggregate[u.Aggregate] = u
			case report.ByCategory:
				got.byCategory[u.Category] = u
			case report.ByProbe:
				for _, p := range strings.Split(u.Probe, ";") {
					p, _, _ = strings.Cut(p, "/")
					exporters[p] = true
				}
			}
		}
	}
	sameTotals(t, "namespaces", got, base)
	if !exporters["10.200.1.2"] || !exporters["10.200.2.2"] || len(exporters) != 2 {
		t.Errorf("exporters seen: %v, want 10.200.1.2 and 10.200.2.2", exporters)
	}
}
