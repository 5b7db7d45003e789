package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReexportToNfdump: `mira report --export udp://...` sends the
// consolidated biflows to a real nfcapd; nfdump shows each biflow once,
// with the initiator's counters in and the responder's out.
func TestReexportToNfdump(t *testing.T) {
	nfcapd, nfdump := peer(t, "nfcapd"), peer(t, "nfdump")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	flowDir := filepath.Join(t.TempDir(), "flows")
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
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	waitFor(t, "nfcapd listening", exited, func() (bool, error) {
		_, found, err := udpSocketQueue(port)
		return found, err
	})

	db := fixtureDB(t)
	out, err := run(t, runReport, "--db", db, "--format", "json", "--export", fmt.Sprintf("udp://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nfcapd reading", exited, func() (bool, error) {
		q, _, err := udpSocketQueue(port)
		return q == 0, err
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("nfcapd did not exit:\n%s", logBuf.String())
	}
	js, err := exec.Command(nfdump, "-R", flowDir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("nfdump: %v\n%s", err, logBuf.String())
	}
	var got []struct {
		Src4       string `json:"src4_addr"`
		Src6       string `json:"src6_addr"`
		SrcPort    uint16 `json:"src_port"`
		DstPort    uint16 `json:"dst_port"`
		InPackets  uint64 `json:"in_packets"`
		InBytes    uint64 `json:"in_bytes"`
		OutPackets uint64 `json:"out_packets"`
		OutBytes   uint64 `json:"out_bytes"`
		Proto      uint8  `json:"proto"`
		ICMPType   uint8  `json:"icmp_type"`
		ICMPCode   uint8  `json:"icmp_code"`
	}
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rep.Biflows) {
		t.Fatalf("nfdump shows %d records, the report %d biflows", len(got), len(rep.Biflows))
	}
	type k struct {
		src    string
		sp, dp uint16
	}
	want := map[k]Biflow{}
	for _, b := range rep.Biflows {
		want[k{b.Src.String(), b.Sport, b.Dport}] = b
	}
	for _, g := range got {
		if g.Proto == 1 || g.Proto == 58 {
			g.SrcPort, g.DstPort = 0, uint16(g.ICMPType)<<8|uint16(g.ICMPCode)
		}
		b, ok := want[k{g.Src4 + g.Src6, g.SrcPort, g.DstPort}]
		if !ok {
			t.Fatalf("nfdump record %+v not in the report", g)
		}
		if g.InPackets != b.Packets || g.InBytes != b.Octets || g.OutPackets != b.RPackets || g.OutBytes != b.ROctets {
			t.Errorf("%s:%d: nfdump in %d/%d out %d/%d, report %d/%d and %d/%d", b.Src, b.Sport,
				g.InPackets, g.InBytes, g.OutPackets, g.OutBytes, b.Packets, b.Octets, b.RPackets, b.ROctets)
		}
	}
}
