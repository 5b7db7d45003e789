package report

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/collector/store"
)

// peer returns the path of a peer program, skipping the test when it is
// not installed (failing under MIRA_REQUIRE_PEERS=1).
func peer(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if requirePeers() {
			t.Fatalf("peer program %s: %v", name, err)
		}
		t.Skipf("peer program %s: %v", name, err)
	}
	return p
}

// udpSocketQueue reads /proc/net/udp for the socket bound to
// 127.0.0.1:port and returns its receive queue length.
func udpSocketQueue(port int) (rxQueue int, found bool, err error) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, false, err
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != local {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		n, err := strconv.ParseUint(rx, 16, 64)
		return int(n), true, err
	}
	return 0, false, nil
}

// waitFor polls cond until it holds, the process exits or the deadline
// passes. cond reads kernel state, so this is not a guess about timing.
func waitFor(t *testing.T, what string, exited <-chan struct{}, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s: nfcapd exited", what)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
	}
}

// TestNfdumpBidirectionalAgrees sends softflowd's IPFIX export of a real
// capture to a live nfcapd, pairs nfdump's decoding of the uniflows through
// the store and `mira report`, and compares the TCP and UDP biflows with
// `nfdump -B` (which pairs only those protocols and, like MIRA on equal
// start times, takes the side sending to the lower port as the client).
func TestNfdumpBidirectionalAgrees(t *testing.T) {
	nfcapd, nfdump := peer(t, "nfcapd"), peer(t, "nfdump")
	ipfix, err := os.ReadFile(corpusFile(t, "ipfix-softflowd-milli.ipfix"))
	if err != nil {
		t.Fatal(err)
	}

	// A free port: bind, note it, release it for nfcapd.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()

	dir := t.TempDir()
	flowDir := filepath.Join(dir, "flows")
	if err := os.Mkdir(flowDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	cmd := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", flowDir, "-t", "60")
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitFor(t, "nfcapd listening", exited, func() (bool, error) {
		_, found, err := udpSocketQueue(port)
		return found, err
	})

	conn, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := 0
	for off := 0; off+16 <= len(ipfix); msgs++ {
		n := int(binary.BigEndian.Uint16(ipfix[off+2:]))
		if n < 16 || off+n > len(ipfix) {
			t.Fatalf("ipfix message at offset %d: bad length %d", off, n)
		}
		if _, err := conn.Write(ipfix[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	// Loopback delivery is synchronous: the datagrams are queued now, and
	// an empty queue means nfcapd has read them all.
	waitFor(t, "nfcapd reading", exited, func() (bool, error) {
		q, _, err := udpSocketQueue(port)
		return q == 0, err
	})
	// SIGTERM makes nfcapd flush and rename its current file.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("nfcapd did not exit on SIGTERM:\n%s", logBuf.String())
	}

	uniJSON, err := exec.Command(nfdump, "-R", flowDir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("nfdump: %v\nnfcapd log:\n%s", err, logBuf.String())
	}
	var uni []nfdumpRecord
	if err := json.Unmarshal(uniJSON, &uni); err != nil {
		t.Fatalf("nfdump json: %v", err)
	}
	if len(uni) != 40 {
		t.Fatalf("nfdump decoded %d uniflows from %d messages, want 40", len(uni), msgs)
	}
	biCSV, err := exec.Command(nfdump, "-R", flowDir, "-B", "-q", "-o", "csv").Output()
	if err != nil {
		t.Fatalf("nfdump -B: %v", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(biCSV)).ReadAll()
	if err != nil {
		t.Fatalf("nfdump -B csv: %v", err)
	}

	db := filepath.Join(dir, "flows.db")
	s, err := store.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	for i := range uni {
		recs = append(recs, uni[i].record(t))
	}
	if err := s.Put(store.Origin{Exporter: "127.0.0.1"}, recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var out bytes.Buffer
	if err := RunReport(context.Background(), []string{"--db", db, "--format", "json"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	mine := map[string]*Biflow{}
	for i := range rep.Biflows {
		b := &rep.Biflows[i]
		if b.Proto == 6 || b.Proto == 17 {
			mine[fmt.Sprintf("%s %d %s %d", b.Src, b.Sport, b.Dst, b.Dport)] = b
		}
	}
	compared := 0
	for _, r := range rows {
		if len(r) < 15 || (r[7] != "TCP" && r[7] != "UDP") {
			continue
		}
		compared++
		src, dst := netip.MustParseAddr(r[3]), netip.MustParseAddr(r[4])
		key := fmt.Sprintf("%s %s %s %s", src, r[5], dst, r[6])
		b, ok := mine[key]
		if !ok {
			t.Errorf("nfdump -B biflow %s (%s): no MIRA biflow in that direction", key, r[7])
			continue
		}
		want := r[11] + "/" + r[13] + " " + r[12] + "/" + r[14]
		got := fmt.Sprintf("%d/%d %d/%d", b.Packets, b.RPackets, b.Octets, b.ROctets)
		if got != want {
			t.Errorf("%s: packets/rpackets octets/roctets %s, nfdump -B %s", key, got, want)
		}
	}
	if compared == 0 || compared != len(mine) {
		t.Errorf("nfdump -B has %d TCP/UDP biflows, MIRA %d", compared, len(mine))
	}
}
