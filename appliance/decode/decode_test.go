package decode

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/flow"
)

// want is the part of a Packet a table case checks; every field is
// compared (zero means "must be zero").
type want struct {
	src, dst     string
	sport, dport uint16
	proto, ver   uint8
	vlan, ivlan  uint16
	tunnel       flow.TunnelType
	tsrc, tdst   string
	payload      string
	payloadLen   int // -1: len(payload)
	frag         bool
	flags        uint8
	outerLen     int // 0: not checked
	vpi, vci     uint16
	hasVC        bool
}

var (
	hello  = []byte("hello")
	ipA    = "192.0.2.1"
	ipB    = "198.51.100.7"
	ipC    = "203.0.113.5"
	ipD    = "203.0.113.6"
	ip6A   = "2001:db8::1"
	ip6B   = "2001:db8::2"
	tcpSYN = tcp(40001, 80, 0x12, 1000, hello)
	udp53  = udp(5353, 53, hello)
	in4tcp = ip4(ipC, ipD, protoTCP, tcpSYN)
	in6udp = ip6(ip6A, ip6B, protoUDP, udp53)
	w4tcp  = want{src: ipC, dst: ipD, sport: 40001, dport: 80, proto: 6, ver: 4, flags: 0x12, payload: "hello", payloadLen: -1}
	w6udp  = want{src: ip6A, dst: ip6B, sport: 5353, dport: 53, proto: 17, ver: 6, payload: "hello", payloadLen: -1}
)

// tun returns w marked as carried by a tunnel of kind k from outer.
func tun(w want, k flow.TunnelType, src, dst string) want {
	w.tunnel, w.tsrc, w.tdst = k, src, dst
	return w
}

func withVLAN(w want, vlan, inner uint16) want {
	w.vlan, w.ivlan = vlan, inner
	return w
}

type tcase struct {
	name   string
	link   drivers.LinkType
	frame  []byte
	want   want
	err    error  // ErrNonIP, or nil
	reason Reason // expected *Error reason, or note counted on success
}

