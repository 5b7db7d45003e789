package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// connOf names a connection regardless of direction.
type connOf struct {
	a, b  netip.AddrPort
	proto uint8
}

func connKey(x, y netip.AddrPort, proto uint8) connOf {
	if y.Addr().Less(x.Addr()) || (y.Addr() == x.Addr() && y.Port() < x.Port()) {
		x, y = y, x
	}
	return connOf{x, y, proto}
}

// tsharkNames lists, per connection, the TLS server names, HTTP hosts and
// DNS question names tshark's dissectors find in a capture.
func tsharkNames(t *testing.T, tshark, path string) map[connOf][]string {
	t.Helper()
	out, err := exec.Command(tshark, "-r", path, "-n", "-o", "tcp.desegment_tcp_streams:FALSE",
		"-Y", "tls.handshake.type == 1 || http.request || dns || mdns || llmnr", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=l",
		"-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
		"-e", "tls.handshake.extensions_server_name", "-e", "http.host", "-e", "dns.qry.name").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	names := map[connOf][]string{}
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		c := strings.Split(line, "\t")
		if len(c) != 9 {
			continue
		}
		src, err1 := netip.ParseAddr(c[0])
		dst, err2 := netip.ParseAddr(c[1])
		if err1 != nil || err2 != nil {
			continue // IPv6: not in these captures' flows of interest
		}
		sp, dp, proto := c[2], c[3], uint8(6)
		if sp == "" {
			sp, dp, proto = c[4], c[5], 17
		}
		k := connKey(netip.AddrPortFrom(src, atou16(sp)), netip.AddrPortFrom(dst, atou16(dp)), proto)
		for i, n := range c[6:] {
			if i == 1 { // an HTTP host without its port, as flow.App.Host gives it
				n = (&flow.App{HTTPHost: n}).Host()
			}
			// Names outside hostname characters (an LLMNR name in
			// Chinese) are not kept by the probe (flow.App).
			if n != "" && strings.Trim(strings.ToLower(n), "abcdefghijklmnopqrstuvwxyz0123456789-_.:[]") == "" {
				names[k] = append(names[k], strings.ToLower(strings.TrimSuffix(n, ".")))
			}
		}
	}
	return names
}

func atou16(s string) uint16 {
	var n uint16
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint16(c-'0')
	}
	return n
}

// TestReportByApp runs captures with TLS, HTTP and DNS through the whole
// chain (probe, IPFIX, collector store) and checks `mira report --by
// app`: each biflow's app is its name through the service list, the name
// is one tshark finds in that connection, the rows cover every biflow,
// --app keeps one application's biflows and a bad --services file is
// refused with its file, line and key.
func TestReportByApp(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	captures := []string{
		peertest.CorpusFile(t, "pcaps", "ndpi", "1kxun.pcap"),
		peertest.CorpusFile(t, "pcaps", "arkime", "tls13.pcap"),
		peertest.CorpusFile(t, "pcaps", "arkime", "http-simple-get.pcap"),
		peertest.CorpusFile(t, "pcaps", "arkime", "dns-udp.pcap"),
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	if _, err := analyze.Analyze(context.Background(), analyze.Options{Files: captures, DB: db}); err != nil {
		t.Fatal(err)
	}
	svcFile := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(svcFile, []byte("version: 1\nservices:\n  1kxun: [1kxun.com, 1kxun.mobi]\n  Rayjump: rayjump.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := service.Load(svcFile)
	if err != nil {
		t.Fatal(err)
	}
	rep := reportJSON(t, "--db", db, "--by", "app", "--services", svcFile, "--format", "json")

	want := map[connOf][]string{}
	for _, c := range captures {
		for k, v := range tsharkNames(t, tshark, c) {
			want[k] = append(want[k], v...)
		}
	}
	apps := map[string]int{}
	named := 0
	hasName := map[connOf]bool{} // a connection may be several biflows (a tail after FIN)
	for _, b := range rep.Biflows {
		apps[b.App]++
		if got := list.App(&b.Meta); b.App != got {
			t.Errorf("%v: app %q, its metadata %+v names %q", b.Key, b.App, b.Meta, got)
		}
		if !b.Src.Is4() {
			continue
		}
		k := connKey(netip.AddrPortFrom(b.Src, b.Sport), netip.AddrPortFrom(b.Dst, b.Dport), b.Proto)
		host := strings.ToLower(b.Meta.Host())
		if host == "" {
			hasName[k] = hasName[k] || false
			continue
		}
		hasName[k] = true
		named++
		if !slices.Contains(want[k], host) {
			t.Errorf("%v: name %q, tshark finds %q", b.Key, host, want[k])
		}
	}
	// HTTP over UDP (SSDP) is not read for a Host (the probe reads
	// HTTP over TCP).
	dnsPort := func(p uint16) bool { return p == 53 || p == 5353 || p == 5355 }
	for k, ok := range hasName {
		if !ok && len(want[k]) > 0 && (k.proto == 6 || dnsPort(k.a.Port()) || dnsPort(k.b.Port())) {
			t.Errorf("%v %v %d: no biflow of the connection has a name, tshark finds %q", k.a, k.b, k.proto, want[k])
		}
	}
	if named < 50 {
		t.Errorf("only %d biflows named", named)
	}
	rows, biflows, octets := map[string]int{}, 0, uint64(0)
	for _, u := range rep.Usage {
		rows[u.App] = u.Biflows
		biflows += u.Biflows
		octets += u.Octets
	}
	if biflows != rep.Summary.Biflows || octets != rep.Summary.Octets {
		t.Errorf("rows hold %d biflows %d octets, the summary %d %d", biflows, octets, rep.Summary.Biflows, rep.Summary.Octets)
	}
	for app, n := range apps {
		if rows[app] != n {
			t.Errorf("app %q: row of %d biflows, %d biflows named so", app, rows[app], n)
		}
	}
	if rows["1kxun"] < 20 || rows["Rayjump"] < 5 || rows[service.Unknown] == 0 {
		t.Errorf("rows %v: want the listed services 1kxun and Rayjump, and unknown", rows)
	}

	// --app keeps one application's biflows.
	one := reportJSON(t, "--db", db, "--app", "1kxun", "--services", svcFile, "--format", "json")
	if len(one.Biflows) != rows["1kxun"] {
		t.Errorf("--app 1kxun lists %d biflows, the row has %d", len(one.Biflows), rows["1kxun"])
	}
	for _, b := range one.Biflows {
		if b.App != "1kxun" {
			t.Errorf("--app 1kxun lists %v of %q", b.Key, b.App)
		}
	}

	// The default list names the services it knows.
	def := reportJSON(t, "--db", db, "--by", "app", "--format", "json")
	defRows := map[string]bool{}
	for _, u := range def.Usage {
		defRows[u.App] = true
	}
	if !defRows["Google"] || defRows["1kxun"] {
		t.Errorf("default list rows %v: want Google, not 1kxun", defRows)
	}

	// A bad list is refused with its place.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nservices:\n  A: [a.com]\n  B: [b..com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, reportCmd, "--db", db, "--by", "app", "--services", bad)
	if err == nil || !strings.Contains(err.Error(), bad+`:4: key "services.B[0]"`) {
		t.Errorf("bad list: %v, want an error naming %s:4 and the key", err, bad)
	}
}
