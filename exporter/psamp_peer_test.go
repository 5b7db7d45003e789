package exporter

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// TestPSAMPOptionsPeers exports hash-sampled records with the sampling
// and aggregate-name options over UDP, with templates (and so options)
// resent every few messages, and has the two reference decoders read the
// datagrams: tshark must decode every options record (PSAMP hash
// parameters included) with no malformed packet or expert warning, and
// ipfixDump must read the same messages as a stream with no warning, its
// sequence check (which counts options records, as RFC 7011 says)
// included.
func TestPSAMPOptionsPeers(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	peertest.Program(t, "ipfixDump")
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	smp := hashSampling(10, 77)
	names := map[uint32]string{1: "campus-in", 2: "campus-out"}
	e, err := New("udp://"+pc.LocalAddr().String(), &Config{Sampling: &smp, AggregateNames: names, MTU: 1000, TemplateRefreshMessages: 3})
	if err != nil {
		t.Fatal(err)
	}
	recs := sampledRecords(150, 0)
	for i := range recs {
		recs[i].SamplingFlowInterval = 10
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	// Sampling, PSAMP, the records' one selector, the names.
	announcements := int(st.OptionsRecords) / (3 + len(names))
	if announcements < 3 {
		t.Fatalf("only %d options announcements in %d messages", announcements, st.Messages)
	}
	var payloads [][]byte
	var stream []byte
	buf := make([]byte, 65536)
	for uint64(len(payloads)) < st.Messages {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(payloads), st.Messages, err)
		}
		payloads = append(payloads, append([]byte(nil), buf[:n]...))
		stream = append(stream, buf[:n]...)
	}

	dir := t.TempDir()
	pcap := filepath.Join(dir, "psamp.pcap")
	writePcap(t, pcap, 4739, payloads)
	tsharkClean(t, tshark, pcap)
	fields, err := exec.Command(tshark, "-r", pcap, "-d", "udp.port==4739,cflow", "-T", "fields", "-E", "separator=;",
		"-Y", "cflow.hash_selected_range_max",
		"-e", "cflow.selector_algorithm", "-e", "cflow.sampling_probability",
		"-e", "cflow.hash_output_range_min", "-e", "cflow.hash_output_range_max",
		"-e", "cflow.hash_selected_range_min", "-e", "cflow.hash_selected_range_max",
		"-e", "cflow.hash_initialiser_value").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.TrimSpace(string(fields)))
	// p = 429496730 / 2^32, the selected share of BOB's output range.
	want := "6;0.1000000000...;0;4294967295;0;429496729;77"
	re := regexp.MustCompile(`^6;0\.1000000000\d*;0;4294967295;0;429496729;77$`)
	if len(lines) != announcements {
		t.Fatalf("tshark shows %d PSAMP hash records, want %d:\n%s", len(lines), announcements, fields)
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Fatalf("tshark PSAMP record %q, want %s", l, want)
		}
	}

	file := filepath.Join(dir, "psamp.ipfix")
	if err := os.WriteFile(file, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	dump := runIpfixDump(t, file)
	for _, w := range []string{"hashOutputRangeMax : 4294967295", "hashSelectedRangeMax : 429496729", "hashInitialiserValue : 77", "selectorAlgorithm : 6", "aggregateName : (len: 10) campus-out"} {
		if n := strings.Count(dump, w); n != announcements {
			t.Fatalf("ipfixDump shows %q %d times, want %d", w, n, announcements)
		}
	}
	if n := topRecords(dump); n != len(recs)+int(st.OptionsRecords) {
		t.Fatalf("ipfixDump shows %d data records, want %d flows and %d options records", n, len(recs), st.OptionsRecords)
	}
}
