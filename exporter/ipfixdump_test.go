package exporter

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// runIpfixDump runs libfixbuf's ipfixDump on an IPFIX file and fails on
// any warning or error it prints (out-of-sequence messages included).
func runIpfixDump(t *testing.T, file string) string {
	t.Helper()
	return runIpfixDumpArgs(t, file, true)
}

// runIpfixDumpArgs is runIpfixDump; without elements MIRA's registry is
// not given to ipfixDump, which learns the elements from RFC 5610 type
// records instead (--rfc5610).
func runIpfixDumpArgs(t *testing.T, file string, elements bool) string {
	t.Helper()
	bin := peertest.Program(t, "ipfixDump")
	// MIRA's elements, named and typed from the registry.
	xmlFile := filepath.Join(t.TempDir(), "mira-elements.xml")
	var x strings.Builder
	if err := ipfix.WriteElementXML(&x, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xmlFile, []byte(x.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	cmd := exec.Command(bin, "--element-file", xmlFile, "--in", file)
	if !elements {
		cmd = exec.Command(bin, "--rfc5610", "--in", file)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ipfixDump: %v\n%s", err, stderr.String())
	}
	out := stdout.String() + stderr.String()
	for _, bad := range []string{"WARNING", "ERROR", "rror", "out of sequence", "Malformed", "illegal"} {
		if strings.Contains(out, bad) {
			i := strings.Index(out, bad)
			t.Fatalf("ipfixDump reports %q: ...%s...", bad, out[max(0, i-200):min(len(out), i+200)])
		}
	}
	return stdout.String()
}

// checkIpfixDump checks that ipfixDump saw every record, the symptom
// subTemplateLists decoded, and MIRA's elements under their PEN.
func checkIpfixDump(t *testing.T, out string, recs []flow.Record, options int) {
	t.Helper()
	if n := topRecords(out); n != len(recs)+options {
		t.Fatalf("ipfixDump shows %d data records, want %d", n, len(recs)+options)
	}
	lists := 0
	for _, r := range recs {
		if len(r.Symptoms) > 0 {
			lists++
		}
	}
	if n := strings.Count(out, "+++ subTemplateList +++"); n != lists {
		t.Fatalf("ipfixDump shows %d subTemplateLists, want %d", n, lists)
	}
	// The first symptom list of the samples: (4, 2), (9, 1).
	re := regexp.MustCompile(`count: 2\s+semantic: 3-allOf\s+tid:\s+384[^\n]*\n(?s:.*?)\(32473/11\)\s+symptomId : 4\n(?s:.*?)\(32473/12\)\s+symptomOccurrences : 2\n(?s:.*?)\(32473/11\)\s+symptomId : 9\n(?s:.*?)\(32473/12\)\s+symptomOccurrences : 1\n`)
	if !re.MatchString(out) {
		t.Fatal("ipfixDump output lacks the decoded symptom list (4: 2, 9: 1)")
	}
	if !strings.Contains(out, "innerOctetDeltaCount : 11600") || !strings.Contains(out, "tunnelSourceIPv4Address : 203.0.113.4") ||
		!strings.Contains(out, "tunnelDestinationIPv6Address : 2001:0db8:ffff::0002") || !strings.Contains(out, "atmVci : 42") {
		t.Fatal("ipfixDump output lacks innerOctetDeltaCount or the tunnelled record")
	}
	checkAppElements(t, out)
}

// checkAppElements checks the samples' application metadata in ipfixDump's
// output, named.
func checkAppElements(t *testing.T, out string) {
	t.Helper()
	for _, ie := range []string{`httpRequestHost : \(len: 20\) www\.example\.org:8080\n`, `tlsServerName : \(len: 16\) mail\.example\.net\n`,
		`tlsAlpnList : \(len: 7\) smtp,h2\n`, `dnsQueryName : \(len: 15\) www\.example\.com\n`, `dnsResponseCode : 3\n`,
		`ftpDataPortList : \(len: 14\) 50126,50127,20\n`} {
		if !regexp.MustCompile(ie).MatchString(out) {
			t.Errorf("ipfixDump shows no %q", ie)
		}
	}
}

// TestIpfixDumpElementTypes: with ElementTypes, ipfixDump --rfc5610
// names MIRA's enterprise elements from the RFC 5610 records alone.
func TestIpfixDumpElementTypes(t *testing.T) {
	dir := t.TempDir()
	e, err := New("file://"+dir, &Config{ElementTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	recs := ipfixtest.Samples()
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "mira-*.ipfix"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	out := runIpfixDumpArgs(t, files[0], false)
	checkAppElements(t, out)
	if !strings.Contains(out, "innerOctetDeltaCount : 11600") || !strings.Contains(out, "atmVci : 42") {
		t.Fatal("ipfixDump --rfc5610 does not name MIRA's elements")
	}
	if !strings.Contains(out, "informationElementName") {
		t.Fatal("ipfixDump shows no RFC 5610 type records")
	}
}

// TestIpfixDumpNamesTyped: the aggregate, symptom and category names a
// probe announces, and its ledger, are read by ipfixDump --rfc5610 with
// their elements named and typed: the RFC 5610 type records come before
// them. They came after, so ipfixDump decoded those records before it
// knew MIRA's elements and showed "_alienInformationElement : 256" for
// symptom 1 (two octets read as raw bytes). The sampling options stay
// first, for nfdump (TestNfdumpSampling), so PSAMP's enterprise
// flowSamplingInterval is the one element still read before its type.
func TestIpfixDumpNamesTyped(t *testing.T) {
	dir := t.TempDir()
	e, err := New("file://"+dir, &Config{ElementTypes: true, AggregateNames: map[uint32]string{1: "campus"},
		SymptomNames: map[uint16]string{1: "MAIL", 2: "WEB"}, CategoryNames: map[uint16]string{3: "Web"},
		Ledger: testLedger, Sampling: &ipfix.Sampling{Interval: 4, SelectorAlgorithm: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(ipfixtest.Samples()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "mira-*.ipfix"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	out := runIpfixDumpArgs(t, files[0], false)
	for _, l := range strings.Split(out, "\n") {
		// Only the type records' own template precedes them.
		if strings.Contains(l, "_alienInformationElement") && !strings.Contains(l, "ent: 32473") && !strings.Contains(l, "(32473/14)") {
			t.Errorf("ipfixDump --rfc5610 could not name an element: %s", strings.TrimSpace(l))
		}
	}
	for _, want := range []string{`symptomId : 1\n`, `symptomName : \(len: 4\) MAIL`, `aggregateName : \(len: 6\) campus`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("ipfixDump --rfc5610 shows no %s", want)
		}
	}
}

// testLedger is a probe ledger with a few stages counted.
func testLedger() flow.Loss { return flow.Loss{Ring: 3, Queue: 4, Eviction: 9} }

// TestIpfixDumpFile exports to file:// with exporter metadata on and reads
// the RFC 5655 file with ipfixDump.
func TestIpfixDumpFile(t *testing.T) {
	dir := t.TempDir()
	e, err := New("file://"+dir, &Config{ExporterMetadata: true, StreamMessageSize: 2000, Ledger: testLedger})
	if err != nil {
		t.Fatal(err)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(6, 200)...)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "mira-*.ipfix"))
	if len(files) != 1 || !regexp.MustCompile(`/mira-\d{14}\.ipfix$`).MatchString(files[0]) {
		t.Fatalf("files %v", files)
	}
	domains := map[uint32]bool{}
	for _, r := range recs {
		domains[r.ObservationDomain] = true
	}
	out := runIpfixDump(t, files[0])
	// Per domain: the exporter record, and the ledger at start and end.
	checkIpfixDump(t, out, recs, 3*len(domains))
	if !strings.Contains(out, "exportingProcessId") {
		t.Fatal("no exporter options record")
	}
	for _, ie := range []string{"ignoredPacketTotalCount : 7", "notSentFlowTotalCount : 0", "lossRingPacketTotalCount : 3", "lossEvictionFlowTotalCount : 9"} {
		if !strings.Contains(out, ie) {
			t.Fatalf("ipfixDump shows no %q in the ledger records", ie)
		}
	}
}

// TestFileRotation checks that file:// starts a new, self-contained file
// each rotation period.
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	e, err := New("file://"+dir, &Config{FileRotate: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	recs := ipfixtest.Samples()
	for i := 0; i < 3; i++ {
		if err := e.Export(recs); err != nil {
			t.Fatal(err)
		}
		now = now.Add(40 * time.Second)
	}
	e.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	want := []string{"mira-20261127050000.ipfix", "mira-20261127050120.ipfix"}
	if len(files) != 2 || filepath.Base(files[0]) != want[0] || filepath.Base(files[1]) != want[1] {
		t.Fatalf("files %v, want %v", files, want)
	}
	for _, f := range files {
		runIpfixDump(t, f)
	}
}

// TestIpfixDumpTCP exports over TCP into a sink that writes the byte
// stream to a file, then reads it with ipfixDump.
func TestIpfixDumpTCP(t *testing.T) {
	peertest.Program(t, "ipfixDump")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := filepath.Join(t.TempDir(), "recv.ipfix")
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		f, err := os.Create(file)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, c)
		f.Close()
		done <- err
	}()
	e, err := New("tcp://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(7, 500)...)
	for i := 0; i < len(recs); i += 100 {
		if err := e.Export(recs[i:min(i+100, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkIpfixDump(t, runIpfixDump(t, file), recs, 0)
}

// TestTCPReconnect kills the collector's connection mid-stream: the
// exporter reconnects, resends templates first, and the second
// connection's stream stands alone for ipfixDump.
func TestTCPReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	conns := make(chan string, 2)
	first := make(chan net.Conn, 1)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			name := filepath.Join(dir, fmt.Sprintf("conn%d.ipfix", i))
			if i == 0 {
				first <- c
			}
			go func() {
				f, _ := os.Create(name)
				io.Copy(f, c)
				c.Close() // at EOF, as collectors do
				f.Close()
				conns <- name
			}()
		}
	}()
	e, err := New("tcp://"+ln.Addr().String(), &Config{RetryMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	recs := ipfixtest.Samples()
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	c := <-first
	c.Close() // the collector goes away
	<-conns
	// Writes into a connection the peer closed fail once the RST is back;
	// keep exporting until the exporter notices and reconnects.
	for e.Stats().Reconnects == 0 {
		if ctx.Err() != nil {
			t.Fatal("exporter never reconnected")
		}
		if err := e.Export(recs); err != nil {
			t.Fatal(err)
		}
	}
	// The batch that failed went out again on the new connection (what
	// the kernel had accepted before the reset is lost: TCP cannot say);
	// one more batch follows it.
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	second := <-conns
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	s := ipfix.NewSession("second connection")
	for len(b) >= ipfix.HeaderLen {
		h, _ := ipfix.ParseHeader(b)
		if _, _, err := s.Decode(b[:h.Length], nil); err != nil {
			t.Fatalf("second connection: %v", err)
		}
		b = b[h.Length:]
	}
	if st := s.Stats(); st.FlowRecords <= uint64(len(recs)) || st.Malformed != [ipfix.NumReasons]uint64{} {
		t.Fatalf("second connection decodes to %+v", st)
	}
	out := runIpfixDump(t, second)
	if !strings.HasPrefix(strings.TrimSpace(out), "--- Message Header ---") || !strings.Contains(out, "template record") || topRecords(out) <= len(recs) {
		t.Fatalf("second connection has %d records: %s", topRecords(out), out[:min(len(out), 3000)])
	}
}

// topRecords counts ipfixDump's top-level data records (sub-template
// records inside lists are indented).
func topRecords(out string) int {
	return len(regexp.MustCompile(`(?m)^--- data record`).FindAllStringIndex(out, -1))
}
