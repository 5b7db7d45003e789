package decode

import "github.com/mira-project/mira/flow"

// tunnel decodes a tunnel's payload at off; what is an ethertype (etTEB
// for Ethernet, etPPP for a PPP frame, 0 for IP by version nibble). If the
// payload does not decode, p goes back to the outer packet and the event
// is counted: the frame is still a valid packet of the outer flow.
func (d *Decoder) tunnel(b []byte, off, end int, p *Packet, depth int, kind flow.TunnelType, what uint16) error {
	if depth >= d.maxDepth {
		d.note(ReasonTooDeep)
		return nil
	}
	saved := *p
	if p.Tunnel == flow.TunnelNone {
		p.Tunnel, p.TunnelSrc, p.TunnelDst = kind, p.Src, p.Dst
	}
	var err error
	switch what {
	case 0:
		err = d.ipAny(b, off, end, p, depth+1, LayerTransport)
	case etTEB:
		err = d.ethernet(b, off, end, p, depth+1, false)
	case etPPP:
		err = d.ppp(b, off, end, p, depth+1, false)
	case etWLAN:
		err = d.wlan(b, off, end, p, depth+1)
	default:
		err = d.ethertype(b, off, end, what, p, depth+1, false)
	}
	if err != nil {
		*p = saved
		if err == ErrNonIP {
			d.note(ReasonTunnelNonIP)
		} else {
			d.note(ReasonBadTunnel)
		}
	}
	return nil
}

// GRE flag bits (RFC 2784, RFC 2890, RFC 2637).
const (
	greChecksum = 0x8000
	greRouting  = 0x4000
	greKey      = 0x2000
	greSeq      = 0x1000
	greAck      = 0x0080
)

// gre decodes a GRE header (version 0, or version 1 as used by PPTP) at off
// and what it carries.
func (d *Decoder) gre(b []byte, off, end int, p *Packet, depth int) error {
	if len(b)-off < 4 {
		d.note(ReasonBadTunnel)
		return nil
	}
	flags, proto := be16(b[off:]), be16(b[off+2:])
	hl := 4
	switch flags & 7 {
	case 0:
		if flags&greRouting != 0 { // RFC 1701 source routing: obsolete
			d.note(ReasonBadTunnel)
			return nil
		}
		if flags&greChecksum != 0 {
			hl += 4
		}
		if flags&greKey != 0 {
			hl += 4
		}
		if flags&greSeq != 0 {
			hl += 4
		}
	case 1:
		if flags&greKey == 0 || proto != etPPP {
			d.note(ReasonBadTunnel)
			return nil
		}
		hl += 4 // payload length and call id
		if flags&greSeq != 0 {
			hl += 4
		}
		if flags&greAck != 0 {
			hl += 4
		}
		if len(b)-off >= 6 && be16(b[off+4:]) == 0 {
			return nil // acknowledgement only: a GRE packet without payload
		}
	default:
		d.note(ReasonBadTunnel)
		return nil
	}
	if len(b)-off < hl {
		d.note(ReasonBadTunnel)
		return nil
	}
	off += hl
	switch proto {
	case etIPv4, etIPv6, etMPLS, etMPLSMcast, etTEB, etPPP:
		return d.tunnel(b, off, end, p, depth, flow.TunnelGRE, proto)
	case etCMD:
		// Cisco MetaData over GRE: the payload's ethertype, version,
		// length, option type and SGT value.
		if len(b)-off < 8 {
			d.note(ReasonBadTunnel)
			return nil
		}
		return d.tunnel(b, off+8, end, p, depth, flow.TunnelGRE, be16(b[off:]))
	case etAruba:
		return d.tunnel(b, off, end, p, depth, flow.TunnelGRE, etWLAN)
	case etWCCP:
		// WCCP redirection: WCCPv1 puts the IPv4 packet right after
		// GRE; WCCPv2 inserts a 4-byte redirect header first, which is
		// told apart by its first byte not starting an IPv4 header.
		if len(b)-off >= 1 && b[off]>>4 != 4 {
			off += 4
		}
		return d.tunnel(b, off, end, p, depth, flow.TunnelGRE, etIPv4)
	case etERSPAN2:
		// Type II has an 8-byte header and a sequence number; type I has
		// neither.
		if flags&greSeq != 0 {
			if len(b)-off < 8 || b[off]>>4 != 1 {
				d.note(ReasonBadTunnel)
				return nil
			}
			off += 8
		}
		return d.tunnel(b, off, end, p, depth, flow.TunnelGRE, etTEB)
	case etERSPAN3:
		if len(b)-off < 12 || b[off]>>4 != 2 {
			d.note(ReasonBadTunnel)
			return nil
		}
		if (b[off+10]>>2)&0x1f != 0 { // frame type other than Ethernet
			d.note(ReasonTunnelNonIP)
			return nil
		}
		o := off + 12
		if b[off+11]&1 != 0 { // optional platform-specific subheader
			o += 8
		}
		return d.tunnel(b, o, end, p, depth, flow.TunnelGRE, etTEB)
	}
	d.note(ReasonTunnelNonIP)
	return nil
}

