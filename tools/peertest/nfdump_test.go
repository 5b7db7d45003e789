package peertest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nfdumpOut is what nfdump 1.7.1 -o json printed (TZ=UTC) for two of
// the exporter's sample records sent to nfcapd: a TCP flow with VLAN,
// MACs and an input interface, and an ICMPv6 echo request.
const nfdumpOut = `[
{
	"type" : "FLOW",
	"sampled" : 0,
	"export_sysid" : 1,
	"first" : "2019-03-14T19:03:54.892",
	"last" : "2019-03-14T19:04:03.371",
	"received" : "2026-11-27T07:48:36.015",
	"in_packets" : 12,
	"in_bytes" : 2301,
	"proto" : 6,
	"tcp_flags" : "...AP.SF",
	"src_port" : 40001,
	"dst_port" : 25,
	"src_tos" : 0,
	"src4_addr" : "192.0.2.1",
	"dst4_addr" : "198.51.100.7",
	"input_snmp" : 3,
	"output_snmp" : 0,
	"direction" : 0,
	"src_vlan" : 12,
	"dst_vlan" : 0,
	"ip4_router" : "127.0.0.1",
	"in_src_mac" : "02:00:00:00:00:01",
	"out_dst_mac" : "00:00:00:00:00:00",
	"in_dst_mac" : "02:00:00:00:00:02",
	"out_src_mac" : "00:00:00:00:00:00",
	"label" : "<none>"
},
{
	"type" : "FLOW",
	"first" : "2019-03-14T19:03:58.892",
	"last" : "2019-03-14T19:03:59.892",
	"in_packets" : 2,
	"in_bytes" : 208,
	"proto" : 58,
	"icmp_type" : 128,
	"icmp_code" : 0,
	"src6_addr" : "2001:db8::2",
	"dst6_addr" : "2001:db8::3",
	"input_snmp" : 0,
	"direction" : 1,
	"src_vlan" : 0,
	"label" : "<none>"
}
]`

func TestParseNfdumpJSON(t *testing.T) {
	recs, err := ParseNfdumpJSON([]byte(nfdumpOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	tcp, icmp := recs[0], recs[1]
	want := NfdumpRecord{First: "2019-03-14T19:03:54.892", Last: "2019-03-14T19:04:03.371", InPackets: 12, InBytes: 2301,
		Proto: 6, TCPFlags: "...AP.SF", SrcPort: 40001, DstPort: 25, Src4: "192.0.2.1", Dst4: "198.51.100.7",
		Input: 3, SrcVLAN: 12, InSrcMAC: "02:00:00:00:00:01", InDstMAC: "02:00:00:00:00:02"}
	if tcp != want {
		t.Fatalf("tcp record\n got  %+v\n want %+v", tcp, want)
	}
	if icmp.Direction != 1 || icmp.ICMPType != 128 || icmp.SrcPort != 0 {
		t.Fatalf("icmpv6 record %+v", icmp)
	}
	for _, tc := range []struct {
		r            NfdumpRecord
		src, dst     string
		sport, dport uint16
	}{
		{tcp, "192.0.2.1", "198.51.100.7", 40001, 25},
		{icmp, "2001:db8::2", "2001:db8::3", 0, 128 << 8},
	} {
		src, dst, err := tc.r.Endpoints()
		if err != nil || src != netip.MustParseAddr(tc.src) || dst != netip.MustParseAddr(tc.dst) {
			t.Errorf("proto %d: endpoints %v %v %v, want %s %s", tc.r.Proto, src, dst, err, tc.src, tc.dst)
		}
		if sp, dp := tc.r.Ports(); sp != tc.sport || dp != tc.dport {
			t.Errorf("proto %d: ports %d %d, want %d %d", tc.r.Proto, sp, dp, tc.sport, tc.dport)
		}
	}
	if _, _, err := (&NfdumpRecord{Src4: "192.0.2.1"}).Endpoints(); err == nil {
		t.Error("Endpoints accepted a record without destination")
	}
	for _, empty := range []string{"\n", "[\nNo matching flows\n]\n"} {
		if recs, err := ParseNfdumpJSON([]byte(empty)); recs != nil || err != nil {
			t.Errorf("output %q: %v, %v", empty, recs, err)
		}
	}
	if _, err := ParseNfdumpJSON([]byte("[\nNo matching flows\n")); err == nil {
		t.Error("ParseNfdumpJSON accepted output without its closing bracket")
	}
	if _, err := ParseNfdumpJSON([]byte(`[{"in_packets": "x"}]`)); err == nil {
		t.Error("ParseNfdumpJSON accepted a string for in_packets")
	}
}

func TestNfdumpTimeAndFlags(t *testing.T) {
	ns := time.Date(2019, 3, 14, 19, 3, 54, 892_999_999, time.UTC).UnixNano()
	s := FormatNfdumpTime(ns)
	if s != "2019-03-14T19:03:54.892" {
		t.Fatalf("FormatNfdumpTime = %q", s)
	}
	if back, err := NfdumpTime(s); err != nil || back != ns-999_999 {
		t.Fatalf("NfdumpTime(%q) = %d, %v, want %d", s, back, err, ns-999_999)
	}
	for v, want := range map[uint8]string{0: "........", 0x1b: "...AP.SF", 0x12: "...A..S.", 0x04: ".....R..", 0xff: "CEUAPRSF", 0x80: "C......."} {
		if got := NfdumpFlags(v); got != want {
			t.Errorf("NfdumpFlags(%#x) = %q, want %q", v, got, want)
		}
	}
}

// TestUDPQueueAndDrops fills a small socket buffer over loopback, where
// delivery is synchronous: the queue must show bytes and the kernel must
// count drops, both zero on a fresh socket.
func TestUDPQueueAndDrops(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if q, ok := UDPQueue(port); !ok || q != 0 {
		t.Fatalf("fresh socket: queue %d, found %v", q, ok)
	}
	if d, ok := UDPDrops(port); !ok || d != 0 {
		t.Fatalf("fresh socket: drops %d, found %v", d, ok)
	}
	s, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 64 {
		if _, err := s.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if q, _ := UDPQueue(port); q == 0 {
		t.Error("queue empty after 64 datagrams")
	}
	if d, _ := UDPDrops(port); d == 0 {
		t.Error("no drops after 64 KB into a minimal buffer")
	}
	s.Close()
	c.Close()
	if _, ok := UDPQueue(port); ok {
		t.Error("closed socket still found")
	}
}

// TestNfcapdStopFailsOnDrops: datagrams the kernel dropped because
// nfcapd did not read its socket (stopped here with SIGSTOP) fail Stop,
// and a clean run passes it with the records nfdump reads (none here).
func TestNfcapdStopFailsOnDrops(t *testing.T) {
	clean := StartNfcapd(t)
	if recs := clean.Records(t); len(recs) != 0 {
		t.Fatalf("nfcapd that received nothing: %d records", len(recs))
	}

	n := StartNfcapd(t)
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", n.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := make([]byte, 1400)
	for sent := 0; ; sent++ {
		if d, _ := UDPDrops(n.Port); d > 0 {
			break
		}
		if sent == 100000 {
			t.Fatal("no drops on a stopped nfcapd's socket after 100000 datagrams")
		}
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ended, msg, _ := run(t, func(tb testing.TB) string { n.Stop(tb); return "" })
	if ended != "fatal" || !strings.Contains(msg, "dropped") {
		t.Fatalf("Stop after drops: ended %q: %s", ended, msg)
	}
}
