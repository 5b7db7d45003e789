// Package drivers defines the capture-source interface that every MIRA
// capture driver (pcapfile, afpacket, fore) implements, and the types that
// describe a captured packet.
//
// Hazard: the byte slice returned by Source.Next aliases driver memory (a
// file buffer or a kernel ring) and is valid only until the next call to
// Next or Close. Callers that keep bytes must copy them.
package drivers

import "errors"

// LinkType is a pcap LINKTYPE_ value (https://www.tcpdump.org/linktypes.html).
type LinkType uint16

// Link types MIRA decodes.
const (
	LinkNull       LinkType = 0   // BSD loopback, host-order AF_ word
	LinkEthernet   LinkType = 1   // Ethernet II / 802.3
	LinkPPP        LinkType = 9   // PPP, RFC 1661 (protocol field, optional HDLC framing)
	LinkATMRFC1483 LinkType = 11  // RFC 1483/2684 LLC/SNAP encapsulated frames
	LinkRaw        LinkType = 101 // raw IPv4 or IPv6 (version nibble)
	LinkPPPHDLC    LinkType = 50  // PPP in HDLC-like framing
	LinkLoop       LinkType = 108 // OpenBSD loopback, network-order AF_ word
	LinkLinuxSLL   LinkType = 113 // Linux cooked capture v1
	LinkSunATM     LinkType = 123 // SunATM pseudo-header + AAL5 frame
	LinkIPv4       LinkType = 228 // raw IPv4
	LinkIPv6       LinkType = 229 // raw IPv6
	LinkLinuxSLL2  LinkType = 276 // Linux cooked capture v2
	LinkCHDLC      LinkType = 104 // Cisco HDLC (address, control, ethertype)
	LinkNFLOG      LinkType = 239 // Linux netfilter log (header and TLVs)
)

// Direction is the packet's direction relative to the capture point, where
// the source knows it.
type Direction uint8

// Directions.
const (
	DirUnknown Direction = iota
	DirIn
	DirOut
)

// CaptureInfo describes one captured packet.
type CaptureInfo struct {
	// Timestamp is the capture time in nanoseconds since the Unix epoch.
	Timestamp int64
	// CaptureLength is the number of bytes returned; Length is the
	// packet's length on the wire (they differ when a snaplen cut it).
	CaptureLength int
	Length        int
	LinkType      LinkType
	// Interface indexes Source.Interfaces().
	Interface int
	Direction Direction
	// VPI and VCI identify the ATM virtual circuit; HasVC says whether
	// they are set (ATM sources only).
	VPI   uint16
	VCI   uint16
	HasVC bool
}

// Interface describes one capture interface of a source.
type Interface struct {
	Name     string
	LinkType LinkType
	Snaplen  int
	// Index is the kernel interface index for live sources, 0 otherwise.
	Index int
}

// Stats are a source's counters. Drops are packets the capture mechanism
// (kernel ring, NIC) lost before MIRA saw them.
type Stats struct {
	Packets uint64
	Octets  uint64
	Drops   uint64
	// Errors counts records the source could not read (corrupt file
	// records, bad ring descriptors).
	Errors uint64
}

// Source is a capture source. Next returns the next packet; the data
// aliases driver memory until the next call. At the end of a finite source
// Next returns io.EOF. Sources are not safe for concurrent use.
type Source interface {
	Next() ([]byte, CaptureInfo, error)
	Interfaces() []Interface
	Stats() Stats
	Close() error
}

// IntoSource is implemented by sources that can also fill a caller's
// CaptureInfo in place: NextInto(ci) is Next with the information stored
// in *ci. Packet loops prefer it: a struct returned by value is copied
// right after its fields were stored, and on every packet the copy's wide
// loads wait for the narrow stores to complete.
type IntoSource interface {
	NextInto(ci *CaptureInfo) ([]byte, error)
}

// StableSource is implemented by sources whose packet data can stay
// valid beyond the next call of Next: DataStable reports true when every
// slice Next (or NextInto) returns aliases memory that stays unchanged
// until Close (a capture file mapped into memory). Packet loops then may
// decode several packets before using their payloads.
type StableSource interface {
	DataStable() bool
}

// ErrUnsupported is returned (wrapped) by drivers that do not work on this
// platform or build (for example the fore driver under CGO_ENABLED=0).
var ErrUnsupported = errors.New("capture driver not supported on this platform")

// ErrClosed is returned by Next after Close (possibly called from another
// goroutine) on a live source: the reading loop ends.
var ErrClosed = errors.New("capture source closed")

// ErrTimeout is returned (wrapped) by Next on a live source when no packet
// arrived within the source's poll timeout; the caller may do periodic
// work and call Next again.
var ErrTimeout = errors.New("capture timeout")

// BatchSource is implemented by live sources that hand over several
// frames at once, read in place: NextBatch fills frames and cis (as long
// as each other) and returns how many it filled, at least one unless it
// returns an error; the frames stay valid until the next call of
// NextBatch or Next, or Close. It returns ErrTimeout (wrapped) when no
// packet came within the source's poll timeout, ErrClosed after Close.
type BatchSource interface {
	Source
	NextBatch(frames [][]byte, cis []CaptureInfo) (int, error)
}

// Backlogger is implemented by live sources that can say how full their
// capture buffer is (for a kernel ring: blocks holding packets not yet
// read, of all blocks). The pipeline's self-regulation watches it.
type Backlogger interface {
	Backlog() (used, total int)
}