// udpTunnel follows VXLAN, Geneve, GTP-U, Teredo and VXLAN-GPE on their UDP
// ports. A payload that does not look like the tunnel leaves the packet a
// plain UDP one. The destination port is tried first; VXLAN and Geneve are
// also recognised by their source port when the destination port names no
// other tunnel (as Wireshark does, lower port first: 4789 -> 4790 is
// VXLAN, not VXLAN-GPE).
func (d *Decoder) udpTunnel(b []byte, off, end int, p *Packet, depth int) error {
	sp, dp := p.Sport, p.Dport
	for i := 0; i < d.nvxlan; i++ {
		if dp == d.vxlan[i] {
			return d.vxlanTunnel(b, off, end, p, depth)
		}
	}
	if dp == d.geneve {
		return d.geneveTunnel(b, off, end, p, depth)
	}
	if sp == d.gtpu || dp == d.gtpu {
		return d.gtpTunnel(b, off, end, p, depth)
	}
	if sp == d.teredo || dp == d.teredo {
		return d.teredoTunnel(b, off, end, p, depth)
	}
	for i := 0; i < d.nvxlan; i++ {
		if sp == d.vxlan[i] {
			return d.vxlanTunnel(b, off, end, p, depth)
		}
	}
	if sp == d.geneve {
		return d.geneveTunnel(b, off, end, p, depth)
	}
	if sp == d.gpe || dp == d.gpe {
		return d.gpeTunnel(b, off, end, p, depth)
	}
	return nil
}

// VXLAN-GPE next-protocol values (draft-ietf-nvo3-vxlan-gpe).
var gpeNext = [6]uint16{0, etIPv4, etIPv6, etTEB, etNSH, etMPLS}

// gpeTunnel decodes a VXLAN-GPE header: flags (version 0), the next
// protocol in the fourth byte, the VNI, then IPv4, IPv6, Ethernet, NSH or
// MPLS. Like Wireshark it reads the next protocol even when the P flag is
// clear. It is tried after every other tunnel, so 4789 -> 4790 is VXLAN.
func (d *Decoder) gpeTunnel(b []byte, off, end int, p *Packet, depth int) error {
	if end-off < 8 || len(b)-off < 8 || (b[off]>>4)&3 != 0 {
		return nil
	}
	if n := b[off+3]; n > 0 && int(n) < len(gpeNext) {
		return d.tunnel(b, off+8, end, p, depth, flow.TunnelVXLAN, gpeNext[n])
	}
	d.note(ReasonTunnelNonIP)
	return nil
}