func decodeCases() []tcase {
	pppoe := func(proto uint16, payload []byte) []byte {
		return cat([]byte{0x11, 0, 0, 1}, u16(uint16(len(payload)+2)), u16(proto), payload)
	}
	opts := []byte{0x01, 0x01, 0x01, 0x00} // NOP NOP NOP EOL
	ah := cat([]byte{protoTCP, 4, 0, 0}, u32(1), u32(1), make([]byte, 12))
	teredoOrigin := cat([]byte{0, 0}, u16(0xffff), []byte{1, 2, 3, 4})
	teredoAuth := cat([]byte{0, 1, 2, 3}, []byte{'i', 'd', 'a', 'u', 'x'}, make([]byte, 9))
	pduSession := [][2][]byte{{{0x85}, {0x00, 0x09}}}
	erspan2 := cat(u16(0x1001), u16(0x0001), u32(0))
	erspan3 := cat(u16(0x2001), u16(0x0001), u32(1), u16(0), []byte{0x00, 0x00})
	erspan3opt := cat(u16(0x2001), u16(0x0001), u32(1), u16(0), []byte{0x00, 0x01}, make([]byte, 8))
	sll := cat(u16(0), u16(1), u16(6), macA, []byte{0, 0}, u16(etIPv4))
	sll2 := cat(u16(etIPv6), u16(0), u32(3), u16(1), []byte{0, 6}, macA, []byte{0, 0})
	outer := func(proto uint8, payload []byte) []byte { return eth(etIPv4, ip4(ipA, ipB, proto, payload)) }

	return []tcase{
		{name: "eth/ipv4/tcp", link: drivers.LinkEthernet, frame: eth(etIPv4, in4tcp),
			want: func() want { w := w4tcp; w.outerLen = 45; return w }()},
		{name: "eth/ipv4-options/udp", link: drivers.LinkEthernet,
			frame: eth(etIPv4, ip4x(ipC, ipD, protoUDP, 1, 0, false, opts, udp53)),
			want:  want{src: ipC, dst: ipD, sport: 5353, dport: 53, proto: 17, ver: 4, payload: "hello", payloadLen: -1, outerLen: 37}},
		{name: "eth/vlan/ipv6/udp", link: drivers.LinkEthernet, frame: eth(etVLAN, tag(100, etIPv6), in6udp),
			want: withVLAN(w6udp, 100, 0)},
		{name: "eth/qinq/ipv4/tcp", link: drivers.LinkEthernet, frame: eth(etQinQ, tag(10, etVLAN), tag(20, etIPv4), in4tcp),
			want: withVLAN(w4tcp, 10, 20)},
		{name: "eth/three tags", link: drivers.LinkEthernet, frame: eth(etQinQOld, tag(1, etQinQ), tag(2, etVLAN), tag(3, etIPv4), in4tcp),
			want: withVLAN(w4tcp, 1, 2)},
		{name: "802.3 llc/snap ipv4", link: drivers.LinkEthernet, frame: cat(macB, macA, u16(uint16(8+len(in4tcp))), snapIPv4, in4tcp),
			want: w4tcp},
		{name: "802.3 stp", link: drivers.LinkEthernet, frame: cat(macB, macA, u16(38), []byte{0x42, 0x42, 0x03}, make([]byte, 35)),
			err: ErrNonIP},
		{name: "snap inside snap", link: drivers.LinkEthernet,
			frame: cat(macB, macA, u16(100), bytesRepeat(cat([]byte{0xaa, 0xaa, 0x03, 0, 0, 0}, u16(0x0010)), 20), in4tcp), reason: ReasonTooDeep},
		{name: "vlan tagged 802.3 llc/snap", link: drivers.LinkEthernet,
			frame: eth(etVLAN, tag(3, 0x0030), snapIPv4, in4tcp), want: withVLAN(w4tcp, 3, 0)},
		{name: "arp", link: drivers.LinkEthernet, frame: eth(etARP, make([]byte, 28)), err: ErrNonIP},
		{name: "unknown ethertype", link: drivers.LinkEthernet, frame: eth(0x1234, make([]byte, 28)), reason: ReasonUnknownEthertype},
		{name: "vn-tag", link: drivers.LinkEthernet, frame: eth(etVNTag, u32(0), u16(etVLAN), tag(11, etIPv4), in4tcp), want: withVLAN(w4tcp, 11, 0)},
		{name: "fabricpath", link: drivers.LinkEthernet, frame: eth(etFabricPath, u16(0x0001), eth(etIPv4, in4tcp)), want: w4tcp},
		{name: "cisco metadata", link: drivers.LinkEthernet, frame: eth(etCMD, []byte{1, 1}, u16(0x0001), u16(42), u16(etIPv4), in4tcp),
			want: w4tcp},
		{name: "nsh ipv4", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(nshIPv4, 6), in4tcp), want: w4tcp},
		{name: "nsh md type 2 ethernet ipv6", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(nshEthernet, 2), eth(etIPv6, in6udp)),
			want: w6udp},
		{name: "nsh in nsh", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(nshNSH, 2), nsh(nshIPv6, 2), in6udp), want: w6udp},
		{name: "nsh length below base header", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(nshIPv4, 1), in4tcp),
			reason: ReasonBadHeaderLength},
		{name: "nsh unknown next protocol", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(0x7f, 2), in4tcp),
			reason: ReasonUnknownEthertype},
		{name: "nsh truncated", link: drivers.LinkEthernet, frame: eth(etNSH, nsh(nshIPv4, 6)[:12]), reason: ReasonTruncated},
		{name: "pbb", link: drivers.LinkEthernet, frame: eth(etPBB, u32(0x00000100), macB, macA, u16(etIPv4), in4tcp), want: w4tcp},
		{name: "mpls/ipv4", link: drivers.LinkEthernet, frame: eth(etMPLS, mplsLabel(16, false), mplsLabel(17, true), in4tcp), want: w4tcp},
		{name: "mpls multicast/ipv6", link: drivers.LinkEthernet, frame: eth(etMPLSMcast, mplsLabel(16, true), in6udp), want: w6udp},
		{name: "mpls/pw control word/ethernet", link: drivers.LinkEthernet,
			frame: eth(etMPLS, mplsLabel(16, true), u32(0), eth(etIPv4, in4tcp)), want: w4tcp},
		{name: "mpls/pw ethernet without control word", link: drivers.LinkEthernet,
			frame: eth(etMPLS, mplsLabel(16, true), eth(etVLAN, tag(5, etIPv4), in4tcp)), want: w4tcp},
		{name: "pppoe/ipv4", link: drivers.LinkEthernet, frame: eth(etPPPoES, pppoe(pppIPv4, in4tcp)), want: w4tcp},
		{name: "qinq/pppoe/ipv6", link: drivers.LinkEthernet, frame: eth(etQinQ, tag(7, etVLAN), tag(8, etPPPoES), pppoe(pppIPv6, in6udp)),
			want: withVLAN(w6udp, 7, 8)},
		{name: "pppoe/lcp", link: drivers.LinkEthernet, frame: eth(etPPPoES, pppoe(0xc021, make([]byte, 10))), err: ErrNonIP},
		{name: "pppoe discovery", link: drivers.LinkEthernet, frame: eth(etPPPoED, make([]byte, 10)), err: ErrNonIP},
		{name: "linux sll", link: drivers.LinkLinuxSLL, frame: cat(sll, in4tcp), want: w4tcp},
		{name: "linux sll2", link: drivers.LinkLinuxSLL2, frame: cat(sll2, in6udp), want: w6udp},
		{name: "raw ipv4", link: drivers.LinkRaw, frame: in4tcp, want: w4tcp},
		{name: "raw ipv6", link: drivers.LinkRaw, frame: in6udp, want: w6udp},
		{name: "raw bad version", link: drivers.LinkRaw, frame: cat([]byte{0x55}, in4tcp[1:]), reason: ReasonBadIPVersion},
		{name: "linktype ipv4", link: drivers.LinkIPv4, frame: in4tcp, want: w4tcp},
		{name: "linktype ipv6", link: drivers.LinkIPv6, frame: in6udp, want: w6udp},
		{name: "linktype ipv4 given ipv6", link: drivers.LinkIPv4, frame: in6udp, reason: ReasonBadIPVersion},
		{name: "null little-endian inet", link: drivers.LinkNull, frame: cat([]byte{2, 0, 0, 0}, in4tcp), want: w4tcp},
		{name: "null big-endian inet6 28", link: drivers.LinkNull, frame: cat([]byte{0, 0, 0, 28}, in6udp), want: w6udp},
		{name: "null little-endian inet6 30", link: drivers.LinkNull, frame: cat([]byte{30, 0, 0, 0}, in6udp), want: w6udp},
		{name: "loop inet6 24", link: drivers.LinkLoop, frame: cat([]byte{0, 0, 0, 24}, in6udp), want: w6udp},
		{name: "null unknown family", link: drivers.LinkNull, frame: cat([]byte{7, 0, 0, 0}, in6udp), reason: ReasonUnknownEthertype},
		{name: "ppp ff03 ipv4", link: drivers.LinkPPP, frame: cat([]byte{0xff, 0x03}, u16(pppIPv4), in4tcp), want: w4tcp},
		{name: "ppp compressed protocol", link: drivers.LinkPPP, frame: cat([]byte{0x21}, in4tcp), want: w4tcp},
		{name: "ppp_hdlc ipv6", link: drivers.LinkPPPHDLC, frame: cat([]byte{0xff, 0x03}, u16(pppIPv6), in6udp), want: w6udp},
		{name: "ppp_hdlc cisco hdlc", link: drivers.LinkPPPHDLC, frame: cat([]byte{0x0f, 0x00}, u16(etIPv4), in4tcp), want: w4tcp},
		{name: "ppp lcp", link: drivers.LinkPPP, frame: cat([]byte{0xff, 0x03}, u16(0xc021), make([]byte, 8)), err: ErrNonIP},
		{name: "atm rfc1483 llc/snap", link: drivers.LinkATMRFC1483, frame: cat(snapIPv4, in4tcp), want: w4tcp},
		{name: "atm rfc1483 bridged", link: drivers.LinkATMRFC1483,
			frame: cat([]byte{0xaa, 0xaa, 0x03, 0x00, 0x80, 0xc2, 0x00, 0x07, 0, 0}, eth(etVLAN, tag(33, etIPv4), in4tcp)),
			want:  withVLAN(w4tcp, 33, 0)},
		{name: "atm rfc1483 other llc", link: drivers.LinkATMRFC1483, frame: cat([]byte{0xfe, 0xfe, 0x03, 0xcc}, in4tcp), err: ErrNonIP},
		{name: "sunatm llc", link: drivers.LinkSunATM, frame: cat([]byte{0x02, 5}, u16(100), snapIPv4, in4tcp),
			want: func() want { w := w4tcp; w.vpi, w.vci, w.hasVC = 5, 100, true; return w }()},
		{name: "sunatm lane", link: drivers.LinkSunATM, frame: cat([]byte{0x01, 0}, u16(40), []byte{0xff, 0x00}, eth(etIPv4, in4tcp)),
			want: func() want { w := w4tcp; w.vci, w.hasVC = 40, true; return w }()},
		{name: "linux sll llc", link: drivers.LinkLinuxSLL, frame: cat(sll[:14], u16(4), snapIPv4, in4tcp), want: w4tcp},
		{name: "sunatm ilmi", link: drivers.LinkSunATM, frame: cat([]byte{0x05, 0}, u16(16), make([]byte, 40)), err: ErrNonIP},
		{name: "nflog little-endian", link: 239,
			frame: cat([]byte{2, 0, 0, 0}, []byte{8, 0, 1, 0}, u32(0), []byte{byte(4 + len(in4tcp)), 0, 9, 0}, in4tcp), want: w4tcp},
		{name: "nflog big-endian ipv6", link: 239,
			frame: cat([]byte{10, 0, 0, 0}, []byte{0, 5, 0, 10}, []byte{7, 0, 0, 0}, u16(uint16(4+len(in6udp))), u16(9), in6udp), want: w6udp},
		{name: "nflog without payload", link: 239, frame: cat([]byte{2, 0, 0, 0}, []byte{8, 0, 1, 0}, u32(0)), err: ErrNonIP},
		{name: "unsupported link", link: 147, frame: in4tcp, reason: ReasonUnsupportedLink},
		{name: "ipv6 extension headers", link: drivers.LinkEthernet,
			frame: eth(etIPv6, ip6(ip6A, ip6B, 0, cat(ext6(43, 1), ext6(60, 3), ext6(protoUDP, 2), udp53))), want: w6udp},
		{name: "ipv6 ah", link: drivers.LinkEthernet,
			frame: eth(etIPv6, ip6(ip6A, ip6B, protoAH, cat(ah, tcp(1, 2, 0x10, 5, hello)))),
			want:  want{src: ip6A, dst: ip6B, sport: 1, dport: 2, proto: 6, ver: 6, flags: 0x10, payload: "hello", payloadLen: -1}},
		{name: "ipv4 ah", link: drivers.LinkEthernet,
			frame: eth(etIPv4, ip4(ipA, ipB, protoAH, cat(ah, tcp(1, 2, 0x10, 5, hello)))),
			want:  want{src: ipA, dst: ipB, sport: 1, dport: 2, proto: 6, ver: 4, flags: 0x10, payload: "hello", payloadLen: -1}},
		{name: "ipv6 esp", link: drivers.LinkEthernet, frame: eth(etIPv6, ip6(ip6A, ip6B, 50, cat(u32(0x100), u32(1), hello))),
			want: want{src: ip6A, dst: ip6B, proto: 50, ver: 6, payload: "\x00\x00\x01\x00\x00\x00\x00\x01hello", payloadLen: -1}},
		{name: "icmp echo", link: drivers.LinkEthernet, frame: eth(etIPv4, ip4(ipA, ipB, protoICMP, icmp(8, 0, hello))),
			want: want{src: ipA, dst: ipB, dport: 0x0800, proto: 1, ver: 4, payload: "hello", payloadLen: -1}},
		{name: "icmpv6 echo", link: drivers.LinkEthernet, frame: eth(etIPv6, ip6(ip6A, ip6B, protoICMPv6, icmp(128, 0, hello))),
			want: want{src: ip6A, dst: ip6B, dport: 0x8000, proto: 58, ver: 6, payload: "hello", payloadLen: -1}},
		{name: "sctp", link: drivers.LinkEthernet, frame: eth(etIPv4, ip4(ipA, ipB, protoSCTP, sctp(2905, 2906, hello))),
			want: want{src: ipA, dst: ipB, sport: 2905, dport: 2906, proto: 132, ver: 4, payload: "hello", payloadLen: -1}},
		{name: "other protocol", link: drivers.LinkEthernet, frame: eth(etIPv4, ip4(ipA, ipB, 89, hello)),
			want: want{src: ipA, dst: ipB, proto: 89, ver: 4, payload: "hello", payloadLen: -1}},

		// Tunnels.
		{name: "4in4", link: drivers.LinkEthernet, frame: outer(protoIPIP, in4tcp),
			want: func() want { w := tun(w4tcp, flow.TunnelIPIP, ipA, ipB); w.outerLen = 65; return w }()},
		{name: "6in4", link: drivers.LinkEthernet, frame: outer(protoIPv6, in6udp), want: tun(w6udp, flow.Tunnel6in4, ipA, ipB)},
		{name: "6in6", link: drivers.LinkEthernet, frame: eth(etIPv6, ip6("2001:db8::a", "2001:db8::b", protoIPv6, in6udp)),
			want: tun(w6udp, flow.Tunnel6in4, "2001:db8::a", "2001:db8::b")},
		{name: "4in6", link: drivers.LinkEthernet, frame: eth(etIPv6, ip6("2001:db8::a", "2001:db8::b", protoIPIP, in4tcp)),
			want: tun(w4tcp, flow.TunnelIPIP, "2001:db8::a", "2001:db8::b")},
		{name: "gre ipv4", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etIPv4, false, false, false, in4tcp)),
			want: tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "gre checksum key seq ipv6", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etIPv6, true, true, true, in6udp)),
			want: tun(w6udp, flow.TunnelGRE, ipA, ipB)},
		{name: "gre transparent ethernet", link: drivers.LinkEthernet,
			frame: outer(protoGRE, gre(etTEB, false, true, false, eth(etVLAN, tag(99, etIPv4), in4tcp))),
			want:  tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "gre mpls", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etMPLS, false, false, false, cat(mplsLabel(3, true), in6udp))),
			want: tun(w6udp, flow.TunnelGRE, ipA, ipB)},
		{name: "pptp gre ppp ipv4", link: drivers.LinkEthernet,
			frame: outer(protoGRE, pptpGRE(true, true, cat([]byte{0xff, 0x03}, u16(pppIPv4), in4tcp))),
			want:  tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "pptp gre compressed ppp ipv6", link: drivers.LinkEthernet,
			frame: outer(protoGRE, pptpGRE(true, false, cat([]byte{0x57}, in6udp))),
			want:  tun(w6udp, flow.TunnelGRE, ipA, ipB)},
		{name: "pptp ack only", link: drivers.LinkEthernet,
			frame: outer(protoGRE, cat(u16(greKey|greAck|1), u16(etPPP), u16(0), u16(9), u32(3))),
			want:  want{src: ipA, dst: ipB, proto: 47, ver: 4, payload: string(cat(u16(greKey|greAck|1), u16(etPPP), u16(0), u16(9), u32(3))), payloadLen: -1}},
		{name: "erspan type i", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etERSPAN2, false, false, false, eth(etIPv4, in4tcp))),
			want: tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "erspan type ii", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etERSPAN2, false, false, true, cat(erspan2, eth(etIPv4, in4tcp)))),
			want: tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "erspan type iii", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etERSPAN3, false, false, true, cat(erspan3, eth(etIPv6, in6udp)))),
			want: tun(w6udp, flow.TunnelGRE, ipA, ipB)},
		{name: "erspan type iii with subheader", link: drivers.LinkEthernet,
			frame: outer(protoGRE, gre(etERSPAN3, false, false, true, cat(erspan3opt, eth(etIPv6, in6udp)))),
			want:  tun(w6udp, flow.TunnelGRE, ipA, ipB)},
		{name: "gre unknown payload stays outer", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(0x1234, false, false, false, hello)),
			want:   want{src: ipA, dst: ipB, proto: 47, ver: 4, payload: "\x00\x00\x12\x34hello", payloadLen: -1},
			reason: ReasonTunnelNonIP},
		{name: "gre carrying arp stays outer", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etTEB, false, false, false, eth(etARP, make([]byte, 28)))),
			want:   want{src: ipA, dst: ipB, proto: 47, ver: 4, payload: string(gre(etTEB, false, false, false, eth(etARP, make([]byte, 28)))), payloadLen: -1},
			reason: ReasonTunnelNonIP},
		{name: "vxlan 4789", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(51000, 4789, vxlan(eth(etIPv4, in4tcp)))),
			want: tun(w4tcp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan 8472 ipv6", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(51000, 8472, vxlan(eth(etIPv6, in6udp)))),
			want: tun(w6udp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan without I flag is plain udp", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(51000, 4789, cat(make([]byte, 8), eth(etIPv4, in4tcp)))),
			want:  want{src: ipA, dst: ipB, sport: 51000, dport: 4789, proto: 17, ver: 4, payload: string(cat(make([]byte, 8), eth(etIPv4, in4tcp))), payloadLen: -1}},
		{name: "vxlan inner truncated by snap", link: drivers.LinkEthernet,
			frame:  outer(protoUDP, udp(51000, 4789, vxlan(eth(etIPv4, in4tcp[:10])))),
			want:   want{src: ipA, dst: ipB, sport: 51000, dport: 4789, proto: 17, ver: 4, payload: string(vxlan(eth(etIPv4, in4tcp[:10]))), payloadLen: -1},
			reason: ReasonBadTunnel},
		{name: "vxlan by source port", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(4789, 4790, vxlan(eth(etIPv4, in4tcp)))),
			want: tun(w4tcp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "geneve ethernet with options", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(40000, 6081, geneve(etTEB, make([]byte, 12), eth(etIPv4, in4tcp)))),
			want:  tun(w4tcp, flow.TunnelGeneve, ipA, ipB)},
		{name: "geneve ipv6", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(40000, 6081, geneve(etIPv6, nil, in6udp))),
			want: tun(w6udp, flow.TunnelGeneve, ipA, ipB)},
		{name: "geneve by source port ipv4", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(6081, 40000, geneve(etIPv4, nil, in4tcp))),
			want: tun(w4tcp, flow.TunnelGeneve, ipA, ipB)},
		{name: "geneve unknown protocol stays outer", link: drivers.LinkEthernet,
			frame:  outer(protoUDP, udp(40000, 6081, geneve(0x1234, nil, hello))),
			want:   want{src: ipA, dst: ipB, sport: 40000, dport: 6081, proto: 17, ver: 4, payload: string(geneve(0x1234, nil, hello)), payloadLen: -1},
			reason: ReasonTunnelNonIP},
		{name: "geneve options beyond datagram stay outer", link: drivers.LinkEthernet,
			frame:  outer(protoUDP, udp(40000, 6081, cat([]byte{0x3f, 0}, u16(etTEB), u32(0x100)))),
			want:   want{src: ipA, dst: ipB, sport: 40000, dport: 6081, proto: 17, ver: 4, payload: string(cat([]byte{0x3f, 0}, u16(etTEB), u32(0x100))), payloadLen: -1},
			reason: ReasonBadTunnel},
		{name: "geneve version 1 is plain udp", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(40000, 6081, cat([]byte{0x40, 0}, u16(etIPv4), u32(0x100), in4tcp))),
			want:  want{src: ipA, dst: ipB, sport: 40000, dport: 6081, proto: 17, ver: 4, payload: string(cat([]byte{0x40, 0}, u16(etIPv4), u32(0x100), in4tcp)), payloadLen: -1}},
		{name: "vxlan-gpe ipv4", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(40000, 4790, gpe(1, in4tcp))),
			want: tun(w4tcp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan-gpe nsh ethernet by source port", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(4790, 40000, gpe(4, cat(nsh(nshEthernet, 6), eth(etIPv6, in6udp))))),
			want:  tun(w6udp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan 4789 to vxlan-gpe 4790 is vxlan", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(4789, 4790, vxlan(eth(etIPv4, in4tcp)))),
			want:  tun(w4tcp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan-gpe unknown next protocol stays outer", link: drivers.LinkEthernet,
			frame:  outer(protoUDP, udp(40000, 4790, gpe(9, in4tcp))),
			want:   want{src: ipA, dst: ipB, sport: 40000, dport: 4790, proto: 17, ver: 4, payload: string(gpe(9, in4tcp)), payloadLen: -1},
			reason: ReasonTunnelNonIP},
		{name: "gre wccp v1", link: drivers.LinkEthernet, frame: outer(protoGRE, gre(etWCCP, false, false, false, in4tcp)),
			want: tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "gre wccp v2 redirect header", link: drivers.LinkEthernet,
			frame: outer(protoGRE, gre(etWCCP, false, false, false, cat(u32(0x00000102), in4tcp))),
			want:  tun(w4tcp, flow.TunnelGRE, ipA, ipB)},
		{name: "teredo", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(3544, 40000, in6udp)),
			want: tun(w6udp, flow.TunnelTeredo, ipA, ipB)},
		{name: "teredo origin indication", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(3544, 40000, cat(teredoOrigin, in6udp))),
			want: tun(w6udp, flow.TunnelTeredo, ipA, ipB)},
		{name: "teredo auth and origin", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(40000, 3544, cat(teredoAuth, teredoOrigin, in6udp))),
			want: tun(w6udp, flow.TunnelTeredo, ipA, ipB)},
		{name: "udp 3544 not teredo", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(3544, 40000, hello)),
			want: want{src: ipA, dst: ipB, sport: 3544, dport: 40000, proto: 17, ver: 4, payload: "hello", payloadLen: -1}},
		{name: "gtp-u", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(2152, 2152, gtpu(false, nil, in4tcp))),
			want: tun(w4tcp, flow.TunnelGTPU, ipA, ipB)},
		{name: "gtp-u sequence", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(2152, 2152, gtpu(true, nil, in6udp))),
			want: tun(w6udp, flow.TunnelGTPU, ipA, ipB)},
		{name: "gtp-u extension header", link: drivers.LinkEthernet, frame: outer(protoUDP, udp(2152, 2152, gtpu(false, pduSession, in4tcp))),
			want: tun(w4tcp, flow.TunnelGTPU, ipA, ipB)},
		{name: "gtp echo request is plain udp", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(2152, 2152, cat([]byte{0x32, 0x01}, u16(4), u32(0), u32(0)))),
			want:  want{src: ipA, dst: ipB, sport: 2152, dport: 2152, proto: 17, ver: 4, payload: string(cat([]byte{0x32, 0x01}, u16(4), u32(0), u32(0))), payloadLen: -1}},
		{name: "nested gre in vxlan", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(1, 4789, vxlan(eth(etIPv4, ip4(ipC, ipD, protoGRE, gre(etIPv6, false, false, false, in6udp)))))),
			want:  tun(w6udp, flow.TunnelVXLAN, ipA, ipB)},
		{name: "vxlan later fragment without first", link: drivers.LinkEthernet,
			frame:  outer(protoUDP, udp(1, 4789, vxlan(eth(etIPv4, ip4x(ipC, ipD, protoICMP, 3, 64, false, nil, hello))))),
			want:   want{src: ipC, dst: ipD, proto: 1, ver: 4, tunnel: flow.TunnelVXLAN, tsrc: ipA, tdst: ipB, payload: "hello", payloadLen: -1, frag: true},
			reason: ReasonFragmentWithoutFirst},
		{name: "teredo in gtp", link: drivers.LinkEthernet,
			frame: outer(protoUDP, udp(2152, 2152, gtpu(false, nil, ip4(ipC, ipD, protoUDP, udp(3544, 1000, in6udp))))),
			want:  tun(w6udp, flow.TunnelGTPU, ipA, ipB)},

		// Bad input.
		{name: "truncated ipv4", link: drivers.LinkEthernet, frame: eth(etIPv4, in4tcp[:19]), reason: ReasonTruncated},
		{name: "ipv4 ihl 4", link: drivers.LinkEthernet, frame: eth(etIPv4, cat([]byte{0x44}, in4tcp[1:])), reason: ReasonBadHeaderLength},
		{name: "ipv4 total length below ihl", link: drivers.LinkEthernet, frame: eth(etIPv4, cat(in4tcp[:2], u16(19), in4tcp[4:])), reason: ReasonBadHeaderLength},
		{name: "ipv6 in ipv4 ethertype", link: drivers.LinkEthernet, frame: eth(etIPv4, in6udp), reason: ReasonBadIPVersion},
		{name: "tcp data offset 3", link: drivers.LinkEthernet,
			frame: eth(etIPv4, ip4(ipA, ipB, protoTCP, cat(tcpSYN[:12], []byte{0x30}, tcpSYN[13:]))), reason: ReasonBadHeaderLength},
		{name: "tcp header beyond ip length", link: drivers.LinkEthernet, frame: eth(etIPv4, ip4(ipA, ipB, protoTCP, tcpSYN[:16])), reason: ReasonBadHeaderLength},
		{name: "ipv6 extension beyond payload", link: drivers.LinkEthernet, frame: eth(etIPv6, ip6(ip6A, ip6B, 0, cat([]byte{protoUDP, 4}, make([]byte, 6)))),
			reason: ReasonBadHeaderLength},
		{name: "truncated vlan", link: drivers.LinkEthernet, frame: eth(etVLAN, []byte{0, 1}), reason: ReasonTruncated},
		{name: "truncated ethernet", link: drivers.LinkEthernet, frame: macA, reason: ReasonTruncated},
		{name: "mpls without bottom of stack", link: drivers.LinkEthernet, frame: eth(etMPLS, mplsLabel(1, false), mplsLabel(2, false)), reason: ReasonTruncated},
	}
}

