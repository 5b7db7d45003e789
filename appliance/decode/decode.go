package decode

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/flow"
)

// Packet is what Decode extracts from one frame. All fields describe the
// innermost IP header and its transport unless their comment says outermost.
type Packet struct {
	Src, Dst     netip.Addr // innermost IP header
	Sport, Dport uint16     // transport ports; ICMP/ICMPv6: Sport 0, Dport type<<8|code
	Proto        uint8      // innermost transport protocol
	IPVersion    uint8      // 4 or 6 (innermost)
	VLAN         uint16     // outermost 802.1Q/802.1ad VLAN id, 0 if none
	InnerVLAN    uint16     // second tag (QinQ), 0 if none
	// SrcMAC and DstMAC are the outermost Ethernet addresses, zero if the
	// link has none.
	SrcMAC, DstMAC [6]byte
	// OuterLen is the outermost IP datagram's length as carried on the link
	// (IPv4 total length, IPv6 40+payload length; when that field is 0, as
	// with TSO or jumbograms, the wire length minus the L2 offset).
	OuterLen int
	// InnerLen is the innermost IP datagram's total length.
	InnerLen int
	TCPFlags uint8
	TCPSeq   uint32
	// Payload is the transport payload as captured; it aliases the input.
	// For later fragments it is the fragment's data.
	Payload []byte
	// PayloadLen is the transport payload length according to the IP and
	// transport headers (>= len(Payload) when the frame was snapped).
	PayloadLen int
	// Tunnel is the kind of the outermost tunnel the innermost IP header
	// was carried in; TunnelSrc and TunnelDst are the outermost IP header's
	// addresses when tunnelled.
	Tunnel               flow.TunnelType
	TunnelSrc, TunnelDst netip.Addr
	// Fragment says the packet is an IP fragment (first or later) at some
	// level of encapsulation.
	Fragment bool
	// LaterFragment says it is a non-first fragment: its payload is the
	// middle of a datagram, not the start of a transport payload.
	LaterFragment bool
	// VPI and VCI come from a SunATM pseudo-header or from the capture
	// info; HasVC says they are set.
	VPI, VCI uint16
	HasVC    bool
}

// Reason says why a frame was not decoded, or notes an event on a frame
// that was.
type Reason uint8

// Reasons. ReasonNonIP (with ErrNonIP), ReasonFragmentWithoutFirst,
// ReasonBadTunnel and ReasonTunnelNonIP are counted on frames that are not
// errors for the meter; ReasonTooDeep is too once an IP header decoded; the
// others come with an *Error.
const (
	ReasonNone                 Reason = iota
	ReasonTruncated                   // a header is cut short by the capture length
	ReasonBadHeaderLength             // a header or length field is inconsistent
	ReasonUnknownEthertype            // unknown ethertype, address family or protocol id on the link
	ReasonUnsupportedLink             // link type this decoder does not handle
	ReasonBadIPVersion                // IP header whose version is not the expected one
	ReasonNonIP                       // valid frame that carries no IP (ARP, LLDP, STP, PPP control...)
	ReasonFragmentWithoutFirst        // later fragment whose first fragment was not seen: ports 0
	ReasonBadTunnel                   // tunnel whose header or inner packet is malformed or truncated: outer flow returned
	ReasonTunnelNonIP                 // tunnel carrying no IP (or an unsupported payload): outer flow returned
	ReasonTooDeep                     // nesting deeper than Config.MaxDepth: deepest decoded flow returned (an error below the first IP header)
	NumReasons
)

var reasonNames = [NumReasons]string{
	"none", "truncated", "bad-header-length", "unknown-ethertype", "unsupported-link",
	"bad-ip-version", "non-ip", "fragment-without-first", "bad-tunnel", "tunnel-non-ip", "too-deep",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "reason-" + strconv.Itoa(int(r))
}

// Layer names the header being decoded when an error happened.
type Layer uint8

// Layers.
const (
	LayerLink Layer = iota
	LayerEthernet
	LayerLLC
	LayerVLAN
	LayerMPLS
	LayerPPPoE
	LayerPPP
	LayerSLL
	LayerNull
	LayerATM
	LayerIPv4
	LayerIPv6
	LayerIPv6Ext
	LayerTCP
	LayerUDP
	LayerICMP
	LayerSCTP
	LayerTransport
	LayerNSH
	numLayers
)

var layerNames = [numLayers]string{
	"link", "ethernet", "llc", "vlan", "mpls", "pppoe", "ppp", "linux-sll", "null/loop", "sunatm",
	"ipv4", "ipv6", "ipv6 extension header", "tcp", "udp", "icmp", "sctp", "transport", "nsh",
}

func (l Layer) String() string {
	if l < numLayers {
		return layerNames[l]
	}
	return "layer-" + strconv.Itoa(int(l))
}

// Error describes a frame Decode rejected. The value returned by Decode
// belongs to the Decoder and is valid until its next call to Decode.
type Error struct {
	Reason Reason
	Layer  Layer
	Offset int // byte offset of the offending header in the frame
	Link   drivers.LinkType
}

func (e *Error) Error() string {
	return "decode " + e.Layer.String() + " at offset " + strconv.Itoa(e.Offset) +
		" (link type " + strconv.Itoa(int(e.Link)) + "): " + e.Reason.String()
}

// ErrNonIP is returned for valid frames that carry no IP packet (ARP, LLDP,
// STP, PPP control protocols...). It is not an error for the meter.
var ErrNonIP = errors.New("decode: non-ip frame")

