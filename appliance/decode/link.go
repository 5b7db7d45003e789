package decode

import "github.com/mira-project/mira/drivers"

// Ethertypes and protocol numbers the decoder dispatches on.
const (
	etIPv4       = 0x0800
	etARP        = 0x0806
	etIPv6       = 0x86dd
	etVLAN       = 0x8100
	etQinQ       = 0x88a8
	etQinQOld    = 0x9100
	etQinQOld2   = 0x9200
	etMPLS       = 0x8847
	etMPLSMcast  = 0x8848
	etPPPoED     = 0x8863
	etPPPoES     = 0x8864
	etPBB        = 0x88e7
	etTEB        = 0x6558
	etERSPAN2    = 0x88be
	etERSPAN3    = 0x22eb
	etPPP        = 0x880b
	etCMD        = 0x8909
	etAruba      = 0x8200
	etVNTag      = 0x8926
	etFabricPath = 0x8903
	etNSH        = 0x894f
	etWCCP       = 0x883e

	pppIPv4 = 0x0021
	pppIPv6 = 0x0057
	pppMPLS = 0x0281
)

// decodeLink dispatches on the capture's link type.
func (d *Decoder) decodeLink(b []byte, p *Packet) error {
	end := d.wire
	switch d.link {
	case drivers.LinkEthernet:
		return d.ethernet(b, 0, end, p, 0, true)
	case drivers.LinkRaw:
		return d.ipAny(b, 0, end, p, 0, LayerLink)
	case drivers.LinkIPv4:
		return d.ipv4(b, 0, end, p, 0)
	case drivers.LinkIPv6:
		return d.ipv6(b, 0, end, p, 0)
	case drivers.LinkNull, drivers.LinkLoop:
		if len(b) < 4 {
			return d.fail(ReasonTruncated, LayerNull, 0)
		}
		var af uint32
		if d.link == drivers.LinkLoop {
			af = be32(b)
		} else if b[0] == 0 && b[1] == 0 {
			// Host byte order of the capturing machine: a big-endian
			// host leaves the small family number in the last byte.
			af = be32(b)
		} else {
			af = uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		}
		switch af {
		case 2:
			return d.ipv4(b, 4, end, p, 0)
		case 24, 28, 30:
			return d.ipv6(b, 4, end, p, 0)
		}
		return d.fail(ReasonUnknownEthertype, LayerNull, 0)
	case drivers.LinkLinuxSLL:
		if len(b) < 16 {
			return d.fail(ReasonTruncated, LayerSLL, 0)
		}
		return d.sllProto(b, 16, end, be16(b[14:]), p)
	case drivers.LinkLinuxSLL2:
		if len(b) < 20 {
			return d.fail(ReasonTruncated, LayerSLL, 0)
		}
		return d.sllProto(b, 20, end, be16(b[0:]), p)
	case drivers.LinkPPP, drivers.LinkPPPHDLC, drivers.LinkCHDLC:
		return d.ppp(b, 0, end, p, 0, true)
	case drivers.LinkNFLOG:
		return d.nflog(b, end, p)
	case drivers.LinkATMRFC1483:
		return d.llc(b, 0, end, p, 0, true)
	case drivers.LinkSunATM:
		if len(b) < 4 {
			return d.fail(ReasonTruncated, LayerATM, 0)
		}
		p.VPI, p.VCI, p.HasVC = uint16(b[1]), be16(b[2:]), true
		switch b[0] & 0x0f {
		case 1: // LAN emulation: 2-byte LEC id, then an Ethernet frame
			return d.ethernet(b, 6, end, p, 0, true)
		case 2:
			return d.llc(b, 4, end, p, 0, true)
		}
		// Other traffic types (raw cells, signalling, ILMI) carry no IP
		// unless the frame is LLC/SNAP anyway.
		if len(b) >= 7 && b[4] == 0xaa && b[5] == 0xaa && b[6] == 0x03 {
			return d.llc(b, 4, end, p, 0, true)
		}
		return ErrNonIP
	}
	return d.fail(ReasonUnsupportedLink, LayerLink, 0)
}

// sllProto handles the protocol field of Linux cooked captures, which is an
// ethertype except for a few small values naming 802.2/802.3 frames.
func (d *Decoder) sllProto(b []byte, off, end int, proto uint16, p *Packet) error {
	if proto >= 0x0600 {
		return d.ethertype(b, off, end, proto, p, 0, true)
	}
	if proto == 0x0004 { // ETH_P_802_2: an LLC frame follows
		return d.llc(b, off, end, p, 0, true)
	}
	return ErrNonIP // ETH_P_802_3 (raw IPX), CAN, and other non-IP framings
}

