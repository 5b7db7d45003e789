// Package ipfixtest provides flow records for tests of the IPFIX codec,
// the exporter and the collector: fixed samples of every record shape and
// seeded random ones.
package ipfixtest

import (
	"math/rand/v2"
	"net/netip"

	"github.com/mira-project/mira/flow"
)

// Base is a millisecond-aligned time (2019-03-14T19:03:54.892Z) used by
// the samples; IPFIX carries flow times in milliseconds.
const Base = int64(1552590234892) * 1e6

// Samples returns one record of each shape: IPv4 TCP, IPv6 UDP, ICMP,
// ICMPv6, a 6in4-tunnelled flow, a GRE flow with an IPv6 outer header,
// and records with symptoms, ATM circuit and known direction.
func Samples() []flow.Record {
	mac := func(b byte) [6]byte { return [6]byte{0x02, 0, 0, 0, 0, b} }
	return []flow.Record{
		{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), Sport: 40001, Dport: 25, Proto: 6, VLAN: 12},
			Packets: 12, Octets: 2301, InnerOctets: 2301, First: Base, Last: Base + 8479e6, TCPFlags: 0x1b,
			EndReason: flow.EndDetected, IPVersion: 4, Ingress: 3, Direction: 255, SrcMAC: mac(1), DstMAC: mac(2),
			Aggregate: 7, Category: 2, ObservationDomain: 1},
		{Key: flow.Key{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::53"), Sport: 5353, Dport: 53, Proto: 17},
			Packets: 3, Octets: 420, InnerOctets: 420, First: Base + 1e9, Last: Base + 2e9,
			EndReason: flow.EndIdle, IPVersion: 6, Ingress: 1, Direction: 0, ObservationDomain: 1,
			App: flow.App{DNSName: "www.example.com", DNSResponse: true, DNSRcode: 3}},
		{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("198.51.100.1"), Dport: 8 << 8 /* ICMP echo request, code 0 */, Proto: 1},
			Packets: 4, Octets: 336, InnerOctets: 336, First: Base + 3e9, Last: Base + 6e9,
			EndReason: flow.EndIdle, IPVersion: 4, Direction: 1, ObservationDomain: 1},
		{Key: flow.Key{Src: netip.MustParseAddr("2001:db8::2"), Dst: netip.MustParseAddr("2001:db8::3"), Dport: 128 << 8 /* ICMPv6 echo request, code 0 */, Proto: 58},
			Packets: 2, Octets: 208, InnerOctets: 208, First: Base + 4e9, Last: Base + 5e9,
			EndReason: flow.EndForced, IPVersion: 6, Direction: 255, ObservationDomain: 1},
		{Key: flow.Key{Src: netip.MustParseAddr("2001:db8:6::1"), Dst: netip.MustParseAddr("2001:db8:6::2"), Sport: 443, Dport: 51000, Proto: 6},
			Packets: 66, Octets: 12920, InnerOctets: 11600, First: Base + 7e9, Last: Base + 29136e6, TCPFlags: 0x18,
			EndReason: flow.EndActive, IPVersion: 6, Tunnel: flow.Tunnel6in4,
			TunnelSrc: netip.MustParseAddr("203.0.113.4"), TunnelDst: netip.MustParseAddr("203.0.113.5"),
			Direction: 255, Aggregate: 3, ObservationDomain: 1,
			Symptoms: []flow.SymptomCount{{ID: 4, Count: 2}, {ID: 9, Count: 1}}},
		{Key: flow.Key{Src: netip.MustParseAddr("10.1.2.3"), Dst: netip.MustParseAddr("10.4.5.6"), Sport: 1234, Dport: 80, Proto: 6},
			Packets: 10, Octets: 5000, InnerOctets: 4480, First: Base + 9e9, Last: Base + 9500e6, TCPFlags: 0x02,
			EndReason: flow.EndIdle, IPVersion: 4, Tunnel: flow.TunnelGRE,
			TunnelSrc: netip.MustParseAddr("2001:db8:ffff::1"), TunnelDst: netip.MustParseAddr("2001:db8:ffff::2"),
			Direction: 0, Category: 5, ObservationDomain: 2,
			Symptoms: []flow.SymptomCount{{ID: 1, Count: 3}},
			App:      flow.App{HTTPHost: "www.example.org:8080"}},
		{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.50"), Dst: netip.MustParseAddr("192.0.2.60"), Sport: 25, Dport: 40002, Proto: 6},
			Packets: 9, Octets: 811, InnerOctets: 811, First: Base + 11e9, Last: Base + 12e9, TCPFlags: 0x12,
			EndReason: flow.EndDetected, IPVersion: 4, VPI: 1, VCI: 42, Direction: 255, ObservationDomain: 1,
			Symptoms: []flow.SymptomCount{{ID: 2, Count: 100000}, {ID: 3, Count: 1}, {ID: 65535, Count: 7}},
			App:      flow.App{ServerName: "mail.example.net", ALPN: "smtp,h2"}},
		{Key: flow.Key{Src: netip.MustParseAddr("198.51.100.21"), Dst: netip.MustParseAddr("192.0.2.21"), Sport: 21, Dport: 40021, Proto: 6},
			Packets: 14, Octets: 1210, InnerOctets: 1210, First: Base + 13e9, Last: Base + 19e9, TCPFlags: 0x1b,
			EndReason: flow.EndDetected, IPVersion: 4, Direction: 255, ObservationDomain: 1,
			Symptoms: []flow.SymptomCount{{ID: 5, Count: 4}},
			App:      flow.App{FTPData: "50126,50127,20"}},
	}
}

