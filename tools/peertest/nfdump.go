package peertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// NfdumpRecord is the part of one record of `nfdump -o json` (nfdump
// 1.7) that tests read. For RFC 5103 biflows nfdump shows the forward
// counters as in_* and the reverse ones as out_*.
type NfdumpRecord struct {
	First      string `json:"first"`
	Last       string `json:"last"`
	InPackets  uint64 `json:"in_packets"`
	InBytes    uint64 `json:"in_bytes"`
	OutPackets uint64 `json:"out_packets"`
	OutBytes   uint64 `json:"out_bytes"`
	Proto      uint8  `json:"proto"`
	TCPFlags   string `json:"tcp_flags"`
	SrcPort    uint16 `json:"src_port"`
	DstPort    uint16 `json:"dst_port"`
	ICMPType   uint8  `json:"icmp_type"`
	ICMPCode   uint8  `json:"icmp_code"`
	Src4       string `json:"src4_addr"`
	Dst4       string `json:"dst4_addr"`
	Src6       string `json:"src6_addr"`
	Dst6       string `json:"dst6_addr"`
	// Interface, direction, VLAN and MAC elements: zero or "" when
	// nfdump does not print them (the exporter did not send them).
	Input     uint32 `json:"input_snmp"`
	Direction uint8  `json:"direction"`
	SrcVLAN   uint16 `json:"src_vlan"`
	InSrcMAC  string `json:"in_src_mac"`
	InDstMAC  string `json:"in_dst_mac"`
}

// Endpoints returns the record's source and destination addresses.
func (r *NfdumpRecord) Endpoints() (src, dst netip.Addr, err error) {
	s, d := r.Src4, r.Dst4
	if s == "" {
		s, d = r.Src6, r.Dst6
	}
	if src, err = netip.ParseAddr(s); err != nil {
		return src, dst, fmt.Errorf("nfdump record source: %w", err)
	}
	if dst, err = netip.ParseAddr(d); err != nil {
		return src, dst, fmt.Errorf("nfdump record destination: %w", err)
	}
	return src, dst, nil
}

// Ports returns the ports as MIRA keys them: for ICMP and ICMPv6, source
// 0 and destination type<<8|code.
func (r *NfdumpRecord) Ports() (sport, dport uint16) {
	if r.Proto == 1 || r.Proto == 58 {
		return 0, uint16(r.ICMPType)<<8 | uint16(r.ICMPCode)
	}
	return r.SrcPort, r.DstPort
}

// NfdumpTime parses a time as nfdump -o json prints it (local time,
// no zone) in UTC: the tests run nfdump with TZ=UTC.
func NfdumpTime(s string) (int64, error) {
	v, err := time.ParseInLocation("2006-01-02T15:04:05.000", s, time.UTC)
	if err != nil {
		return 0, fmt.Errorf("nfdump time %q: %w", s, err)
	}
	return v.UnixNano(), nil
}

// FormatNfdumpTime formats a time in nanoseconds since the epoch as
// nfdump -o json prints it under TZ=UTC (milliseconds, truncated).
func FormatNfdumpTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000")
}

// NfdumpFlags renders TCP flags as nfdump prints tcp_flags: one letter
// per bit from CWR to FIN (CEUAPRSF), '.' for a clear bit.
func NfdumpFlags(v uint8) string {
	const names = "CEUAPRSF"
	b := []byte("........")
	for i := range b {
		if v&(0x80>>i) != 0 {
			b[i] = names[i]
		}
	}
	return string(b)
}

// ParseNfdumpJSON parses the output of `nfdump -o json`. With no flows
// nfdump 1.7.1 prints "[", "No matching flows", "]": that is no records.
func ParseNfdumpJSON(b []byte) ([]NfdumpRecord, error) {
	var recs []NfdumpRecord
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] == '[' && b[len(b)-1] == ']' && string(bytes.TrimSpace(b[1:len(b)-1])) == "No matching flows" {
		return nil, nil
	}
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("nfdump json: %w", err)
	}
	return recs, nil
}

// ReadNfdumpJSON reads a file of `nfdump -o json` output (such as the
// corpus's *.nfdump.json), failing the test on error.
func ReadNfdumpJSON(t testing.TB, path string) []NfdumpRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseNfdumpJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// Nfdump runs the real nfdump (skipping when absent, see Program) with
// args and TZ=UTC, and returns its standard output.
func Nfdump(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(Program(t, "nfdump"), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nfdump %q: %v\n%s", args, err, stderr.String())
	}
	return out
}

