package synth

import (
	"encoding/binary"
	"net/netip"

	"github.com/mira-project/mira/flow"
)

// Packet kinds of a planned packet.
const (
	kindTCP uint8 = iota
	kindUDP
	kindFrag // an IPv4 fragment of a UDP datagram
	kindICMP
)

// TCP flags.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
)

const (
	ethHdr      = 14
	vlanHdr     = 4
	ipv4Hdr     = 20
	ipv6Hdr     = 40
	tcpHdr      = 20
	synOptions  = 8 // MSS, NOP, NOP, SACK permitted
	udpHdr      = 8
	icmpHdr     = 8
	greHdr      = 4
	vxlanHdr    = 8
	vxlanPort   = 4789
	linkMTU     = 1500
	minFrameLen = 60
)

// pkt is one planned packet of a session; the bytes are built only when it
// is written.
type pkt struct {
	t     int64 // capture time, ns since the Unix epoch
	off   int32 // offset in the message (TCP, fragment: of the UDP datagram); ICMP: echo sequence
	n     int32 // payload bytes (fragment: bytes of the datagram)
	seq   uint32
	ack   uint32
	msg   int32 // index in session.msgs, -1 for none
	dir   uint8 // 0 client to server, 1 server to client
	kind  uint8
	flags uint8 // TCP flags; for fragments 1 means more fragments follow
}

// payloadLen is the transport payload length of packet p of session s:
// for IPv4 fragments the fragment's data, less the UDP header in the
// first.
func payloadLen(s *session, p *pkt) int {
	switch p.kind {
	case kindUDP, kindICMP:
		return s.msgs[p.msg].size
	case kindFrag:
		if p.off == 0 {
			return int(p.n) - udpHdr
		}
	}
	return int(p.n)
}

// builder assembles frames into a reused buffer.
type builder struct {
	buf   []byte
	dgram []byte // scratch for fragmented UDP datagrams
}

func newBuilder() *builder {
	return &builder{buf: make([]byte, 0, 16384), dgram: make([]byte, 0, 65536)}
}