func TestDecodeTable(t *testing.T) {
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			d := New(nil)
			var p Packet
			err := d.Decode(tc.frame, drivers.CaptureInfo{LinkType: tc.link, CaptureLength: len(tc.frame), Length: len(tc.frame)}, &p)
			c := d.Counters()
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if c.NonIP != 1 || c.Reasons[ReasonNonIP] != 1 {
					t.Errorf("counters %+v, want one non-ip", c)
				}
				return
			case err != nil:
				var de *Error
				if !errors.As(err, &de) || de.Reason != tc.reason {
					t.Fatalf("err = %v, want reason %v", err, tc.reason)
				}
				if c.Errors != 1 || c.Reasons[tc.reason] != 1 || c.Packets != 0 {
					t.Errorf("counters %+v, want one %v error", c, tc.reason)
				}
				return
			case tc.reason != ReasonNone && tc.want.ver == 0:
				t.Fatalf("decoded %+v, want reason %v", p, tc.reason)
			}
			if c.Packets != 1 {
				t.Errorf("counters %+v, want one packet", c)
			}
			for r, n := range c.Reasons {
				if want := uint64(0); tc.reason != ReasonNone && Reason(r) == tc.reason {
					if n != 1 {
						t.Errorf("reason %v counted %d times, want 1", tc.reason, n)
					}
				} else if n != want {
					t.Errorf("reason %v counted %d times, want 0", Reason(r), n)
				}
			}
			checkPacket(t, &p, tc.want)
		})
	}
}

