//go:build linux

package agent

import (
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

type netlinkReader struct{}

func newIfReader() ifReader { return netlinkReader{} }

func (netlinkReader) read(dst []ifRow, indexes []int) []ifRow {
	dst = dst[:0]
	for _, idx := range indexes {
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			continue
		}
		a := l.Attrs()
		ls := linkStats{
			Index:        a.Index,
			Name:         a.Name,
			Alias:        a.Alias,
			EncapType:    a.EncapType,
			MTU:          a.MTU,
			HardwareAddr: a.HardwareAddr,
			Up:           a.Flags&1 != 0, // net.FlagUp
			OperState:    a.OperState.String(),
			Promisc:      a.Promisc != 0,
			SpeedMbps:    sysSpeed(a.Name),
		}
		if s := a.Statistics; s != nil {
			ls.RxBytes, ls.RxPackets, ls.RxMulticast = s.RxBytes, s.RxPackets, s.Multicast
			ls.RxDropped, ls.RxErrors = s.RxDropped, s.RxErrors
			ls.TxBytes, ls.TxPackets, ls.TxDropped, ls.TxErrors = s.TxBytes, s.TxPackets, s.TxDropped, s.TxErrors
		}
		dst = append(dst, ifRowFromLink(&ls))
	}
	return dst
}

// sysSpeed reads the link speed in Mb/s from sysfs; netlink does not
// carry it. -1 when unknown (virtual links, no carrier).
func sysSpeed(name string) int64 {
	if name == "" || strings.ContainsAny(name, "/.") {
		return -1
	}
	b, err := os.ReadFile("/sys/class/net/" + name + "/speed")
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
