package exporter

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// writePcap frames UDP payloads as Ethernet/IPv4/UDP from port 40000 to
// dport and writes a pcap file.
func writePcap(t *testing.T, path string, dport uint16, payloads [][]byte) {
	t.Helper()
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 0xa1b2c3d4)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 65535)
	b = le.AppendUint32(b, 1) // LINKTYPE_ETHERNET
	ts := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	for i, p := range payloads {
		frame := []byte{0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00}
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(p)))
		binary.BigEndian.PutUint16(ip[4:], uint16(i))
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := binary.BigEndian.AppendUint16(nil, 40000)
		udp = binary.BigEndian.AppendUint16(udp, dport)
		udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(p)))
		udp = binary.BigEndian.AppendUint16(udp, 0) // no checksum (allowed for IPv4)
		frame = append(append(append(frame, ip...), udp...), p...)
		at := ts.Add(time.Duration(i) * time.Millisecond)
		b = le.AppendUint32(b, uint32(at.Unix()))
		b = le.AppendUint32(b, uint32(at.Nanosecond()/1000))
		b = le.AppendUint32(b, uint32(len(frame)))
		b = le.AppendUint32(b, uint32(len(frame)))
		b = append(b, frame...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTshark exports over UDP to a Go receiver, writes the datagrams as a
// pcap and has tshark's cflow dissector decode it with no malformed
// packets and no expert errors or warnings.
func TestTshark(t *testing.T) {
	bin := peertest.Program(t, "tshark")
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e, err := New("udp://"+pc.LocalAddr().String(), &Config{MTU: 1000, TemplateRefreshMessages: 5, Ledger: testLedger, ElementTypes: true,
		SymptomNames: map[uint16]string{1: "MAIL", 2: "WEB", 3: "FTP", 4: "P2P", 5: "MP3", 6: "AUDIO", 7: "VIDEO", 8: "GAMES", 9: "RAKNET", 10: "CHAT", 11: "VOIP", 12: "TLS", 13: "SSH", 14: "DNS"}})
	if err != nil {
		t.Fatal(err)
	}
	recs := append(ipfixtest.Samples(), ipfixtest.Random(8, 100)...)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	st := e.Stats()
	var payloads [][]byte
	buf := make([]byte, 65536)
	for uint64(len(payloads)) < st.Messages {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(payloads), st.Messages, err)
		}
		if n > 1000 {
			t.Fatalf("datagram of %d bytes exceeds the MTU of 1000", n)
		}
		payloads = append(payloads, append([]byte(nil), buf[:n]...))
	}
	pcap := filepath.Join(t.TempDir(), "ipfix.pcap")
	writePcap(t, pcap, 4739, payloads)
	v := tsharkClean(t, bin, pcap)
	if n := strings.Count(v, "Cisco NetFlow/IPFIX"); n != len(payloads) {
		t.Fatalf("tshark decoded %d IPFIX messages, want %d", n, len(payloads))
	}
	// The RFC 5610 type records (options, several datagrams within the
	// MTU) decode: tshark shows the elements' names.
	for _, name := range []string{"tlsServerName", "ftpDataPortList", "dnsResponseCode"} {
		if !strings.Contains(v, name) {
			t.Errorf("tshark shows no RFC 5610 record naming %s", name)
		}
	}
	// Every record's octet count is decoded from its data set.
	fields, err := exec.Command(bin, "-r", pcap, "-d", "udp.port==4739,cflow", "-T", "fields", "-e", "cflow.octets").Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range strings.FieldsFunc(string(fields), func(r rune) bool { return r == ',' || r == '\n' }) {
		seen[f]++
	}
	for _, r := range recs {
		k := strconv.FormatUint(r.Octets, 10)
		if seen[k] == 0 {
			t.Fatalf("tshark shows no record of %d octets", r.Octets)
		}
		seen[k]--
	}
	ex, err := exec.Command(bin, "-r", pcap, "-d", "udp.port==4739,cflow", "-q", "-z", "expert").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(ex); strings.Contains(s, "Errors (") || strings.Contains(s, "Warnings (") {
		t.Fatalf("tshark expert info:\n%s", s)
	}
	t.Logf("%d datagrams, %d records decoded by tshark", len(payloads), len(recs))
}

// tsharkClean decodes pcap (IPFIX on UDP port 4739) with tshark -V and
// fails on malformed packets, expert errors or warnings and undecoded
// data; it returns tshark's output.
func tsharkClean(t *testing.T, tshark, pcap string) string {
	t.Helper()
	out, err := exec.Command(tshark, "-r", pcap, "-d", "udp.port==4739,cflow", "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	v := string(out)
	for _, bad := range []string{"Malformed", "Expert Info (Error", "Expert Info (Warning", "[Data"} {
		if i := strings.Index(v, bad); i >= 0 {
			t.Fatalf("tshark reports %q: ...%s...", bad, v[max(0, i-1500):min(len(v), i+300)])
		}
	}
	return v
}