// Nfcapd is a real nfcapd receiving IPFIX on a UDP port of 127.0.0.1.
type Nfcapd struct {
	// Port is the UDP port it listens on; Dir the directory it writes.
	Port int
	Dir  string

	cmd    *exec.Cmd
	log    bytes.Buffer
	exited chan struct{}
	err    error // of cmd.Wait, once exited is closed
}

// StartNfcapd starts nfcapd on a free port of 127.0.0.1 and returns once
// its socket is bound; it is killed when the test ends unless Stop ran.
func StartNfcapd(t testing.TB) *Nfcapd {
	t.Helper()
	bin := Program(t, "nfcapd")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &Nfcapd{Port: pc.LocalAddr().(*net.UDPAddr).Port, Dir: filepath.Join(t.TempDir(), "flows"), exited: make(chan struct{})}
	pc.Close()
	if err := os.Mkdir(n.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-b", "127.0.0.1", "-p", strconv.Itoa(n.Port), "-w", n.Dir, "-t", "3600")
	n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() { n.cmd.Process.Kill(); <-n.exited })
	WaitUntil(t, 30*time.Second, "nfcapd to bind its socket", func() bool {
		select {
		case <-n.exited:
			t.Fatalf("nfcapd exited:\n%s", n.log.String())
		default:
		}
		_, ok := UDPQueue(n.Port)
		return ok
	})
	return n
}

// URL is the export URL of the nfcapd (udp://127.0.0.1:port).
func (n *Nfcapd) URL() string { return fmt.Sprintf("udp://127.0.0.1:%d", n.Port) }

// Stop waits until nfcapd has read every datagram queued on its socket
// (loopback delivery is synchronous, so what was sent is queued), then
// stops it with SIGTERM, which makes it write its current file. It fails
// the test if the kernel dropped datagrams on the socket (nfcapd too
// slow: what nfdump shows would lack them), or if nfcapd had already
// exited or does not exit cleanly.
func (n *Nfcapd) Stop(t testing.TB) {
	t.Helper()
	if d, ok := n.stop(t); !ok || d != 0 {
		t.Fatalf("nfcapd socket 127.0.0.1:%d: the kernel dropped %d datagrams (socket found: %v)", n.Port, d, ok)
	}
}

// stop is Stop returning the datagrams the kernel dropped on nfcapd's
// socket (ok false: the socket was not found) instead of failing on
// them.
func (n *Nfcapd) stop(t testing.TB) (drops int, ok bool) {
	t.Helper()
	WaitUntil(t, 20*time.Second, "nfcapd to read its socket", func() bool {
		q, ok := UDPQueue(n.Port)
		if !ok {
			select {
			case <-n.exited:
				t.Fatalf("nfcapd exited before Stop: %v\n%s", n.err, n.log.String())
			default:
			}
		}
		return q == 0
	})
	drops, ok = UDPDrops(n.Port)
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous: on a machine busy with other test binaries nfcapd once
	// took more than 20 s to flush its file and exit.
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("nfcapd did not exit within 60 s of SIGTERM:\n%s", n.log.String())
	}
	if n.err != nil {
		t.Fatalf("nfcapd on SIGTERM: %v\n%s", n.err, n.log.String())
	}
	return drops, ok
}

// LossyRecords is Records for tests of what a collector loses: it does
// not fail when the kernel dropped datagrams on nfcapd's socket but
// returns how many it dropped with the records nfdump reads.
func (n *Nfcapd) LossyRecords(t testing.TB) (recs []NfdumpRecord, drops int) {
	t.Helper()
	drops, ok := n.stop(t)
	if !ok {
		t.Fatalf("nfcapd socket 127.0.0.1:%d not found", n.Port)
	}
	recs, err := ParseNfdumpJSON(Nfdump(t, "-R", n.Dir, "-o", "json"))
	if err != nil {
		t.Fatalf("%v\nnfcapd:\n%s", err, n.Log())
	}
	return recs, drops
}

// Log returns what nfcapd printed.
func (n *Nfcapd) Log() string { return n.log.String() }

// Records stops nfcapd (Stop) and returns every record nfdump reads from
// its files.
func (n *Nfcapd) Records(t testing.TB) []NfdumpRecord {
	t.Helper()
	n.Stop(t)
	recs, err := ParseNfdumpJSON(Nfdump(t, "-R", n.Dir, "-o", "json"))
	if err != nil {
		t.Fatalf("%v\nnfcapd:\n%s", err, n.Log())
	}
	return recs
}
