package server_test

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

	"github.com/mira-project/mira/tools/peertest"
)

func udpQueue(port int) (int, bool) { return peertest.UDPQueue(port) }

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	peertest.WaitUntil(t, 20*time.Second, what, cond)
}

// TestForwardToNfdump: mira-collector configured with forward re-exports
// the biflows it consolidates from two probes (split by direction) as
// RFC 5103 IPFIX to a real nfcapd; nfdump's in plus out bytes add up to
// the capture's bytes, and paired connections carry both directions in
// one record.
func TestForwardToNfdump(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	nfcapd, err := exec.LookPath("nfcapd")
	if err != nil {
		if requirePeers() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	pcap := capture(t)
	probeBin, collBin := binaries(t)
	base := consolidate(t, probeBin, collBin, pcap, []string{rules}, 0)

	nfPort := freeUDPPortServer(t)
	flowDir := t.TempDir()
	var nlog bytes.Buffer
	nf := exec.Command(nfcapd, "-b", "127.0.0.1", "-p", strconv.Itoa(nfPort), "-w", flowDir, "-t", "3600")
	nf.Stdout, nf.Stderr = &nlog, &nlog
	if err := nf.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nf.Process.Kill(); nf.Wait() })
	waitCond(t, "nfcapd to bind", func() bool { _, ok := udpQueue(nfPort); return ok })

	cfg := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("forward: [udp://127.0.0.1:%d]\n", nfPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCollector(t, collBin, "--config", cfg)
	n := runProbes(t, probeBin, pcap, c.port, []string{
		rules + "  scope: {directions: [outgoing, internal]}\n",
		rules + "  scope: {directions: [incoming, transit]}\n",
	})
	c.waitRecords(t, n)
	c.stop(t)
	waitCond(t, "nfcapd to read", func() bool { q, _ := udpQueue(nfPort); return q == 0 })
	nf.Process.Signal(syscall.SIGTERM)
	nf.Wait()
	out, err := exec.Command("nfdump", "-R", flowDir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("nfdump: %v\n%s\ncollector:\n%s", err, nlog.String(), c.log.String())
	}
	var recs []map[string]any
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatal(err)
	}
	var bytesIn, bytesOut uint64
	paired := 0
	for _, r := range recs {
		in, _ := r["in_bytes"].(float64)
		o, _ := r["out_bytes"].(float64)
		bytesIn += uint64(in)
		bytesOut += uint64(o)
		if o > 0 {
			paired++
		}
	}
	t.Logf("nfdump: %d biflow records (%d with both directions), in %d + out %d bytes; one probe: %d biflows, %d bytes",
		len(recs), paired, bytesIn, bytesOut, base.biflows, base.octets)
	if bytesIn+bytesOut != base.octets || paired == 0 || len(recs) == 0 {
		t.Fatalf("forwarded in+out bytes %d, capture %d; %d paired records", bytesIn+bytesOut, base.octets, paired)
	}
}

func freeUDPPortServer(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}