func checkPacket(t *testing.T, p *Packet, w want) {
	t.Helper()
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	if p.Src != addr(w.src) || p.Dst != addr(w.dst) {
		t.Errorf("addresses %v > %v, want %s > %s", p.Src, p.Dst, w.src, w.dst)
	}
	if p.Sport != w.sport || p.Dport != w.dport || p.Proto != w.proto || p.IPVersion != w.ver {
		t.Errorf("proto %d ports %d > %d version %d, want %d %d > %d version %d",
			p.Proto, p.Sport, p.Dport, p.IPVersion, w.proto, w.sport, w.dport, w.ver)
	}
	if p.VLAN != w.vlan || p.InnerVLAN != w.ivlan {
		t.Errorf("vlan %d/%d, want %d/%d", p.VLAN, p.InnerVLAN, w.vlan, w.ivlan)
	}
	if p.Tunnel != w.tunnel || p.TunnelSrc != addr(w.tsrc) || p.TunnelDst != addr(w.tdst) {
		t.Errorf("tunnel %v %v > %v, want %v %s > %s", p.Tunnel, p.TunnelSrc, p.TunnelDst, w.tunnel, w.tsrc, w.tdst)
	}
	if string(p.Payload) != w.payload {
		t.Errorf("payload %q, want %q", p.Payload, w.payload)
	}
	wl := w.payloadLen
	if wl < 0 {
		wl = len(w.payload)
	}
	if p.PayloadLen != wl {
		t.Errorf("payload length %d, want %d", p.PayloadLen, wl)
	}
	if p.Fragment != w.frag || p.TCPFlags != w.flags {
		t.Errorf("fragment %v flags %#x, want %v %#x", p.Fragment, p.TCPFlags, w.frag, w.flags)
	}
	if w.outerLen != 0 && p.OuterLen != w.outerLen {
		t.Errorf("outer length %d, want %d", p.OuterLen, w.outerLen)
	}
	if p.HasVC != w.hasVC || p.VPI != w.vpi || p.VCI != w.vci {
		t.Errorf("vc %v %d/%d, want %v %d/%d", p.HasVC, p.VPI, p.VCI, w.hasVC, w.vpi, w.vci)
	}
	if len(p.Payload) > p.PayloadLen {
		t.Errorf("captured payload %d longer than payload length %d", len(p.Payload), p.PayloadLen)
	}
}

