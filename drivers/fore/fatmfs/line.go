//go:build linux

package fatmfs

import (
	"encoding/binary"
	"hash/fnv"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/fatm"
)

// Packet is an IP packet (LinkRaw) or Ethernet frame to put on the line.
type Packet struct {
	Timestamp int64
	Data      []byte
	Link      drivers.LinkType
}

// VCFor picks the VC of a packet among vcs by hashing its IP address pair
// (order-independent), so both directions of a conversation share a VC,
// as they would on a PVC between two sites. Non-IP packets go on vcs[0].
func VCFor(p Packet, vcs []atm.VC) atm.VC {
	ip := p.Data
	if p.Link == drivers.LinkEthernet {
		if len(ip) < 14 {
			return vcs[0]
		}
		ip = ip[14:]
	}
	var a, b []byte
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		a, b = ip[12:16], ip[16:20]
	case len(ip) >= 40 && ip[0]>>4 == 6:
		a, b = ip[8:24], ip[24:40]
	default:
		return vcs[0]
	}
	if string(a) > string(b) {
		a, b = b, a
	}
	h := fnv.New32a()
	h.Write(a)
	h.Write(b)
	return vcs[h.Sum32()%uint32(len(vcs))]
}

// Segment puts packets on the line as LLC-encapsulated AAL5 PDUs (routed
// for LinkRaw, bridged for LinkEthernet), each on the VC VCFor picks, one
// STM-1 cell time (2831 ns) apart within a packet. Directions alternate
// by address order so the card reports both.
func Segment(pkts []Packet, vcs []atm.VC) []Cell {
	var cells []Cell
	var sdu []byte
	for _, p := range pkts {
		vc := VCFor(p, vcs)
		sdu = atm.AppendEncap(sdu[:0], atm.EncapLLC, p.Link, p.Data)
		if len(sdu) > 65535 {
			continue
		}
		raw := atm.AppendCells(nil, atm.Header{VPI: vc.VPI(), VCI: vc.VCI()}.UNI(), sdu, 0, 0)
		dir := uint8(fatm.DirA)
		if ip := p.Data; p.Link == drivers.LinkRaw && len(ip) >= 20 && ip[0]>>4 == 4 &&
			binary.BigEndian.Uint32(ip[12:]) > binary.BigEndian.Uint32(ip[16:]) {
			dir = fatm.DirB
		}
		ts := p.Timestamp
		for off := 0; off < len(raw); off += atm.CellSize {
			cells = append(cells, Cell{Timestamp: ts, Data: raw[off : off+atm.CellSize], Dir: dir})
			ts += 2831
		}
	}
	return cells
}