// Config tunes a Decoder. The zero value (or a nil *Config) means defaults.
type Config struct {
	// VXLANPorts are the UDP ports decoded as VXLAN (the destination port,
	// or the source port when the destination names no tunnel); nil means
	// 4789 and 8472. At most 4 are used.
	VXLANPorts []uint16
	// TeredoPort (default 3544) and GTPUPort (default 2152) are matched
	// against either UDP port.
	TeredoPort uint16
	GTPUPort   uint16
	// GenevePort is the UDP port decoded as Geneve; default 6081.
	GenevePort uint16
	// GPEPort is the UDP port decoded as VXLAN-GPE; default 4790.
	GPEPort uint16
	// FragmentTable is the number of first-fragment entries kept (rounded
	// up to a power of two, at least 4); default 1024.
	FragmentTable int
	// FragmentTimeout is how long, in capture time, a first fragment's
	// ports are kept for its later fragments; default 30s.
	FragmentTimeout time.Duration
	// MaxDepth bounds tunnel nesting; default 8.
	MaxDepth int
	// NoDecap turns tunnel decapsulation off: tunnelled packets are keyed
	// on their outermost IP header, as softflowd does.
	NoDecap bool
}

// Counters are a Decoder's cumulative counts.
type Counters struct {
	// Packets is the number of frames decoded to an IP packet (nil error).
	Packets uint64
	// NonIP is the number of valid non-IP frames (ErrNonIP).
	NonIP uint64
	// Errors is the number of frames rejected with an *Error.
	Errors uint64
	// Reasons counts by Reason, both errors and events on decoded packets.
	Reasons [NumReasons]uint64
}

// Decoder decodes frames. Create one per worker goroutine with New.
type Decoder struct {
	vxlan    [4]uint16
	nvxlan   int
	teredo   uint16
	gtpu     uint16
	geneve   uint16
	gpe      uint16
	maxDepth int
	noDecap  bool

	link drivers.LinkType
	wire int // wire length of the current frame
	capl int // captured length of the current frame
	ts   int64
	err  Error

	frags fragTable

	// Counters: plain fields, written only by the decoding goroutine (an
	// atomic add per packet cost about 3% of the probe's time).
	packets, nonIP, errs uint64
	reasons              [NumReasons]uint64
}

// New returns a Decoder; cfg nil means defaults.
func New(cfg *Config) *Decoder {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	d := &Decoder{teredo: 3544, gtpu: 2152, geneve: 6081, gpe: 4790, maxDepth: 8, noDecap: c.NoDecap}
	if c.VXLANPorts == nil {
		d.vxlan[0], d.vxlan[1], d.nvxlan = 4789, 8472, 2
	} else {
		d.nvxlan = copy(d.vxlan[:], c.VXLANPorts)
	}
	if c.TeredoPort != 0 {
		d.teredo = c.TeredoPort
	}
	if c.GTPUPort != 0 {
		d.gtpu = c.GTPUPort
	}
	if c.GenevePort != 0 {
		d.geneve = c.GenevePort
	}
	if c.GPEPort != 0 {
		d.gpe = c.GPEPort
	}
	if c.MaxDepth > 0 {
		d.maxDepth = c.MaxDepth
	}
	size := c.FragmentTable
	if size <= 0 {
		size = 1024
	}
	timeout := c.FragmentTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d.frags.init(size, int64(timeout))
	return d
}

// Counters returns a snapshot of the counts. Like Decode, it must be
// called from the goroutine that decodes (or once that has stopped); a
// pipeline publishes the snapshot to other goroutines itself, every few
// thousand packets.
func (d *Decoder) Counters() Counters {
	return Counters{Packets: d.packets, NonIP: d.nonIP, Errors: d.errs, Reasons: d.reasons}
}

// Decode decodes one frame into p, which it overwrites. It returns nil for
// an IP packet, ErrNonIP for a valid frame without IP, or a *Error (owned by
// d, valid until the next call) naming the reason, layer and offset.
func (d *Decoder) Decode(data []byte, ci drivers.CaptureInfo, p *Packet) error {
	return d.DecodeInfo(data, &ci, p)
}

// DecodeInfo is Decode taking the capture information by pointer, which
// a packet loop that fills it in place (pcapfile.Reader.NextInto) uses to
// avoid copying it on every packet.
func (d *Decoder) DecodeInfo(data []byte, ci *drivers.CaptureInfo, p *Packet) error {
	*p = Packet{}
	if ci.HasVC {
		p.VPI, p.VCI, p.HasVC = ci.VPI, ci.VCI, true
	}
	d.link = ci.LinkType
	d.ts = ci.Timestamp
	d.wire = ci.Length
	d.capl = len(data)
	if d.wire < len(data) {
		d.wire = len(data)
	}
	err := d.decodeLink(data, p)
	switch {
	case err == nil:
		d.packets++
	case err == ErrNonIP:
		d.nonIP++
		d.reasons[ReasonNonIP]++
	default:
		d.errs++
		d.reasons[d.err.Reason]++
	}
	return err
}

// fail records an error in the Decoder's error value and returns it. A
// header found beyond the captured bytes (the lengths before it put it
// there) is reported as truncated, whatever else is wrong with it: the
// capture cut it.
func (d *Decoder) fail(r Reason, l Layer, off int) error {
	if off > d.capl {
		r = ReasonTruncated
	}
	d.err = Error{Reason: r, Layer: l, Offset: off, Link: d.link}
	return &d.err
}

// note counts an event on a packet that still decodes.
func (d *Decoder) note(r Reason) {
	d.reasons[r]++
}

func be16(b []byte) uint16 { _ = b[1]; return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