func TestMACsAndLengths(t *testing.T) {
	d := New(nil)
	var p Packet
	frame := eth(etIPv4, ip4(ipA, ipB, protoIPIP, in4tcp))
	if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: len(frame)}, &p); err != nil {
		t.Fatal(err)
	}
	if string(p.DstMAC[:]) != string(macB) || string(p.SrcMAC[:]) != string(macA) {
		t.Errorf("macs %x > %x", p.SrcMAC, p.DstMAC)
	}
	if p.OuterLen != 20+len(in4tcp) || p.InnerLen != len(in4tcp) {
		t.Errorf("lengths outer %d inner %d, want %d %d", p.OuterLen, p.InnerLen, 20+len(in4tcp), len(in4tcp))
	}
	if p.TCPSeq != 1000 {
		t.Errorf("seq %d", p.TCPSeq)
	}
	// VXLAN inner MACs are not the link's.
	frame = eth(etIPv4, ip4(ipA, ipB, protoUDP, udp(1, 4789, vxlan(cat([]byte{1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2}, u16(etIPv4), in4tcp)))))
	if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: len(frame)}, &p); err != nil {
		t.Fatal(err)
	}
	if string(p.SrcMAC[:]) != string(macA) {
		t.Errorf("vxlan: source mac %x, want the outer %x", p.SrcMAC, macA)
	}
}