// ethernet decodes an Ethernet II or 802.3 frame header at off. link says it
// is the outermost Ethernet header, whose MACs and VLAN tags are recorded.
func (d *Decoder) ethernet(b []byte, off, end int, p *Packet, depth int, link bool) error {
	if len(b)-off < 14 {
		return d.fail(ReasonTruncated, LayerEthernet, off)
	}
	if link {
		copy(p.DstMAC[:], b[off:off+6])
		copy(p.SrcMAC[:], b[off+6:off+12])
	}
	et := be16(b[off+12:])
	if et < 0x0600 {
		if et > 1500 {
			return d.fail(ReasonUnknownEthertype, LayerEthernet, off+12)
		}
		return d.llc(b, off+14, end, p, depth, link)
	}
	return d.ethertype(b, off+14, end, et, p, depth, link)
}

// ethertype decodes what an ethertype says follows at off: VLAN tags, PBB,
// MPLS, PPPoE, IPv4 or IPv6.
func (d *Decoder) ethertype(b []byte, off, end int, et uint16, p *Packet, depth int, link bool) error {
	tags := 0
	for {
		switch et {
		case etIPv4:
			return d.ipv4(b, off, end, p, depth)
		case etIPv6:
			return d.ipv6(b, off, end, p, depth)
		case etVLAN, etQinQ, etQinQOld, etQinQOld2:
			if len(b)-off < 4 {
				return d.fail(ReasonTruncated, LayerVLAN, off)
			}
			if link {
				vid := be16(b[off:]) & 0x0fff
				switch tags {
				case 0:
					p.VLAN = vid
				case 1:
					p.InnerVLAN = vid
				}
			}
			tags++
			et = be16(b[off+2:])
			off += 4
		case etMPLS, etMPLSMcast:
			return d.mpls(b, off, end, p, depth)
		case etPPPoES:
			if len(b)-off < 8 {
				return d.fail(ReasonTruncated, LayerPPPoE, off)
			}
			if b[off] != 0x11 || b[off+1] != 0 {
				return d.fail(ReasonBadHeaderLength, LayerPPPoE, off)
			}
			return d.pppProto(b, off+8, end, be16(b[off+6:]), p, depth)
		case etVNTag:
			// Cisco VN-Tag: 4 bytes, then the next ethertype.
			if len(b)-off < 6 {
				return d.fail(ReasonTruncated, LayerVLAN, off)
			}
			et = be16(b[off+4:])
			off += 6
		case etFabricPath:
			// Cisco FabricPath: FTAG/TTL, then the classical frame.
			if len(b)-off < 16 {
				return d.fail(ReasonTruncated, LayerVLAN, off)
			}
			et = be16(b[off+14:])
			off += 16
			link = false
		case etCMD:
			// Cisco MetaData on Ethernet: version, length, option
			// type and SGT value, then the next ethertype.
			if len(b)-off < 8 {
				return d.fail(ReasonTruncated, LayerVLAN, off)
			}
			et = be16(b[off+6:])
			off += 8
		case etNSH:
			return d.nsh(b, off, end, p, depth, link)
		case etPBB:
			// 802.1ah I-TAG (4 bytes) then the customer's MACs and type.
			if len(b)-off < 18 {
				return d.fail(ReasonTruncated, LayerVLAN, off)
			}
			et = be16(b[off+16:])
			off += 18
			link = false
		default:
			if et < 0x0600 {
				if et > 1500 {
					return d.fail(ReasonUnknownEthertype, LayerEthernet, off-2)
				}
				// An 802.3 length after a tag, or SNAP inside SNAP: count
				// the nesting so crafted frames cannot recurse deeply.
				if depth >= d.maxDepth {
					return d.fail(ReasonTooDeep, LayerLLC, off)
				}
				return d.llc(b, off, end, p, depth+1, link)
			}
			if nonIPEthertype(et) {
				return ErrNonIP
			}
			return d.fail(ReasonUnknownEthertype, LayerEthernet, off-2)
		}
	}
}

// NSH next-protocol values (RFC 8300).
const (
	nshIPv4     = 1
	nshIPv6     = 2
	nshEthernet = 3
	nshNSH      = 4
	nshMPLS     = 5
)

