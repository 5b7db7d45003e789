package atm

import (
	"encoding/binary"
	"fmt"

	"github.com/mira-project/mira/drivers"
)

// Encap is a VC's RFC 2684 encapsulation. LLC VCs say what they carry in
// an LLC/SNAP (or NLPID) header; VC-multiplexed VCs carry one protocol,
// known only from configuration.
type Encap uint8

// Encapsulations.
const (
	EncapLLC              Encap = iota // LLC/SNAP or LLC/NLPID header (RFC 2684 §5)
	EncapVCMuxIP                       // VC-mux routed IP; IPv4 or IPv6 by version nibble
	EncapVCMuxIPv4                     // VC-mux routed IPv4
	EncapVCMuxIPv6                     // VC-mux routed IPv6
	EncapVCMuxEthernet                 // VC-mux bridged Ethernet without FCS (2-byte pad)
	EncapVCMuxEthernetFCS              // VC-mux bridged Ethernet with FCS
)

var encapNames = [...]string{"llc", "vcmux-ip", "vcmux-ipv4", "vcmux-ipv6", "vcmux-ethernet", "vcmux-ethernet-fcs"}

func (e Encap) String() string {
	if int(e) < len(encapNames) {
		return encapNames[e]
	}
	return "unknown"
}

// ParseEncap parses an encapsulation name as String prints it.
func ParseEncap(s string) (Encap, error) {
	for i, n := range encapNames {
		if n == s {
			return Encap(i), nil
		}
	}
	return 0, fmt.Errorf("atm: unknown encapsulation %q (want one of %v)", s, encapNames)
}

// LLC headers (RFC 2684 §5.1 routed, §5.2 bridged).
var (
	llcSNAP = [6]byte{0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00} // then EtherType
	llcBrg  = [6]byte{0xaa, 0xaa, 0x03, 0x00, 0x80, 0xc2} // then PID, 2-byte pad
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	pidEthFCS = 0x0001
	pidEth    = 0x0007
	nlpidIPv4 = 0xcc
	nlpidIPv6 = 0x8e
)

// Decap strips the RFC 2684 encapsulation from an AAL5 SDU. It returns
// the IP packet (link LinkRaw) or Ethernet frame (LinkEthernet), aliasing
// sdu, or the reason it cannot. A bridged frame's FCS, when the
// encapsulation says it is present, is removed.
func Decap(sdu []byte, e Encap) (data []byte, link drivers.LinkType, reason Reason) {
	switch e {
	case EncapLLC:
		return decapLLC(sdu)
	case EncapVCMuxIP:
		if len(sdu) == 0 {
			return nil, 0, ReasonShortPDU
		}
		if v := sdu[0] >> 4; v != 4 && v != 6 {
			return nil, 0, ReasonNonIP
		}
		return sdu, drivers.LinkRaw, ReasonNone
	case EncapVCMuxIPv4, EncapVCMuxIPv6:
		if len(sdu) == 0 {
			return nil, 0, ReasonShortPDU
		}
		return sdu, drivers.LinkRaw, ReasonNone
	case EncapVCMuxEthernet:
		if len(sdu) < 2+14 {
			return nil, 0, ReasonShortPDU
		}
		return sdu[2:], drivers.LinkEthernet, ReasonNone
	case EncapVCMuxEthernetFCS:
		if len(sdu) < 2+14+4 {
			return nil, 0, ReasonShortPDU
		}
		return sdu[2 : len(sdu)-4], drivers.LinkEthernet, ReasonNone
	}
	return nil, 0, ReasonNoLLC
}

func decapLLC(p []byte) ([]byte, drivers.LinkType, Reason) {
	if len(p) < 4 {
		return nil, 0, ReasonShortPDU
	}
	if p[0] == 0xfe && p[1] == 0xfe && p[2] == 0x03 {
		// LLC/NLPID: routed ISO-framed IP (RFC 2684 §5.1).
		switch p[3] {
		case nlpidIPv4, nlpidIPv6:
			return p[4:], drivers.LinkRaw, ReasonNone
		}
		return nil, 0, ReasonNonIP
	}
	if len(p) < 8 {
		return nil, 0, ReasonShortPDU
	}
	if [6]byte(p[:6]) == llcSNAP {
		switch binary.BigEndian.Uint16(p[6:]) {
		case etherIPv4, etherIPv6:
			return p[8:], drivers.LinkRaw, ReasonNone
		}
		return nil, 0, ReasonNonIP
	}
	if [6]byte(p[:6]) == llcBrg {
		switch binary.BigEndian.Uint16(p[6:]) {
		case pidEth:
			if len(p) < 10+14 {
				return nil, 0, ReasonShortPDU
			}
			return p[10:], drivers.LinkEthernet, ReasonNone
		case pidEthFCS:
			if len(p) < 10+14+4 {
				return nil, 0, ReasonShortPDU
			}
			return p[10 : len(p)-4], drivers.LinkEthernet, ReasonNone
		}
		return nil, 0, ReasonNonIP
	}
	return nil, 0, ReasonNoLLC
}

// AppendEncap appends the RFC 2684 header for a packet of the given link
// type (LinkRaw IPv4/IPv6 by version nibble, or LinkEthernet) and the
// packet itself to dst. It is the inverse of Decap, used by generators.
func AppendEncap(dst []byte, e Encap, link drivers.LinkType, pkt []byte) []byte {
	switch e {
	case EncapLLC:
		if link == drivers.LinkEthernet {
			dst = append(dst, llcBrg[:]...)
			dst = append(dst, 0, pidEth, 0, 0)
			return append(dst, pkt...)
		}
		et := uint16(etherIPv4)
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			et = etherIPv6
		}
		dst = append(dst, llcSNAP[:]...)
		dst = binary.BigEndian.AppendUint16(dst, et)
	case EncapVCMuxEthernet:
		dst = append(dst, 0, 0)
	case EncapVCMuxEthernetFCS:
		dst = append(dst, 0, 0)
		dst = append(dst, pkt...)
		return binary.LittleEndian.AppendUint32(dst, 0) // FCS not checked by Decap
	}
	return append(dst, pkt...)
}

// WireLength returns the full length of the packet that data begins,
// read from its IPv4 total length or IPv6 payload length (behind an
// Ethernet header for LinkEthernet), or len(data) when it cannot tell.
// First-cell captures use it to account for the part they do not hold.
func WireLength(data []byte, link drivers.LinkType) int {
	off := 0
	if link == drivers.LinkEthernet {
		if len(data) < 14 {
			return len(data)
		}
		switch binary.BigEndian.Uint16(data[12:]) {
		case etherIPv4, etherIPv6:
			off = 14
		default:
			return len(data)
		}
	}
	ip := data[off:]
	if len(ip) < 1 {
		return len(data)
	}
	switch ip[0] >> 4 {
	case 4:
		if len(ip) >= 4 {
			if n := int(binary.BigEndian.Uint16(ip[2:])); n >= 20 {
				return off + n
			}
		}
	case 6:
		if len(ip) >= 6 {
			return off + 40 + int(binary.BigEndian.Uint16(ip[4:]))
		}
	}
	return len(data)
}
