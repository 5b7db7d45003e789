package decode

import (
	"net/netip"

	"github.com/mira-project/mira/flow"
)

// IP protocol numbers the decoder handles.
const (
	protoICMP   = 1
	protoIPIP   = 4
	protoTCP    = 6
	protoUDP    = 17
	protoDCCP   = 33
	protoIPv6   = 41
	protoGRE    = 47
	protoAH     = 51
	protoICMPv6 = 58
	protoNoNext = 59
	protoSCTP   = 132
	protoUDPLte = 136
)

// ipAny decodes an IPv4 or IPv6 header chosen by the version nibble.
func (d *Decoder) ipAny(b []byte, off, end int, p *Packet, depth int, l Layer) error {
	if len(b)-off < 1 {
		return d.fail(ReasonTruncated, l, off)
	}
	switch b[off] >> 4 {
	case 4:
		return d.ipv4(b, off, end, p, depth)
	case 6:
		return d.ipv6(b, off, end, p, depth)
	}
	return d.fail(ReasonBadIPVersion, l, off)
}

// ipv4 decodes an IPv4 header at off. end is where the enclosing layer's
// bytes end on the wire, used when the total length field is 0 (TSO).
func (d *Decoder) ipv4(b []byte, off, end int, p *Packet, depth int) error {
	if len(b)-off < 20 {
		return d.fail(ReasonTruncated, LayerIPv4, off)
	}
	h := b[off:]
	if h[0]>>4 != 4 {
		return d.fail(ReasonBadIPVersion, LayerIPv4, off)
	}
	ihl := int(h[0]&0x0f) * 4
	if ihl < 20 {
		return d.fail(ReasonBadHeaderLength, LayerIPv4, off)
	}
	if len(h) < ihl {
		return d.fail(ReasonTruncated, LayerIPv4, off)
	}
	tot := int(be16(h[2:]))
	if tot == 0 {
		tot = end - off
	}
	if tot < ihl {
		return d.fail(ReasonBadHeaderLength, LayerIPv4, off)
	}
	ipEnd := off + tot
	if ipEnd < len(b) {
		b = b[:ipEnd] // drop link padding and trailers
	}
	if p.OuterLen == 0 {
		p.OuterLen = tot
	}
	p.InnerLen = tot
	p.IPVersion = 4
	p.Src = netip.AddrFrom4([4]byte(h[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(h[16:20]))
	ff := be16(h[6:])
	if ff&0x3fff == 0 {
		return d.transport(b, off+ihl, ipEnd, p, h[9], depth)
	}
	return d.fragment(b, off+ihl, ipEnd, p, h[9], depth, uint32(be16(h[4:])), ff&0x1fff != 0)
}

// ipv6 decodes an IPv6 header and its extension headers at off.
func (d *Decoder) ipv6(b []byte, off, end int, p *Packet, depth int) error {
	if len(b)-off < 40 {
		return d.fail(ReasonTruncated, LayerIPv6, off)
	}
	h := b[off:]
	if h[0]>>4 != 6 {
		return d.fail(ReasonBadIPVersion, LayerIPv6, off)
	}
	nh := h[6]
	tot := 40 + int(be16(h[4:]))
	if tot == 40 && (nh == protoTCP || nh == 0) {
		// BIG TCP/GSO (TCP right after the header) or a jumbogram
		// (hop-by-hop jumbo option): the length is the rest of the
		// frame. Otherwise 0 means an empty payload, and what follows
		// is link padding.
		tot = end - off
		if tot < 40 {
			return d.fail(ReasonBadHeaderLength, LayerIPv6, off)
		}
	}
	ipEnd := off + tot
	if ipEnd < len(b) {
		b = b[:ipEnd]
	}
	if p.OuterLen == 0 {
		p.OuterLen = tot
	}
	p.InnerLen = tot
	p.IPVersion = 6
	p.Src = netip.AddrFrom16([16]byte(h[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(h[24:40]))
	o := off + 40
	var id uint32
	frag, later := false, false
ext:
	for i := 0; i < 8; i++ {
		switch nh {
		case 0, 43, 60, protoAH, 44:
			if ipEnd-o < 8 {
				return d.fail(ReasonBadHeaderLength, LayerIPv6Ext, o)
			}
			if len(b)-o < 8 {
				return d.fail(ReasonTruncated, LayerIPv6Ext, o)
			}
			hl := 8
			switch nh {
			case 44:
				fo := be16(b[o+2:]) &^ 7
				if fo != 0 || b[o+3]&1 != 0 { // not an atomic fragment
					frag, later = true, fo != 0
				}
				id = be32(b[o+4:])
			case protoAH:
				hl = (int(b[o+1]) + 2) * 4
			default:
				hl = (int(b[o+1]) + 1) * 8
			}
			if hl > ipEnd-o {
				return d.fail(ReasonBadHeaderLength, LayerIPv6Ext, o)
			}
			nh = b[o]
			o += hl
		default:
			break ext
		}
	}
	if frag {
		return d.fragment(b, o, ipEnd, p, nh, depth, id, later)
	}
	return d.transport(b, o, ipEnd, p, nh, depth)
}

// fragment handles an IP fragment whose transport data starts at off. A
// first fragment is decoded normally and remembered; a later one takes the
// identity its first fragment decoded to.
func (d *Decoder) fragment(b []byte, off, end int, p *Packet, proto uint8, depth int, id uint32, later bool) error {
	p.Fragment = true
	k := fragKey{src: p.Src, dst: p.Dst, id: id, proto: proto}
	if later {
		p.LaterFragment = true
		p.Proto = proto
		p.Sport, p.Dport, p.TCPFlags, p.TCPSeq = 0, 0, 0, 0
		p.Payload = nil
		setPayload(p, b, off, end)
		if !d.frags.lookup(&k, d.ts, p) {
			d.note(ReasonFragmentWithoutFirst)
		}
		return nil
	}
	if err := d.transport(b, off, end, p, proto, depth); err != nil {
		// A first fragment may cut the transport header short (tiny
		// fragments): keep the ports if they are there.
		if d.err.Layer < LayerTCP || !hasPorts(proto) || end-off < 4 || len(b)-off < 4 {
			return err
		}
		p.Proto = proto
		p.Sport, p.Dport = be16(b[off:]), be16(b[off+2:])
		p.Payload, p.PayloadLen = nil, 0
	}
	d.frags.store(&k, d.ts, p)
	return nil
}

// hasPorts says the protocol's header starts with source and destination
// ports.
func hasPorts(proto uint8) bool {
	switch proto {
	case protoTCP, protoUDP, protoUDPLte, protoSCTP, protoDCCP:
		return true
	}
	return false
}

// setPayload sets the transport payload to [off, end) as far as captured;
// b is already cut to the IP datagram's end.
func setPayload(p *Packet, b []byte, off, end int) {
	p.PayloadLen = end - off
	if off < len(b) {
		p.Payload = b[off:]
	}
}

// transport decodes the transport header at off, up to end (the IP
// datagram's end), and follows tunnels.
func (d *Decoder) transport(b []byte, off, end int, p *Packet, proto uint8, depth int) error {
	if proto == protoAH { // IPv4 authentication header
		if end-off < 8 {
			return d.fail(ReasonBadHeaderLength, LayerTransport, off)
		}
		if len(b)-off < 8 {
			return d.fail(ReasonTruncated, LayerTransport, off)
		}
		hl := (int(b[off+1]) + 2) * 4
		if hl > end-off {
			return d.fail(ReasonBadHeaderLength, LayerTransport, off)
		}
		proto = b[off]
		off += hl
	}
	p.Proto = proto
	p.Sport, p.Dport, p.TCPFlags, p.TCPSeq = 0, 0, 0, 0
	p.Payload, p.PayloadLen = nil, 0
	n := end - off
	switch proto {
	case protoTCP:
		if n < 20 {
			return d.fail(ReasonBadHeaderLength, LayerTCP, off)
		}
		if len(b)-off < 20 {
			return d.fail(ReasonTruncated, LayerTCP, off)
		}
		h := b[off : off+20]
		p.Sport, p.Dport = be16(h), be16(h[2:])
		p.TCPSeq = be32(h[4:])
		p.TCPFlags = h[13]
		doff := int(h[12]>>4) * 4
		if doff < 20 || doff > n {
			return d.fail(ReasonBadHeaderLength, LayerTCP, off)
		}
		setPayload(p, b, off+doff, end)
	case protoUDP, protoUDPLte:
		if n < 8 {
			return d.fail(ReasonBadHeaderLength, LayerUDP, off)
		}
		if len(b)-off < 8 {
			return d.fail(ReasonTruncated, LayerUDP, off)
		}
		p.Sport, p.Dport = be16(b[off:]), be16(b[off+2:])
		setPayload(p, b, off+8, end)
		if proto == protoUDP && !d.noDecap {
			return d.udpTunnel(b, off+8, end, p, depth)
		}
	case protoICMP, protoICMPv6:
		if n < 4 {
			return d.fail(ReasonBadHeaderLength, LayerICMP, off)
		}
		if len(b)-off < 2 {
			return d.fail(ReasonTruncated, LayerICMP, off)
		}
		p.Dport = uint16(b[off])<<8 | uint16(b[off+1])
		hl := 8
		if n < hl {
			hl = n
		}
		setPayload(p, b, off+hl, end)
	case protoSCTP:
		if n < 12 {
			return d.fail(ReasonBadHeaderLength, LayerSCTP, off)
		}
		if len(b)-off < 12 {
			return d.fail(ReasonTruncated, LayerSCTP, off)
		}
		p.Sport, p.Dport = be16(b[off:]), be16(b[off+2:])
		setPayload(p, b, off+12, end)
	case protoDCCP:
		if n < 12 {
			return d.fail(ReasonBadHeaderLength, LayerTransport, off)
		}
		if len(b)-off < 12 {
			return d.fail(ReasonTruncated, LayerTransport, off)
		}
		p.Sport, p.Dport = be16(b[off:]), be16(b[off+2:])
		doff := int(b[off+4]) * 4
		if doff < 12 || doff > n {
			return d.fail(ReasonBadHeaderLength, LayerTransport, off)
		}
		setPayload(p, b, off+doff, end)
	case protoIPIP, protoIPv6:
		setPayload(p, b, off, end)
		if d.noDecap {
			return nil
		}
		if proto == protoIPIP {
			return d.tunnel(b, off, end, p, depth, flow.TunnelIPIP, etIPv4)
		}
		return d.tunnel(b, off, end, p, depth, flow.Tunnel6in4, etIPv6)
	case protoGRE:
		setPayload(p, b, off, end)
		if d.noDecap {
			return nil
		}
		return d.gre(b, off, end, p, depth)
	default:
		if n < 0 {
			return d.fail(ReasonBadHeaderLength, LayerTransport, off)
		}
		setPayload(p, b, off, end)
	}
	return nil
}