// nsh decodes a Network Service Header (RFC 8300) at off: a base header
// whose length field counts the whole header in 4-byte words, a service
// path header and context headers, then the next protocol.
func (d *Decoder) nsh(b []byte, off, end int, p *Packet, depth int, link bool) error {
	if len(b)-off < 8 {
		return d.fail(ReasonTruncated, LayerNSH, off)
	}
	if b[off]>>6 != 0 {
		return d.fail(ReasonBadIPVersion, LayerNSH, off)
	}
	hl := int(b[off+1]&0x3f) * 4
	if hl < 8 {
		return d.fail(ReasonBadHeaderLength, LayerNSH, off)
	}
	if len(b)-off < hl {
		return d.fail(ReasonTruncated, LayerNSH, off)
	}
	if depth >= d.maxDepth {
		return d.fail(ReasonTooDeep, LayerNSH, off)
	}
	next := b[off+3]
	off += hl
	switch next {
	case nshIPv4:
		return d.ipv4(b, off, end, p, depth)
	case nshIPv6:
		return d.ipv6(b, off, end, p, depth)
	case nshEthernet:
		return d.ethernet(b, off, end, p, depth+1, false)
	case nshNSH:
		return d.nsh(b, off, end, p, depth+1, link)
	case nshMPLS:
		return d.mpls(b, off, end, p, depth)
	}
	return d.fail(ReasonUnknownEthertype, LayerNSH, off-hl+3)
}

// nonIPEthertype lists well-known ethertypes of valid frames that carry no
// IP; other unknown ethertypes are errors.
func nonIPEthertype(et uint16) bool {
	switch et {
	case etARP, 0x8035, // RARP
		0x88cc,         // LLDP
		etPPPoED,       // PPPoE discovery
		0x888e,         // EAPOL
		0x8809,         // slow protocols (LACP, marker, OAM)
		0x8137, 0x8138, // IPX
		0x809b, 0x80f3, // AppleTalk, AARP
		0x88e5,         // MACsec
		0x88f7,         // PTP
		0x8902,         // CFM / Y.1731
		0x9000,         // loopback (configuration test protocol)
		0x8899,         // Realtek
		0x88e1, 0x893a, // HomePlug, IEEE 1905
		0x0842,         // Wake-on-LAN
		0x8808,         // Ethernet flow control
		0x22f0, 0x22f3, // AVTP, TRILL
		0x88b5, 0x88b6, // local experimental
		0x88ba, 0x88b8, // IEC 61850
		0x6002, 0x6003, 0x6004, // DEC MOP, DECnet, LAT
		0x88a4, 0x8892, // EtherCAT, PROFINET
		0x8906, 0x8914, // FCoE, FIP
		0x88fb, 0x891d, // PRP, TTE
		0x8102,         // Wellfleet BOFL
		0x2000, 0xfefe, // CDP and OSI (IS-IS) on Cisco HDLC
		0x890d, // 802.11 TDLS
		0x892f: // HSR
		return true
	}
	return false
}

// llc decodes an IEEE 802.2 LLC header at off; only SNAP carries IP.
func (d *Decoder) llc(b []byte, off, end int, p *Packet, depth int, link bool) error {
	if len(b)-off < 3 {
		return d.fail(ReasonTruncated, LayerLLC, off)
	}
	if b[off] != 0xaa || b[off+1] != 0xaa || b[off+2] != 0x03 {
		return ErrNonIP // STP, NetBIOS, IPX, OSI, XID/TEST...
	}
	if len(b)-off < 8 {
		return d.fail(ReasonTruncated, LayerLLC, off)
	}
	pid := be16(b[off+6:])
	switch {
	case b[off+3] == 0 && b[off+4] == 0 && (b[off+5] == 0 || b[off+5] == 0xf8):
		return d.ethertype(b, off+8, end, pid, p, depth, link)
	case b[off+3] == 0x00 && b[off+4] == 0x80 && b[off+5] == 0xc2 && (pid == 0x0007 || pid == 0x0001):
		// RFC 2684 bridged Ethernet (without/with FCS): 2 pad bytes, then
		// the frame.
		if depth >= d.maxDepth {
			return d.fail(ReasonTooDeep, LayerLLC, off)
		}
		return d.ethernet(b, off+10, end, p, depth+1, link)
	}
	return ErrNonIP // CDP, VTP, other vendor SNAP protocols
}