// frame builds the packet p of session s and returns the frame, its IP
// octets as carried on the link (outermost IP header's total length) and
// its innermost IP datagram's length.
func (b *builder) frame(s *session, p *pkt) ([]byte, int, int) {
	d := p.dir
	src, dst := s.addr[d], s.addr[1-d]
	v6 := s.v6

	// Transport header and payload length.
	var l4hdr, payload int
	switch p.kind {
	case kindTCP:
		l4hdr = tcpHdr
		if p.flags&flagSYN != 0 {
			l4hdr += synOptions
		}
		payload = int(p.n)
	case kindUDP:
		l4hdr = udpHdr
		payload = s.msgs[p.msg].size
	case kindFrag:
		payload = int(p.n)
	case kindICMP:
		l4hdr = icmpHdr
		payload = s.msgs[p.msg].size
	}
	ipHdr := ipv4Hdr
	if v6 {
		ipHdr = ipv6Hdr
	}
	innerLen := ipHdr + l4hdr + payload

	// Outer layers.
	outerLen := innerLen
	var tunHdr int
	switch s.tunnel {
	case flow.TunnelIPIP, flow.Tunnel6in4:
		outerLen = ipv4Hdr + innerLen
	case flow.TunnelGRE:
		tunHdr = greHdr
		outerLen = ipv4Hdr + greHdr + innerLen
	case flow.TunnelVXLAN:
		tunHdr = udpHdr + vxlanHdr + ethHdr
		outerLen = ipv4Hdr + tunHdr + innerLen
	}
	l2 := ethHdr
	if s.vlan != 0 {
		l2 += vlanHdr
	}
	total := l2 + outerLen
	flen := total
	if flen < minFrameLen {
		flen = minFrameLen
	}
	buf := b.buf[:flen]
	clear(buf[total:])

	// Ethernet.
	copy(buf[0:6], s.mac[1-d][:])
	copy(buf[6:12], s.mac[d][:])
	o := 12
	if s.vlan != 0 {
		be16(buf[o:], 0x8100)
		be16(buf[o+2:], s.vlan&0x0fff)
		o += 4
	}
	innerType := uint16(0x0800)
	if v6 {
		innerType = 0x86dd
	}
	if s.tunnel != flow.TunnelNone {
		be16(buf[o:], 0x0800)
	} else {
		be16(buf[o:], innerType)
	}
	o += 2

	id := s.nextID(d, p)
	if s.tunnel != flow.TunnelNone {
		var proto uint8
		switch s.tunnel {
		case flow.TunnelIPIP:
			proto = 4
		case flow.Tunnel6in4:
			proto = 41
		case flow.TunnelGRE:
			proto = 47
		case flow.TunnelVXLAN:
			proto = 17
		}
		putIPv4(buf[o:], outerLen, s.outerID[d], 0x4000, s.ttl[d], proto, s.outer[d], s.outer[1-d])
		s.outerID[d]++
		o += ipv4Hdr
		switch s.tunnel {
		case flow.TunnelGRE:
			be16(buf[o:], 0)
			be16(buf[o+2:], innerType)
		case flow.TunnelVXLAN:
			be16(buf[o:], s.vxPort)
			be16(buf[o+2:], vxlanPort)
			be16(buf[o+4:], uint16(tunHdr+innerLen))
			be16(buf[o+6:], 0) // RFC 7348: zero UDP checksum
			buf[o+8] = 0x08
			buf[o+9], buf[o+10], buf[o+11] = 0, 0, 0
			be32(buf[o+12:], s.vni<<8)
			e := buf[o+16:]
			copy(e[0:6], s.innerMAC[1-d][:])
			copy(e[6:12], s.innerMAC[d][:])
			be16(e[12:], innerType)
		}
		o += tunHdr
	}

	// Inner IP header.
	proto := s.proto
	if p.kind == kindICMP && v6 {
		proto = 58
	}
	if v6 {
		be32(buf[o:], 6<<28|s.flowLabel[d])
		be16(buf[o+4:], uint16(l4hdr+payload))
		buf[o+6] = proto
		buf[o+7] = s.ttl[d]
		a, c := src.As16(), dst.As16()
		copy(buf[o+8:], a[:])
		copy(buf[o+24:], c[:])
	} else {
		frag := uint16(0x4000) // DF
		if p.kind == kindFrag {
			frag = uint16(p.off / 8)
			if p.flags != 0 {
				frag |= 0x2000
			}
		} else if s.proto != 6 {
			frag = 0
		}
		putIPv4(buf[o:], innerLen, id, frag, s.ttl[d], proto, src, dst)
	}
	o += ipHdr
	l4 := o

	switch p.kind {
	case kindTCP:
		be16(buf[o:], s.port[d])
		be16(buf[o+2:], s.port[1-d])
		be32(buf[o+4:], s.isn[d]+p.seq)
		ack := uint32(0)
		if p.flags&flagACK != 0 {
			ack = s.isn[1-d] + p.ack
		}
		be32(buf[o+8:], ack)
		buf[o+12] = byte(l4hdr/4) << 4
		buf[o+13] = p.flags
		win := s.win[d]
		if p.flags&flagRST != 0 {
			win = 0
		}
		be16(buf[o+14:], win)
		be16(buf[o+16:], 0)
		be16(buf[o+18:], 0)
		if p.flags&flagSYN != 0 {
			buf[o+20], buf[o+21] = 2, 4
			be16(buf[o+22:], uint16(s.mss))
			buf[o+24], buf[o+25], buf[o+26], buf[o+27] = 1, 1, 4, 2
		}
		if payload > 0 {
			s.msgs[p.msg].read(buf[o+l4hdr:o+l4hdr+payload], int(p.off))
		}
		c := checksum(pseudo(src, dst, 6, l4hdr+payload), buf[l4:l4+l4hdr+payload])
		be16(buf[l4+16:], c)
	case kindUDP:
		b.udp(buf[o:o+l4hdr+payload], s, p.msg, d, src, dst)
	case kindFrag:
		dg := b.dgram[:udpHdr+s.msgs[p.msg].size]
		b.udp(dg, s, p.msg, d, src, dst)
		copy(buf[o:o+payload], dg[p.off:int(p.off)+payload])
	case kindICMP:
		typ := byte(8)
		pr := uint8(1)
		if v6 {
			typ, pr = 128, 58
		}
		if d == 1 {
			typ++
			if !v6 {
				typ = 0
			}
		}
		buf[o] = typ
		buf[o+1] = 0
		be16(buf[o+2:], 0)
		be16(buf[o+4:], s.port[0])
		be16(buf[o+6:], uint16(p.off))
		s.msgs[p.msg].read(buf[o+icmpHdr:o+icmpHdr+payload], 0)
		var sum uint64
		if v6 {
			sum = pseudo(src, dst, pr, icmpHdr+payload)
		}
		be16(buf[o+2:], checksum(sum, buf[o:o+icmpHdr+payload]))
	}
	return buf, outerLen, innerLen
}

// udp writes the UDP header, payload and checksum of the session's datagram
// p.msg into dg, which is exactly its length.
func (b *builder) udp(dg []byte, s *session, msg int32, d uint8, src, dst netip.Addr) {
	be16(dg[0:], s.port[d])
	be16(dg[2:], s.port[1-d])
	be16(dg[4:], uint16(len(dg)))
	be16(dg[6:], 0)
	s.msgs[msg].read(dg[udpHdr:], 0)
	c := checksum(pseudo(src, dst, 17, len(dg)), dg)
	if c == 0 {
		c = 0xffff
	}
	be16(dg[6:], c)
}

func putIPv4(b []byte, total int, id, frag uint16, ttl, proto uint8, src, dst netip.Addr) {
	b[0] = 0x45
	b[1] = 0
	be16(b[2:], uint16(total))
	be16(b[4:], id)
	be16(b[6:], frag)
	b[8] = ttl
	b[9] = proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	be16(b[10:], checksum(0, b[:ipv4Hdr]))
}

// pseudo returns the unfolded sum of the transport pseudo-header.
func pseudo(src, dst netip.Addr, proto uint8, length int) uint64 {
	var sum uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:]))
	} else {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 4 {
			sum += uint64(binary.BigEndian.Uint32(s[i:])) + uint64(binary.BigEndian.Uint32(d[i:]))
		}
	}
	return sum + uint64(proto) + uint64(length)
}

// checksum adds b to the unfolded sum and returns the Internet checksum
// (RFC 1071) of the whole.
func checksum(sum uint64, b []byte) uint16 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>32 + v&0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func be16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func be32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