func TestSnappedAndPadded(t *testing.T) {
	d := New(nil)
	var p Packet
	big := tcp(1, 2, 0x18, 0, []byte(strings.Repeat("x", 1000)))
	frame := eth(etIPv4, ip4(ipA, ipB, protoTCP, big))
	snap := frame[:96]
	if err := d.Decode(snap, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, CaptureLength: 96, Length: len(frame)}, &p); err != nil {
		t.Fatal(err)
	}
	if p.PayloadLen != 1000 || len(p.Payload) != 96-54 || p.OuterLen != 1040 {
		t.Errorf("snapped: payload %d of %d, outer %d", len(p.Payload), p.PayloadLen, p.OuterLen)
	}
	// A short packet in a minimum-size frame: the padding is not payload.
	short := eth(etIPv4, ip4(ipA, ipB, protoUDP, udp(1, 2, []byte("ab"))))
	short = append(short, make([]byte, 60-len(short))...)
	if err := d.Decode(short, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: 60}, &p); err != nil {
		t.Fatal(err)
	}
	if string(p.Payload) != "ab" || p.PayloadLen != 2 || p.OuterLen != 30 {
		t.Errorf("padded: payload %q (%d), outer %d", p.Payload, p.PayloadLen, p.OuterLen)
	}
	// TSO: total length 0 means the rest of the frame.
	tso := eth(etIPv4, ip4(ipA, ipB, protoTCP, big))
	tso[14+2], tso[14+3] = 0, 0
	if err := d.Decode(tso, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: len(tso)}, &p); err != nil {
		t.Fatal(err)
	}
	if p.OuterLen != len(tso)-14 || p.PayloadLen != 1000 {
		t.Errorf("tso: outer %d payload %d", p.OuterLen, p.PayloadLen)
	}
	// IPv6 payload length 0 before anything but TCP or a hop-by-hop
	// header is an empty payload: the rest of the frame is padding.
	np := eth(etIPv6, ip6(ip6A, ip6B, protoNoNext, nil), make([]byte, 6))
	np[14+6] = 99
	if err := d.Decode(np, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: len(np)}, &p); err != nil {
		t.Fatal(err)
	}
	if p.OuterLen != 40 || p.Proto != 99 || p.PayloadLen != 0 {
		t.Errorf("ipv6 payload length 0, proto 99: outer %d proto %d payload %d", p.OuterLen, p.Proto, p.PayloadLen)
	}
	// IPv6 jumbo/BIG TCP: payload length 0.
	j := eth(etIPv6, ip6(ip6A, ip6B, protoTCP, big))
	j[14+4], j[14+5] = 0, 0
	if err := d.Decode(j, drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Length: len(j)}, &p); err != nil {
		t.Fatal(err)
	}
	if p.OuterLen != len(j)-14 || p.PayloadLen != 1000 {
		t.Errorf("jumbo: outer %d payload %d", p.OuterLen, p.PayloadLen)
	}
}