// ppp decodes a PPP header at off: optional HDLC address and control bytes
// (ff 03), then a 1- or 2-byte protocol. hdlc also accepts Cisco HDLC
// framing (0f/8f 00 ethertype) as found on PPP_HDLC links.
func (d *Decoder) ppp(b []byte, off, end int, p *Packet, depth int, hdlc bool) error {
	if len(b)-off < 2 {
		return d.fail(ReasonTruncated, LayerPPP, off)
	}
	if hdlc && (b[off] == 0x0f || b[off] == 0x8f) && b[off+1] == 0 {
		if len(b)-off < 4 {
			return d.fail(ReasonTruncated, LayerPPP, off)
		}
		return d.ethertype(b, off+4, end, be16(b[off+2:]), p, depth, false)
	}
	if b[off] == 0xff && b[off+1] == 0x03 {
		off += 2
	}
	if len(b)-off < 1 {
		return d.fail(ReasonTruncated, LayerPPP, off)
	}
	proto := uint16(b[off])
	if proto&1 == 1 { // protocol field compressed to one byte
		return d.pppProto(b, off+1, end, proto, p, depth)
	}
	if len(b)-off < 2 {
		return d.fail(ReasonTruncated, LayerPPP, off)
	}
	return d.pppProto(b, off+2, end, be16(b[off:]), p, depth)
}

// pppProto dispatches on a PPP protocol number; everything but IP and MPLS
// (LCP, IPCP, CHAP, compressed data...) is a valid non-IP frame.
func (d *Decoder) pppProto(b []byte, off, end int, proto uint16, p *Packet, depth int) error {
	switch proto {
	case pppIPv4:
		return d.ipv4(b, off, end, p, depth)
	case pppIPv6:
		return d.ipv6(b, off, end, p, depth)
	case pppMPLS:
		return d.mpls(b, off, end, p, depth)
	}
	return ErrNonIP
}

// mpls skips a label stack and guesses its payload: IPv4 or IPv6 by the
// version nibble, otherwise a pseudowire Ethernet frame with or without
// the 0000 control word.
func (d *Decoder) mpls(b []byte, off, end int, p *Packet, depth int) error {
	for {
		if len(b)-off < 4 {
			return d.fail(ReasonTruncated, LayerMPLS, off)
		}
		bos := b[off+2]&1 == 1
		off += 4
		if bos {
			break
		}
	}
	if len(b)-off < 1 {
		return d.fail(ReasonTruncated, LayerMPLS, off)
	}
	switch b[off] >> 4 {
	case 4:
		return d.ipv4(b, off, end, p, depth)
	case 6:
		return d.ipv6(b, off, end, p, depth)
	}
	if depth >= d.maxDepth {
		return d.fail(ReasonTooDeep, LayerMPLS, off)
	}
	if b[off]>>4 == 0 && plausibleEthernet(b, off+4) {
		return d.ethernet(b, off+4, end, p, depth+1, false)
	}
	if plausibleEthernet(b, off) {
		return d.ethernet(b, off, end, p, depth+1, false)
	}
	return d.fail(ReasonUnknownEthertype, LayerMPLS, off)
}

// plausibleEthernet says an Ethernet header at off has an ethertype that a
// pseudowire commonly carries.
func plausibleEthernet(b []byte, off int) bool {
	if len(b)-off < 14 {
		return false
	}
	switch be16(b[off+12:]) {
	case etIPv4, etIPv6, etVLAN, etQinQ, etQinQOld, etMPLS, etMPLSMcast, etARP, etPPPoES, etPPPoED, 0x88cc:
		return true
	}
	return false
}

// nflog finds the packet in an NFLOG record: a 4-byte header, then TLVs
// (length and type in the capturing host's byte order, padded to 4 bytes)
// of which type 9 (NFULA_PAYLOAD) holds the IP packet.
func (d *Decoder) nflog(b []byte, end int, p *Packet) error {
	if len(b) < 4 {
		return d.fail(ReasonTruncated, LayerLink, 0)
	}
	off := 4
	for len(b)-off >= 4 {
		// Types are small: a zero first byte means big-endian.
		var l, typ int
		if b[off+2] == 0 {
			l, typ = int(be16(b[off:])), int(be16(b[off+2:]))
		} else {
			l, typ = int(b[off])|int(b[off+1])<<8, int(b[off+2])|int(b[off+3])<<8
		}
		if l < 4 {
			return d.fail(ReasonBadHeaderLength, LayerLink, off)
		}
		if typ == 9 {
			e := off + l
			if e > end {
				e = end
			}
			return d.ipAny(b, off+4, e, p, 0, LayerLink)
		}
		off += (l + 3) &^ 3
	}
	return ErrNonIP // no payload attribute (the rule logged metadata only)
}
