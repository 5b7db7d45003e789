package agent

import "sort"

// ifRow is one IF-MIB ifTable/ifXTable row.
type ifRow struct {
	Index       int
	Name        string
	Alias       string
	Type        int // IANAifType: 6 ethernetCsmacd, 24 softwareLoopback, 1 other
	MTU         int
	SpeedBPS    uint64
	PhysAddress string
	AdminStatus int // 1 up, 2 down
	OperStatus  int // 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown
	Promisc     bool

	InOctets, InUcast, InMulticast, InDiscards, InErrors, InUnknownProtos uint64
	OutOctets, OutUcast, OutMulticast, OutDiscards, OutErrors             uint64
}

// ifReader reads interface rows from the kernel. Rows for indexes the
// kernel does not know are left out.
type ifReader interface {
	read(dst []ifRow, indexes []int) []ifRow
}

// captureIfIndexes returns the distinct kernel indexes of the capture
// interfaces, sorted.
func captureIfIndexes(dst []int, s *Snapshot) []int {
	dst = dst[:0]
	for i := range s.Interfaces {
		if x := s.Interfaces[i].IfIndex; x > 0 {
			dst = append(dst, x)
		}
	}
	sort.Ints(dst)
	out := dst[:0]
	for i, x := range dst {
		if i == 0 || x != dst[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// linkStats is the kernel's view of one link, independent of netlink's
// types so the mapping to IF-MIB is testable on literal input.
type linkStats struct {
	Index        int
	Name, Alias  string
	EncapType    string // netlink EncapType: "ether", "loopback", ...
	MTU          int
	SpeedMbps    int64 // <= 0: unknown
	HardwareAddr []byte
	Up           bool   // IFF_UP
	OperState    string // netlink OperState string: up, down, unknown, dormant, notpresent, lowerlayerdown, testing
	Promisc      bool

	RxBytes, RxPackets, RxMulticast, RxDropped, RxErrors uint64
	TxBytes, TxPackets, TxDropped, TxErrors              uint64
}

// ifRowFromLink maps kernel link data to an IF-MIB row.
func ifRowFromLink(l *linkStats) ifRow {
	r := ifRow{Index: l.Index, Name: l.Name, Alias: l.Alias, MTU: l.MTU, Promisc: l.Promisc}
	switch l.EncapType {
	case "ether":
		r.Type = 6
	case "loopback":
		r.Type = 24
	case "ppp":
		r.Type = 23
	case "none", "ipip", "sit", "gre":
		r.Type = 131 // tunnel
	default:
		r.Type = 1
	}
	if l.SpeedMbps > 0 {
		r.SpeedBPS = uint64(l.SpeedMbps) * 1_000_000
	}
	if len(l.HardwareAddr) > 0 && r.Type != 24 {
		r.PhysAddress = string(l.HardwareAddr)
	}
	r.AdminStatus = 2
	if l.Up {
		r.AdminStatus = 1
	}
	switch l.OperState {
	case "up":
		r.OperStatus = 1
	case "down":
		r.OperStatus = 2
	case "testing":
		r.OperStatus = 3
	case "dormant":
		r.OperStatus = 5
	case "notpresent", "not present":
		r.OperStatus = 6
	case "lowerlayerdown", "lower-layer-down":
		r.OperStatus = 7
	default:
		// The kernel reports "unknown" for links without carrier
		// detection (loopback, many virtual links); RFC 2863 says an
		// interface that is administratively up and can pass packets is
		// up.
		if l.Up {
			r.OperStatus = 1
		} else {
			r.OperStatus = 4
		}
	}
	r.InOctets = l.RxBytes
	if l.RxPackets >= l.RxMulticast {
		r.InUcast = l.RxPackets - l.RxMulticast
	}
	r.InMulticast = l.RxMulticast
	r.InDiscards = l.RxDropped
	r.InErrors = l.RxErrors
	r.OutOctets = l.TxBytes
	r.OutUcast = l.TxPackets
	r.OutDiscards = l.TxDropped
	r.OutErrors = l.TxErrors
	return r
}