func TestFragments(t *testing.T) {
	full := udp(5000, 53, []byte(strings.Repeat("y", 40)))
	first := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 77, 0, true, nil, full[:24]))
	later := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 77, 24, false, nil, full[24:]))
	other := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 78, 24, false, nil, full[24:]))
	ci := func(ts time.Duration) drivers.CaptureInfo {
		return drivers.CaptureInfo{LinkType: drivers.LinkEthernet, Timestamp: int64(ts)}
	}
	d := New(&Config{FragmentTimeout: 10 * time.Second})
	var p Packet
	if err := d.Decode(first, ci(time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Fragment || p.Sport != 5000 || p.Dport != 53 {
		t.Fatalf("first fragment: %+v", p)
	}
	if err := d.Decode(later, ci(2*time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Fragment || p.Sport != 5000 || p.Dport != 53 || p.Proto != 17 || p.PayloadLen != 24 || len(p.Payload) != 24 {
		t.Fatalf("later fragment: %+v", p)
	}
	if err := d.Decode(other, ci(2*time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if p.Sport != 0 || p.Dport != 0 || !p.Fragment {
		t.Fatalf("orphan fragment: %+v", p)
	}
	if n := d.Counters().Reasons[ReasonFragmentWithoutFirst]; n != 1 {
		t.Errorf("fragment-without-first counted %d, want 1", n)
	}
	// After the timeout the first fragment is forgotten.
	if err := d.Decode(later, ci(12*time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if p.Sport != 0 {
		t.Errorf("expired entry still used: %+v", p)
	}

	// IPv6 fragment header.
	f6a := eth(etIPv6, ip6(ip6A, ip6B, 44, cat(frag6(protoUDP, 0, true, 9), full[:24])))
	f6b := eth(etIPv6, ip6(ip6A, ip6B, 44, cat(frag6(protoUDP, 24, false, 9), full[24:])))
	atomic := eth(etIPv6, ip6(ip6A, ip6B, 44, cat(frag6(protoUDP, 0, false, 10), full)))
	for i, f := range [][]byte{f6a, f6b} {
		if err := d.Decode(f, ci(20*time.Second), &p); err != nil {
			t.Fatal(err)
		}
		if !p.Fragment || p.Sport != 5000 || p.Dport != 53 {
			t.Fatalf("ipv6 fragment %d: %+v", i, p)
		}
	}
	if err := d.Decode(atomic, ci(20*time.Second), &p); err != nil {
		t.Fatal(err)
	}
	if p.Fragment || p.Sport != 5000 || p.PayloadLen != 40 {
		t.Fatalf("atomic fragment: %+v", p)
	}

	// A tunnelled first fragment: later fragments join the inner flow.
	g := udp(2152, 2152, gtpu(false, nil, in4tcp))
	g1 := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 5, 0, true, nil, g[:56]))
	g2 := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 5, 56, false, nil, g[56:]))
	for i, f := range [][]byte{g1, g2} {
		if err := d.Decode(f, ci(30*time.Second), &p); err != nil {
			t.Fatal(err)
		}
		w := netip.MustParseAddr(ipC)
		if p.Src != w || p.Sport != 40001 || p.Dport != 80 || p.Tunnel != flow.TunnelGTPU || p.TunnelSrc != netip.MustParseAddr(ipA) {
			t.Fatalf("gtp fragment %d: %+v", i, p)
		}
	}
}

// TestFragmentTableBounded fills the table far beyond its size: it must
// keep working (recent entries found) without growing.
func TestFragmentTableBounded(t *testing.T) {
	d := New(&Config{FragmentTable: 16})
	n := len(d.frags.e)
	var p Packet
	ci := drivers.CaptureInfo{LinkType: drivers.LinkEthernet}
	for id := 0; id < 1000; id++ {
		f := eth(etIPv4, ip4x(ipA, ipB, protoUDP, uint16(id), 0, true, nil, udp(uint16(id), 9, hello)))
		if err := d.Decode(f, ci, &p); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.frags.e) != n || n != 16 {
		t.Fatalf("table has %d entries, want 16", len(d.frags.e))
	}
	f := eth(etIPv4, ip4x(ipA, ipB, protoUDP, 999, 16, false, nil, hello))
	if err := d.Decode(f, ci, &p); err != nil {
		t.Fatal(err)
	}
	if p.Sport != 999 {
		t.Errorf("latest first fragment lost: sport %d", p.Sport)
	}
}

func TestTooDeep(t *testing.T) {
	inner := in4tcp
	for i := 0; i < 12; i++ {
		inner = ip4(ipA, ipB, protoIPIP, inner)
	}
	frame := eth(etIPv4, inner)
	d := New(&Config{MaxDepth: 3})
	var p Packet
	if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Proto != protoIPIP || p.Tunnel != flow.TunnelIPIP || d.Counters().Reasons[ReasonTooDeep] != 1 {
		t.Errorf("depth-limited decode: proto %d tunnel %v counters %+v", p.Proto, p.Tunnel, d.Counters())
	}
	d = New(nil)
	frame = eth(etIPv4, ip4(ipA, ipB, protoIPIP, ip4(ipC, ipD, protoIPIP, in4tcp)))
	if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Sport != 40001 || p.TunnelSrc != netip.MustParseAddr(ipA) {
		t.Errorf("double 4in4: %+v", p)
	}
}

func TestNoDecap(t *testing.T) {
	d := New(&Config{NoDecap: true})
	var p Packet
	frame := eth(etIPv4, ip4(ipA, ipB, protoUDP, udp(1, 4789, vxlan(eth(etIPv4, in4tcp)))))
	if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Dport != 4789 || p.Tunnel != flow.TunnelNone || p.Src != netip.MustParseAddr(ipA) {
		t.Errorf("NoDecap: %+v", p)
	}
}

func TestErrorText(t *testing.T) {
	d := New(nil)
	var p Packet
	err := d.Decode(eth(etVLAN, tag(1, etIPv4), in4tcp[:10]), drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p)
	want := "decode ipv4 at offset 18 (link type 1): truncated"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	for r := Reason(0); r < NumReasons; r++ {
		if s := r.String(); s == "" || strings.ToLower(s) != s || strings.HasPrefix(s, "reason-") {
			t.Errorf("reason %d name %q", r, s)
		}
	}
	if NumReasons.String() != "reason-11" {
		t.Errorf("out-of-range reason %q", NumReasons.String())
	}
}

func TestHasVCFromCaptureInfo(t *testing.T) {
	d := New(nil)
	var p Packet
	err := d.Decode(cat(snapIPv4, in4tcp), drivers.CaptureInfo{LinkType: drivers.LinkATMRFC1483, HasVC: true, VPI: 1, VCI: 32}, &p)
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasVC || p.VPI != 1 || p.VCI != 32 {
		t.Errorf("vc %v %d/%d", p.HasVC, p.VPI, p.VCI)
	}
}

func bytesRepeat(b []byte, n int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		out = append(out, b...)
	}
	return out
}

// TestCountersCount checks that every decoded frame is counted once.
func TestCountersCount(t *testing.T) {
	d := New(nil)
	frame := eth(etIPv4, in4tcp)
	var p Packet
	for i := 0; i < 2000; i++ {
		if err := d.Decode(frame, drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Decode([]byte{1, 2}, drivers.CaptureInfo{LinkType: drivers.LinkEthernet}, &p); err == nil {
		t.Fatal("2-byte frame decoded")
	}
	if c := d.Counters(); c.Packets != 2000 || c.Errors != 1 || c.Reasons[ReasonTruncated] != 1 {
		t.Errorf("counters %+v, want 2000 packets and 1 truncated error", c)
	}
}
