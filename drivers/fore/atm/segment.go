package atm

import "encoding/binary"

// PDUCells returns the number of cells that carry an SDU of n bytes.
func PDUCells(n int) int { return (n + 8 + PayloadSize - 1) / PayloadSize }

// AppendCells segments sdu into the cells of one AAL5 CPCS-PDU (pad,
// trailer with uu, cpi, length and CRC-32) and appends them to dst as
// 53-byte cells with HEC. h is the header word; its PTI AAL-indicate bit
// is cleared on all cells but the last, where it is set. sdu must be at
// most 65535 bytes.
func AppendCells(dst []byte, h uint32, sdu []byte, uu, cpi uint8) []byte {
	return appendPDU(dst, h, sdu, uu, cpi, true)
}

// AppendRecords is AppendCells without HEC: 52-byte records of header
// word and payload, as ERF TYPE_ATM and the device ring store them.
func AppendRecords(dst []byte, h uint32, sdu []byte, uu, cpi uint8) []byte {
	return appendPDU(dst, h, sdu, uu, cpi, false)
}

func appendPDU(dst []byte, h uint32, sdu []byte, uu, cpi uint8, hec bool) []byte {
	n := PDUCells(len(sdu))
	var last [PayloadSize]byte
	crc := uint32(0xffffffff)
	h &^= PTIUserEnd << 1
	for i := range n {
		var payload []byte
		off := i * PayloadSize
		if off+PayloadSize <= len(sdu) && i < n-1 {
			payload = sdu[off : off+PayloadSize]
		} else {
			clear(last[:])
			if off < len(sdu) {
				copy(last[:], sdu[off:])
			}
			if i == n-1 {
				t := last[PayloadSize-8:]
				t[0], t[1] = uu, cpi
				binary.BigEndian.PutUint16(t[2:], uint16(len(sdu)))
				crc = crcUpdate(crc, last[:PayloadSize-4])
				binary.BigEndian.PutUint32(t[4:], ^crc)
			}
			payload = last[:]
		}
		if i < n-1 {
			crc = crcUpdate(crc, payload)
		}
		hh := h
		if i == n-1 {
			hh |= PTIUserEnd << 1
		}
		dst = binary.BigEndian.AppendUint32(dst, hh)
		if hec {
			dst = append(dst, HEC(hh))
		}
		dst = append(dst, payload...)
	}
	return dst
}
