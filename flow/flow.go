// Package flow defines the flow record that the probe's meter produces, the
// exporter encodes into IPFIX, and the collector decodes and stores.
package flow

import (
	"net/netip"
	"strings"
)

// Key identifies a unidirectional flow: the innermost IP addresses and
// transport ports, the protocol and the VLAN. For ICMP and ICMPv6 Dport
// holds type<<8|code, as NetFlow/nfdump do, and Sport is 0.
// Key is comparable and works as a map key.
// In JSON (the synthesiser's ground truth) its fields are src, dst,
// sport, dport, proto and vlan.
type Key struct {
	Src   netip.Addr `json:"src"`
	Dst   netip.Addr `json:"dst"`
	Sport uint16     `json:"sport"`
	Dport uint16     `json:"dport"`
	Proto uint8      `json:"proto"`
	VLAN  uint16     `json:"vlan,omitempty"`
}

// EndReason is why a flow record was exported; values are IPFIX
// flowEndReason (IE 136) codes.
type EndReason uint8

// End reasons (RFC 5102 flowEndReason).
const (
	EndIdle     EndReason = 1 // idle timeout
	EndActive   EndReason = 2 // active timeout
	EndDetected EndReason = 3 // end of flow detected (TCP FIN or RST)
	EndForced   EndReason = 4 // forced end (shutdown, end of capture)
	EndResource EndReason = 5 // lack of resources (table full: evicted early)
)

func (r EndReason) String() string {
	switch r {
	case EndIdle:
		return "idle"
	case EndActive:
		return "active"
	case EndDetected:
		return "end"
	case EndForced:
		return "forced"
	case EndResource:
		return "resource"
	}
	return "unknown"
}

// TunnelType says how the flow's innermost IP header was carried.
type TunnelType uint8

// Tunnel types.
const (
	TunnelNone TunnelType = iota
	TunnelIPIP            // IPv4-in-IPv4 or IPv4-in-IPv6 (protocol 4)
	Tunnel6in4            // IPv6-in-IPv4 or IPv6-in-IPv6 (protocol 41)
	TunnelGRE
	TunnelTeredo
	TunnelVXLAN
	TunnelGTPU
	TunnelGeneve
)

var tunnelNames = [...]string{"none", "ipip", "6in4", "gre", "teredo", "vxlan", "gtpu", "geneve"}

func (t TunnelType) String() string {
	if int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return "unknown"
}

// SymptomCount is the number of occurrences of one symptom in a flow.
type SymptomCount struct {
	ID    uint16
	Count uint32
}

// Record is one exported unidirectional flow.
type Record struct {
	Key
	// Packets and Octets count the flow's packets and their IP octets as
	// carried on the link: from the outermost IP header to the end of the
	// packet, so per-link totals add up whatever the tunnelling.
	Packets uint64
	Octets  uint64
	// InnerOctets counts octets from the innermost IP header on.
	InnerOctets uint64
	// First and Last are capture timestamps, ns since the Unix epoch.
	First, Last int64
	TCPFlags    uint8
	EndReason   EndReason
	// IPVersion is 4 or 6 (of the innermost header).
	IPVersion uint8
	// Tunnel and its outer endpoints (outermost IP header) when tunnelled.
	Tunnel               TunnelType
	TunnelSrc, TunnelDst netip.Addr
	Ingress              uint32 // capture interface (ingressInterface)
	Direction            uint8  // flowDirection where known: 0 ingress, 1 egress, 255 unknown
	VPI, VCI             uint16
	SrcMAC, DstMAC       [6]byte
	Aggregate            uint32 // aggregate id (0 = none)
	Category             uint16 // fast-classification category id (0 = none)
	Symptoms             []SymptomCount
	// ScannedOctets is how many payload octets of this direction the
	// symptom matcher was given (0: not scanned). Fewer than the payload
	// when scanning stopped early (scan limit, encrypted bypass,
	// shedding, a gap), so Symptoms count occurrences in these octets.
	ScannedOctets          uint64
	ObservationDomain      uint32
	SamplingPacketInterval uint32 // 1-in-N when packet-sampled (0 or 1: unsampled)
	// SamplingFlowInterval is N when the flow was kept by hash-based flow
	// selection of 1 in N connections (RFC 5475); 0 or 1: unsampled.
	SamplingFlowInterval uint32
	// App is what the flow's first payload bytes said it is about
	// (appliance/appmeta); zero when nothing was found.
	App App
}

// App is application metadata of one flow direction. Names are hostnames
// (letters, digits, '-', '_', '.'; an HTTP Host may end in :port) or
// empty.
type App struct {
	HTTPHost   string // HTTP/1.x request Host header
	ServerName string // TLS or QUIC ClientHello server_name
	ALPN       string // ClientHello ALPN protocols offered, comma-joined
	DNSName    string // DNS question name
	// DNSRcode is a DNS response's code, when DNSResponse is set.
	DNSRcode    uint8
	DNSResponse bool
	// FTPData lists the data ports an FTP control direction announced
	// (the client's PORT and EPRT, the server's 227 and 229 replies):
	// decimal, comma-joined, in order, without repeats, at most
	// MaxFTPData bytes (later ports are left out).
	FTPData string
}

// MaxFTPData bounds App.FTPData (the IPFIX and store encodings of a name).
const MaxFTPData = 254

// FTPDataPorts calls fn with each port of a's FTPData list.
func (a *App) FTPDataPorts(fn func(port uint16)) {
	s := a.FTPData
	for s != "" {
		i := strings.IndexByte(s, ',')
		f := s
		if i >= 0 {
			f, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		n := 0
		for j := 0; j < len(f) && n <= 0xffff; j++ {
			if f[j] < '0' || f[j] > '9' {
				n = -1
				break
			}
			n = n*10 + int(f[j]-'0')
		}
		if n > 0 && n <= 0xffff {
			fn(uint16(n))
		}
	}
}

// AddFTPData adds port to a list in App.FTPData's form unless it is
// there already or the list would grow past MaxFTPData.
func AddFTPData(list string, port uint16) string {
	var buf [5]byte
	i := len(buf)
	for n := port; ; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
		if n < 10 {
			break
		}
	}
	p := string(buf[i:])
	for s := list; s != ""; {
		f := s
		if j := strings.IndexByte(s, ','); j >= 0 {
			f, s = s[:j], s[j+1:]
		} else {
			s = ""
		}
		if f == p {
			return list
		}
	}
	if list == "" {
		return p
	}
	if len(list)+1+len(p) > MaxFTPData {
		return list
	}
	return list + "," + p
}

// IsZero reports whether nothing was found.
func (a *App) IsZero() bool { return *a == App{} }

// Host is the name the flow is about: the server name, else the HTTP
// host without its port, else the DNS question name.
func (a *App) Host() string {
	switch {
	case a.ServerName != "":
		return a.ServerName
	case a.HTTPHost != "":
		h := a.HTTPHost
		if strings.HasPrefix(h, "[") {
			if i := strings.IndexByte(h, ']'); i > 0 {
				return h[1:i]
			}
			return h
		}
		if i := strings.LastIndexByte(h, ':'); i > 0 {
			return h[:i]
		}
		return h
	}
	return a.DNSName
}