// Random returns n random records from seed. Times are whole
// milliseconds, as IPFIX carries them.
func Random(seed uint64, n int) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]flow.Record, n)
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			b[0] = 0x20
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
	}
	// Application metadata from a stream of its own, so records without
	// it are those of earlier versions.
	arng := rand.New(rand.NewPCG(seed^0xa4a4, seed))
	names := []string{"", "a.example", "video.example.net", "x-1.cdn.example.org", "_svc._tcp.local"}
	for i := range out {
		r := &out[i]
		if arng.IntN(3) == 0 {
			a := &r.App
			a.ServerName = names[arng.IntN(len(names))]
			a.HTTPHost = names[arng.IntN(len(names))]
			a.DNSName = names[arng.IntN(len(names))]
			a.ALPN = []string{"", "h2", "h3,h3-29"}[arng.IntN(3)]
			if arng.IntN(2) == 0 {
				a.DNSResponse, a.DNSRcode = true, uint8(arng.IntN(16))
			}
			if arng.IntN(4) == 0 {
				a.FTPData = []string{"20", "1025,1026", "65535,1,443"}[arng.IntN(3)]
			}
		}
		v6 := rng.IntN(3) == 0
		r.Src, r.Dst = addr(v6), addr(v6)
		r.IPVersion = 4
		if v6 {
			r.IPVersion = 6
		}
		switch rng.IntN(5) {
		case 0:
			r.Proto = 17
		case 1:
			r.Proto = 1
			if v6 {
				r.Proto = 58
			}
		default:
			r.Proto = 6
			r.TCPFlags = uint8(rng.Uint32())
		}
		if r.Proto != 1 && r.Proto != 58 {
			r.Sport = uint16(rng.Uint32())
		}
		r.Dport = uint16(rng.Uint32())
		r.VLAN = uint16(rng.IntN(4096))
		r.Packets = 1 + rng.Uint64N(1e6)
		// At most 1500 bytes a packet: plausible (ipfix.MaxPacketOctets).
		r.Octets = r.Packets*40 + rng.Uint64N(r.Packets*1460+1)
		r.InnerOctets = r.Octets
		r.First = Base + rng.Int64N(1e6)*1e6
		r.Last = r.First + rng.Int64N(1e5)*1e6
		r.EndReason = flow.EndReason(1 + rng.IntN(5))
		r.Ingress = rng.Uint32N(64)
		r.Direction = []uint8{0, 1, 255}[rng.IntN(3)]
		if rng.IntN(4) == 0 {
			r.Tunnel = flow.TunnelType(1 + rng.IntN(6))
			r.TunnelSrc, r.TunnelDst = addr(rng.IntN(2) == 0), addr(false)
			if r.TunnelSrc.Is6() {
				r.TunnelDst = addr(true)
			}
			r.InnerOctets = r.Octets - 20*r.Packets
		}
		if rng.IntN(5) == 0 {
			r.VPI, r.VCI = uint16(rng.IntN(256)), uint16(32+rng.IntN(1000))
		}
		r.SrcMAC = [6]byte{2, byte(i), 0, 0, 0, 1}
		r.DstMAC = [6]byte{2, byte(i), 0, 0, 0, 2}
		r.Aggregate = rng.Uint32N(10)
		r.Category = uint16(rng.IntN(10))
		if rng.IntN(3) == 0 {
			for j := rng.IntN(5); j >= 0; j-- {
				r.Symptoms = append(r.Symptoms, flow.SymptomCount{ID: uint16(rng.IntN(100)), Count: 1 + rng.Uint32N(1000)})
			}
		}
		r.ObservationDomain = rng.Uint32N(3)
		if rng.IntN(4) == 0 {
			r.SamplingPacketInterval = 1 + rng.Uint32N(100)
		}
	}
	return out
}
