package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// ipfixMessage wraps sets into an IPFIX message header (RFC 7011 §3.1).
func ipfixMessage(seq, domain uint32, sets ...[]byte) []byte {
	m := make([]byte, 16)
	binary.BigEndian.PutUint16(m, 10)
	binary.BigEndian.PutUint32(m[4:], uint32(time.Now().Unix()))
	binary.BigEndian.PutUint32(m[8:], seq)
	binary.BigEndian.PutUint32(m[12:], domain)
	for _, s := range sets {
		m = append(m, s...)
	}
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	return m
}

// ipfixSet builds a set; length 0 means the true length.
func ipfixSet(id uint16, length int, body ...uint16) []byte {
	s := make([]byte, 4, 4+2*len(body))
	for _, v := range body {
		s = binary.BigEndian.AppendUint16(s, v)
	}
	if length == 0 {
		length = len(s)
	}
	binary.BigEndian.PutUint16(s, id)
	binary.BigEndian.PutUint16(s[2:], uint16(length))
	return s
}

// malformedMessages are one message per kind of damage, with the reason
// mira-collector must count it under.
func malformedMessages() []struct {
	reason string
	msg    []byte
} {
	return []struct {
		reason string
		msg    []byte
	}{
		// A template set claiming 200 bytes in a 28-byte message.
		{"bad-set-length", ipfixMessage(0, 77, ipfixSet(2, 200, 300, 1, 8, 4))},
		// A template record with no fields (a withdrawal, which UDP forbids).
		{"zero-field-template", ipfixMessage(0, 77, ipfixSet(2, 0, 301, 0))},
		// A data set for template 400, never defined.
		{"data-without-template", ipfixMessage(0, 77, ipfixSet(400, 0, 1, 2, 3, 4))},
		// A template record announcing 65535 fields, carrying one.
		{"field-count", ipfixMessage(0, 77, ipfixSet(2, 0, 302, 65535, 8, 4))},
	}
}

// TestCollectorSurvivesMalformedIPFIX sends damaged IPFIX messages to a
// running mira-collector before, while and after mira-probe exports a
// trace to it: the collector keeps running, counts each message by reason
// on /metrics and in `mira report`, and stores every good record.
func TestCollectorSurvivesMalformedIPFIX(t *testing.T) {
	pcap := synthPcap(t, t.TempDir())
	coll := startCollector(t, true, false)
	bad, err := net.Dial("udp", coll.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	const rounds = 3
	sendBad := func() {
		t.Helper()
		for _, m := range malformedMessages() {
			if _, err := bad.Write(m.msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	sendBad()
	probe := start(t, bin(t, "mira-probe"), "--log-level", "info", "-r", pcap, "--export", "udp://"+coll.udp)
	sendBad()
	probe.wait(t, 30*time.Second)
	sendBad()
	m := captureEndedRE.FindStringSubmatch(probe.stderr.String())
	if m == nil {
		t.Fatalf("mira-probe printed no \"capture ended\" line:\n%s", probe.stderr.String())
	}
	var records uint64
	fmt.Sscan(m[3], &records)

	want := map[string]uint64{}
	for _, mm := range malformedMessages() {
		want[mm.reason] = rounds
		coll.waitMetric(t, fmt.Sprintf(`mira_collector_malformed_total{reason=%q}`, mm.reason), rounds)
	}
	coll.waitMetric(t, "mira_collector_stored_records_total", records)
	waitUDPDrained(t, coll.udpPort())
	coll.p.terminate(t, 20*time.Second)

	rep := parseReport(t, "mira report", run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json"))
	if !maps.Equal(rep.Summary.Malformed, want) {
		t.Errorf("mira report summary: malformed %v, want %v", rep.Summary.Malformed, want)
	}
	if uint64(rep.Summary.Flows) != records {
		t.Errorf("mira report: %d flows stored, mira-probe exported %d", rep.Summary.Flows, records)
	}
	an := analyzeJSON(t, pcap)
	if rep.Summary.Packets != an.Summary.Packets || rep.Summary.Octets != an.Summary.Octets {
		t.Errorf("mira report: %d packets %d octets, mira analyze %d packets %d octets",
			rep.Summary.Packets, rep.Summary.Octets, an.Summary.Packets, an.Summary.Octets)
	}
}

// TestCollectorSIGTERMFlushes sends N records to mira-collector, sends it
// SIGTERM as soon as it has decoded them all (before its next periodic
// commit, most of the time) and counts N records in the store after it
// has exited.
func TestCollectorSIGTERMFlushes(t *testing.T) {
	const n = 30000
	coll := startCollector(t, false, true)
	e, err := exporter.New("tcp://"+coll.tcp, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := ipfixtest.Random(7, n)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	coll.waitMetric(t, "mira_collector_records_total", n)
	coll.p.terminate(t, 20*time.Second)
	out := run(t, bin(t, "mira"), "flows", "--db", coll.db, "--format", "json", "--limit", "1")
	var l miraFlows
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("mira flows: %v\n%s", err, out)
	}
	var pk uint64
	for i := range recs {
		pk += recs[i].Packets
	}
	if l.Summary.Flows != n || l.Summary.Packets != pk {
		t.Fatalf("store holds %d flows, %d packets after SIGTERM; sent %d flows, %d packets", l.Summary.Flows, l.Summary.Packets, n, pk)
	}
}
