package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// ipfixDumpTotals runs ipfixDump on an IPFIX file, fails on any warning
// or error it prints (sequence numbers included) and returns the number
// of flow records and their packet and octet totals.
func ipfixDumpTotals(t *testing.T, path string) (records, packets, octets uint64) {
	t.Helper()
	out, stderr := runErr(t, peertest.Program(t, "ipfixDump"), "--in", path)
	for _, s := range []string{string(out), stderr} {
		low := strings.ToLower(s)
		if strings.Contains(low, "warning") || strings.Contains(low, "error") {
			t.Fatalf("ipfixDump --in %s complained:\n%s", path, s)
		}
	}
	value := func(line string) uint64 {
		v, err := strconv.ParseUint(strings.TrimSpace(line[strings.LastIndexByte(line, ':')+1:]), 10, 64)
		if err != nil {
			t.Fatalf("ipfixDump line %q: %v", line, err)
		}
		return v
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " packetDeltaCount :"):
			records++
			packets += value(line)
		case strings.Contains(line, " octetDeltaCount :"):
			octets += value(line)
		}
	}
	return records, packets, octets
}

// TestTCPAndFileToIpfixDump exports one trace over TCP (into a plain TCP
// sink) and into an RFC 5655 file: libfixbuf's ipfixDump must read both
// without a warning, with every record and the same totals.
func TestTCPAndFileToIpfixDump(t *testing.T) {
	peertest.Program(t, "ipfixDump")
	dir := t.TempDir()
	pcap := synthPcap(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stream := filepath.Join(dir, "tcp.ipfix")
	sunk := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sunk <- err
			return
		}
		defer c.Close()
		sunk <- writeStream(stream, c)
	}()
	fileDir := filepath.Join(dir, "files")
	if err := os.Mkdir(fileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	res := runProbe(t, "-r", pcap, "--export", "tcp://"+ln.Addr().String(), "--export", "file://"+fileDir)
	select {
	case err := <-sunk:
		if err != nil {
			t.Fatalf("tcp sink: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mira-probe exited but did not close its TCP connection")
	}
	files, err := filepath.Glob(filepath.Join(fileDir, "*.ipfix"))
	if err != nil || len(files) != 1 {
		t.Fatalf("file export wrote %v (err %v), want one .ipfix file", files, err)
	}
	an := analyzeJSON(t, pcap)
	for _, f := range []string{stream, files[0]} {
		recs, pk, oc := ipfixDumpTotals(t, f)
		if recs != res.records {
			t.Errorf("%s: ipfixDump shows %d flow records, mira-probe exported %d", filepath.Base(f), recs, res.records)
		}
		if pk != an.Summary.Packets || oc != an.Summary.Octets {
			t.Errorf("%s: ipfixDump totals %d packets %d octets, mira analyze %d packets %d octets",
				filepath.Base(f), pk, oc, an.Summary.Packets, an.Summary.Octets)
		}
		t.Logf("%s: ipfixDump reads %d records, %d packets, %d octets", filepath.Base(f), recs, pk, oc)
	}
}

// analyzeJSON runs `mira analyze --format json` on files (the built-in
// sample without any).
func analyzeJSON(t *testing.T, files ...string) reportJSON {
	t.Helper()
	out := run(t, bin(t, "mira"), append([]string{"analyze", "--format", "json"}, files...)...)
	return parseReport(t, "mira analyze --format json", out)
}

var tcpdumpReadyRE = regexp.MustCompile(`(?m)^tcpdump: listening on `)

// startTcpdump records UDP port on lo into path, returning once tcpdump
// says it is listening.
func startTcpdump(t *testing.T, path string, port int) *proc {
	t.Helper()
	tcpdump := peertest.Program(t, "tcpdump")
	peertest.RawSockets(t) // what tcpdump -i lo opens
	td := start(t, tcpdump, "-i", "lo", "-U", "-s0", "-w", path, "udp", "port", strconv.Itoa(port))
	poll(t, 10*time.Second, "tcpdump to listen", func() (bool, string) {
		if td.exited() {
			t.Fatalf("tcpdump exited: %v\n%s", td.err, td.stderr.String())
		}
		return tcpdumpReadyRE.MatchString(td.stderr.String()), td.stderr.String()
	})
	return td
}

// TestCollectorUDPAndTCPMatchProbe exports one trace to a mira-collector
// over UDP and to another over TCP while tcpdump records the UDP
// exchange. Both collectors' `mira report` totals must equal what `mira
// analyze` counts for the trace, and tshark must decode the recorded
// exchange with no malformed packet or expert error and the same totals.
func TestCollectorUDPAndTCPMatchProbe(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	dir := t.TempDir()
	pcap := synthPcap(t, dir)
	an := analyzeJSON(t, pcap)
	if an.Summary.Packets == 0 || an.Summary.Flows == 0 {
		t.Fatalf("mira analyze found no traffic in %s: %+v", pcap, an.Summary)
	}

	cu := startCollector(t, true, false)
	ct := startCollector(t, false, true)
	capture := filepath.Join(dir, "udp-exchange.pcap")
	td := startTcpdump(t, capture, cu.udpPort())

	res := runProbe(t, "-r", pcap, "--export", "udp://"+cu.udp, "--export", "tcp://"+ct.tcp)
	if res.records != uint64(an.Summary.Flows) {
		t.Fatalf("mira-probe exported %d records, mira analyze stored %d flows", res.records, an.Summary.Flows)
	}
	cu.waitMetric(t, "mira_collector_stored_records_total", res.records)
	ct.waitMetric(t, "mira_collector_stored_records_total", res.records)
	m, err := cu.scrape()
	if err != nil {
		t.Fatal(err)
	}
	msgs := int(m["mira_collector_messages_total"])
	poll(t, 10*time.Second, fmt.Sprintf("tcpdump to write the %d IPFIX datagrams", msgs), func() (bool, string) {
		n, err := pcapPackets(capture)
		if err != nil {
			t.Fatal(err)
		}
		if n > msgs {
			t.Fatalf("tcpdump recorded %d datagrams, the collector received %d messages", n, msgs)
		}
		return n == msgs, fmt.Sprintf("%d packets in %s", n, capture)
	})
	td.terminate(t, 10*time.Second)
	// Every record is stored (waitMetric above), so nothing is left
	// queued; the kernel must not have dropped a datagram.
	if d, ok := peertest.UDPDrops(cu.udpPort()); !ok || d != 0 {
		t.Fatalf("udp port %d: the kernel dropped %d datagrams (socket listed: %v)", cu.udpPort(), d, ok)
	}
	cu.p.terminate(t, 20*time.Second)
	ct.p.terminate(t, 20*time.Second)

	for _, c := range []struct {
		name string
		db   string
	}{{"udp", cu.db}, {"tcp", ct.db}} {
		rep := parseReport(t, "mira report", run(t, bin(t, "mira"), "report", "--db", c.db, "--format", "json"))
		s := rep.Summary
		if s.Packets != an.Summary.Packets || s.Octets != an.Summary.Octets || s.Flows != an.Summary.Flows || s.Biflows != an.Summary.Biflows {
			t.Errorf("collector over %s: report has %d flows %d biflows %d packets %d octets; mira analyze %d flows %d biflows %d packets %d octets",
				c.name, s.Flows, s.Biflows, s.Packets, s.Octets, an.Summary.Flows, an.Summary.Biflows, an.Summary.Packets, an.Summary.Octets)
		}
		if s.Lost == nil || *s.Lost != 0 || len(s.Malformed) != 0 {
			t.Errorf("collector over %s: lost %v, malformed %v; want 0 and none", c.name, s.Lost, s.Malformed)
		}
	}

	// tshark: the exchange decodes cleanly and carries the same totals.
	port := strconv.Itoa(cu.udpPort())
	out := run(t, tshark, "-r", capture, "-d", "udp.port=="+port+",cflow", "-z", "expert", "-q")
	for _, bad := range []string{"Error", "Malformed", "Warning"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Fatalf("tshark expert info on the IPFIX exchange:\n%s", out)
		}
	}
	out = run(t, tshark, "-r", capture, "-d", "udp.port=="+port+",cflow", "-T", "fields", "-E", "occurrence=a",
		"-e", "cflow.packets", "-e", "cflow.octets")
	var recs, pk, oc uint64
	sum := func(s string) (n, total uint64) {
		for _, v := range strings.Split(s, ",") {
			if v == "" {
				continue
			}
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("tshark value %q: %v", v, err)
			}
			n++
			total += x
		}
		return n, total
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 2 {
			t.Fatalf("tshark fields line %q", sc.Text())
		}
		n, p := sum(f[0])
		_, o := sum(f[1])
		recs += n
		pk += p
		oc += o
	}
	if recs != res.records || pk != an.Summary.Packets || oc != an.Summary.Octets {
		t.Fatalf("tshark decodes %d records, %d packets, %d octets; want %d, %d, %d",
			recs, pk, oc, res.records, an.Summary.Packets, an.Summary.Octets)
	}
	t.Logf("%d datagrams; tshark decodes %d records, %d packets, %d octets", msgs, recs, pk, oc)
}
