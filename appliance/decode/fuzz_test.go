package decode

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/tools/peertest"
)

// seedFiles give real frames to the fuzzer (shipped in testdata/corpus).
var seedFiles = []string{
	"ndpi/6in4tunnel.pcap", "ndpi/vxlan.pcap", "arkime/gtp-u.pcap", "arkime/pppoe.pcap",
	"libtrace/qinq.pcap", "libtrace/mpls.pcap", "zeek/tunnels__Teredo.pcap", "zeek/erspanIII.pcap",
	"zeek/ipv4__fragmented-1.pcap", "zeek/linux_dlt_sll2.pcap", "tcpdump/pppoe.pcap",
	"arkime/6-4-gre-ppp-udp-4-dns.pcap", "converted/auckland-legacyatm-sunatm.pcap",
	"tcpdump/geneve.pcap", "tcpdump/wccp_redirect_gre.pcap", "tcpdump/nsh-over-vxlan-gpe.pcap",
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add(tc.frame, uint16(tc.link))
	}
	for _, name := range seedFiles {
		pkts := readCapture(f, peertest.CorpusFile(f, "pcaps", name))
		for i, pk := range pkts {
			if i >= 8 {
				break
			}
			f.Add(pk.data, uint16(pk.ci.LinkType))
		}
	}
	links := []drivers.LinkType{
		drivers.LinkEthernet, drivers.LinkRaw, drivers.LinkIPv4, drivers.LinkIPv6, drivers.LinkNull,
		drivers.LinkLoop, drivers.LinkPPP, drivers.LinkPPPHDLC, drivers.LinkATMRFC1483, drivers.LinkSunATM,
		drivers.LinkLinuxSLL, drivers.LinkLinuxSLL2,
	}
	f.Fuzz(func(t *testing.T, data []byte, link uint16) {
		lt := drivers.LinkType(link)
		if link < 16 {
			lt = links[int(link)%len(links)]
		}
		d := New(&Config{MaxDepth: 4})
		var p Packet
		ci := drivers.CaptureInfo{LinkType: lt, CaptureLength: len(data), Length: len(data) + int(link%7)}
		err := d.Decode(data, ci, &p)
		checkInvariants(t, data, &p, err)
		// Deterministic: a fresh decoder gives the same answer.
		var q Packet
		err2 := New(&Config{MaxDepth: 4}).Decode(data, ci, &q)
		if (err == nil) != (err2 == nil) || p.Src != q.Src || p.Sport != q.Sport || p.PayloadLen != q.PayloadLen {
			t.Fatalf("not deterministic: %v %+v / %v %+v", err, p, err2, q)
		}
		c := d.Counters()
		if c.Packets+c.NonIP+c.Errors != 1 {
			t.Fatalf("counters %+v after one frame", c)
		}
	})
}

func checkInvariants(t *testing.T, data []byte, p *Packet, err error) {
	t.Helper()
	if err != nil {
		if errors.Is(err, ErrNonIP) {
			return
		}
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("error %v is not a *Error", err)
		}
		// A truncated header may start beyond the captured bytes (the
		// lengths before it come from headers); other errors are inside.
		if de.Reason == ReasonNone || de.Reason >= NumReasons || de.Offset < 0 ||
			(de.Offset > len(data) && de.Reason != ReasonTruncated) {
			t.Fatalf("bad error %+v for %d bytes", de, len(data))
		}
		if msg := err.Error(); strings.ToLower(msg) != msg || !strings.Contains(msg, "offset") {
			t.Fatalf("error text %q", msg)
		}
		return
	}
	switch p.IPVersion {
	case 4:
		if !p.Src.Is4() || !p.Dst.Is4() {
			t.Fatalf("ipv4 packet with addresses %v %v", p.Src, p.Dst)
		}
	case 6:
		if !p.Src.Is6() || !p.Dst.Is6() {
			t.Fatalf("ipv6 packet with addresses %v %v", p.Src, p.Dst)
		}
	default:
		t.Fatalf("decoded packet with ip version %d", p.IPVersion)
	}
	if len(p.Payload) > p.PayloadLen || p.PayloadLen < 0 {
		t.Fatalf("payload %d bytes, length %d", len(p.Payload), p.PayloadLen)
	}
	if len(p.Payload) > 0 {
		start := uintptr(unsafe.Pointer(&p.Payload[0]))
		base := uintptr(unsafe.Pointer(&data[0]))
		if start < base || start+uintptr(len(p.Payload)) > base+uintptr(len(data)) {
			t.Fatalf("payload does not alias the frame")
		}
	}
	if p.Tunnel != 0 && (!p.TunnelSrc.IsValid() || !p.TunnelDst.IsValid()) {
		t.Fatalf("tunnel %v without endpoints", p.Tunnel)
	}
	if p.OuterLen < 20 || p.InnerLen < 20 {
		t.Fatalf("lengths outer %d inner %d", p.OuterLen, p.InnerLen)
	}
	if (p.Proto == protoICMP || p.Proto == protoICMPv6) && p.Sport != 0 {
		t.Fatalf("icmp with source port %d", p.Sport)
	}
}
