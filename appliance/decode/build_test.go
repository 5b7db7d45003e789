package decode

import (
	"encoding/binary"
	"net/netip"
)

// Builders for hand-made test frames. Lengths are computed from the
// parts; checksums are left zero (the decoder does not check them).

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

var (
	macA = []byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = []byte{0x02, 0, 0, 0, 0, 0x0b}
)

// eth builds an Ethernet II header (dst macB, src macA) and payload.
func eth(et uint16, payload ...[]byte) []byte {
	return cat(macB, macA, u16(et), cat(payload...))
}

// tag is an 802.1Q-style tag: TCI then the next ethertype.
func tag(vid, next uint16) []byte { return cat(u16(0x2000|vid), u16(next)) }

func addr4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
func addr6(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

// ip4 builds an IPv4 header with the given options and payload.
func ip4(src, dst string, proto uint8, payload []byte) []byte {
	return ip4x(src, dst, proto, 0, 0, false, nil, payload)
}

// ip4x builds an IPv4 header with an id, fragment offset (bytes), MF flag
// and options.
func ip4x(src, dst string, proto uint8, id uint16, fragOff int, mf bool, opts []byte, payload []byte) []byte {
	hl := 20 + len(opts)
	ff := uint16(fragOff / 8)
	if mf {
		ff |= 0x2000
	}
	h := cat([]byte{0x40 | byte(hl/4), 0}, u16(uint16(hl+len(payload))), u16(id), u16(ff),
		[]byte{64, proto, 0, 0}, addr4(src), addr4(dst), opts)
	return cat(h, payload)
}

// ip6 builds an IPv6 header; nh is the first next header.
func ip6(src, dst string, nh uint8, payload []byte) []byte {
	return cat([]byte{0x60, 0, 0, 0}, u16(uint16(len(payload))), []byte{nh, 64}, addr6(src), addr6(dst), payload)
}

// ext6 builds an 8-byte-unit IPv6 extension header (hop-by-hop, routing,
// destination options) of n units.
func ext6(nh uint8, units int) []byte {
	h := make([]byte, 8*units)
	h[0], h[1] = nh, byte(units-1)
	return h
}

// frag6 builds an IPv6 fragment header.
func frag6(nh uint8, off int, more bool, id uint32) []byte {
	v := uint16(off)
	if more {
		v |= 1
	}
	return cat([]byte{nh, 0}, u16(v), u32(id))
}

func tcp(sport, dport uint16, flags uint8, seq uint32, payload []byte) []byte {
	return cat(u16(sport), u16(dport), u32(seq), u32(0), []byte{5 << 4, flags}, u16(65535), u16(0), u16(0), payload)
}

func udp(sport, dport uint16, payload []byte) []byte {
	return cat(u16(sport), u16(dport), u16(uint16(8+len(payload))), u16(0), payload)
}

func icmp(typ, code uint8, payload []byte) []byte {
	return cat([]byte{typ, code, 0, 0, 0, 1, 0, 1}, payload)
}

func sctp(sport, dport uint16, payload []byte) []byte {
	return cat(u16(sport), u16(dport), u32(0xdeadbeef), u32(0), payload)
}

// gre builds a GRE version 0 header with optional checksum, key and
// sequence fields.
func gre(proto uint16, csum, key, seq bool, payload []byte) []byte {
	var flags uint16
	var opt []byte
	if csum {
		flags |= greChecksum
		opt = append(opt, 0, 0, 0, 0)
	}
	if key {
		flags |= greKey
		opt = append(opt, u32(42)...)
	}
	if seq {
		flags |= greSeq
		opt = append(opt, u32(7)...)
	}
	return cat(u16(flags), u16(proto), opt, payload)
}

// pptpGRE builds an enhanced GRE (version 1) header carrying PPP.
func pptpGRE(seq, ack bool, ppp []byte) []byte {
	flags := uint16(greKey | 1)
	opt := cat(u16(uint16(len(ppp))), u16(9))
	if seq {
		flags |= greSeq
		opt = append(opt, u32(1)...)
	}
	if ack {
		flags |= greAck
		opt = append(opt, u32(2)...)
	}
	return cat(u16(flags), u16(etPPP), opt, ppp)
}

func vxlan(inner []byte) []byte { return cat([]byte{0x08, 0, 0, 0, 0, 0, 0x64, 0}, inner) }

// gtpu builds a GTPv1-U G-PDU; with seq it carries the optional fields,
// and exts are extension headers given as (type, content) pairs whose
// content length must be 4n-2.
func gtpu(seq bool, exts [][2][]byte, inner []byte) []byte {
	flags := byte(0x30)
	var opt []byte
	if seq || len(exts) > 0 {
		if seq {
			flags |= 0x02
		}
		next := byte(0)
		if len(exts) > 0 {
			flags |= 0x04
			next = exts[0][0][0]
		}
		opt = cat(u16(1), []byte{0, next})
		for i, e := range exts {
			n := byte(0)
			if i+1 < len(exts) {
				n = exts[i+1][0][0]
			}
			body := e[1]
			opt = append(opt, byte((len(body)+2)/4))
			opt = append(opt, body...)
			opt = append(opt, n)
		}
	}
	return cat([]byte{flags, 0xff}, u16(uint16(len(opt)+len(inner))), u32(0x1234), opt, inner)
}

// mplsLabel builds one label stack entry.
func mplsLabel(label uint32, bos bool) []byte {
	v := label<<12 | 64
	if bos {
		v |= 0x100
	}
	return u32(v)
}

var snapIPv4 = []byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00}

// nsh returns an NSH base and service path header announcing words 4-byte
// words in all (MD type 2 when words is 2, else MD type 1 with zeroed
// context headers up to words).
func nsh(next uint8, words int) []byte {
	md := byte(1)
	if words == 2 {
		md = 2
	}
	h := cat([]byte{0x0f, 0xc0 | byte(words&0x3f), md, next}, u32(0x00010203))
	if words > 2 {
		h = cat(h, make([]byte, (words-2)*4))
	}
	return h
}

// geneve returns a Geneve header with the given options and protocol
// type, then inner.
func geneve(proto uint16, opts, inner []byte) []byte {
	return cat([]byte{byte(len(opts) / 4), 0}, u16(proto), u32(0x000a0b00), opts, inner)
}

// gpe returns a VXLAN-GPE header (I and P flags) naming next, then inner.
func gpe(next uint8, inner []byte) []byte {
	return cat([]byte{0x0c, 0, 0, next}, u32(0x00abcd00), inner)
}