// geneveTunnel decodes a Geneve header (RFC 8926): version 0, options
// (their total length in 4-byte words), then the payload named by its
// ethertype: Ethernet, IPv4 or IPv6. Other payloads stay the outer flow.
func (d *Decoder) geneveTunnel(b []byte, off, end int, p *Packet, depth int) error {
	if end-off < 8 || len(b)-off < 8 || b[off]>>6 != 0 {
		return nil
	}
	o := off + 8 + int(b[off]&0x3f)*4
	if o > end {
		d.note(ReasonBadTunnel)
		return nil
	}
	switch proto := be16(b[off+2:]); proto {
	case etTEB, etIPv4, etIPv6:
		return d.tunnel(b, o, end, p, depth, flow.TunnelGeneve, proto)
	}
	d.note(ReasonTunnelNonIP)
	return nil
}

// vxlanTunnel decodes a VXLAN header (RFC 7348): flags with the I bit,
// then an Ethernet frame.
func (d *Decoder) vxlanTunnel(b []byte, off, end int, p *Packet, depth int) error {
	if end-off < 8+14 || len(b)-off < 1 || b[off]&0x08 == 0 {
		return nil
	}
	if len(b)-off < 8 {
		d.note(ReasonBadTunnel)
		return nil
	}
	return d.tunnel(b, off+8, end, p, depth, flow.TunnelVXLAN, etTEB)
}

// gtpTunnel decodes a GTPv1-U G-PDU (3GPP TS 29.281) with its optional
// fields and extension headers, then the user's IP packet. Signalling
// messages (echo, error indication, end marker) stay plain UDP.
func (d *Decoder) gtpTunnel(b []byte, off, end int, p *Packet, depth int) error {
	if end-off < 8 || len(b)-off < 8 {
		return nil
	}
	f := b[off]
	if f>>5 != 1 || f&0x10 == 0 || b[off+1] != 0xff {
		return nil
	}
	iend := off + 8 + int(be16(b[off+2:]))
	o := off + 8
	if f&0x07 != 0 {
		if len(b)-o < 4 {
			d.note(ReasonBadTunnel)
			return nil
		}
		next := b[o+3]
		o += 4
		for next != 0 {
			if len(b)-o < 1 {
				d.note(ReasonBadTunnel)
				return nil
			}
			l := int(b[o]) * 4
			if l == 0 || len(b)-o < l {
				d.note(ReasonBadTunnel)
				return nil
			}
			next = b[o+l-1]
			o += l
		}
	}
	return d.tunnel(b, o, iend, p, depth, flow.TunnelGTPU, 0)
}

// teredoTunnel decodes Teredo (RFC 4380): optional authentication and
// origin indications, then an IPv6 packet that must fill the UDP payload.
func (d *Decoder) teredoTunnel(b []byte, off, end int, p *Packet, depth int) error {
	o := off
	if len(b)-o >= 4 && b[o] == 0 && b[o+1] == 1 {
		o += 4 + int(b[o+2]) + int(b[o+3]) + 9
	}
	if len(b)-o >= 8 && b[o] == 0 && b[o+1] == 0 {
		o += 8
	}
	if len(b)-o < 40 || b[o]>>4 != 6 || o+40+int(be16(b[o+4:])) > end {
		return nil
	}
	return d.tunnel(b, o, end, p, depth, flow.TunnelTeredo, etIPv6)
}

// etWLAN is an internal code (not a real ethertype) for an 802.11 frame.
const etWLAN = 0xfffe

// wlan decodes an IEEE 802.11 data frame header (as tunnelled by Aruba
// access points) and the LLC/SNAP header after it. Management, control,
// null and protected frames carry no decodable IP.
func (d *Decoder) wlan(b []byte, off, end int, p *Packet, depth int) error {
	if len(b)-off < 24 {
		return d.fail(ReasonTruncated, LayerLink, off)
	}
	fc0, fc1 := b[off], b[off+1]
	if (fc0>>2)&3 != 2 || fc0&0x40 != 0 || fc1&0x40 != 0 {
		return ErrNonIP
	}
	hl := 24
	if fc1&3 == 3 {
		hl += 6 // four addresses
	}
	if fc0&0x80 != 0 {
		hl += 2 // QoS control
		if fc1&0x80 != 0 {
			hl += 4 // HT control
		}
	}
	return d.llc(b, off+hl, end, p, depth, false)
}
