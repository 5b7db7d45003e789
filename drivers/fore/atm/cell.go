package atm

import "encoding/binary"

// Cell sizes.
const (
	CellSize    = 53 // header (4 bytes) + HEC (1) + payload
	HeaderSize  = 4  // header without HEC, as DAG cards and the Fore firmware report it
	PayloadSize = 48
	// RecordSize is a cell without its HEC: the 4-byte header then the
	// 48-byte payload (ERF TYPE_ATM, the Linux AAL0 SDU, our device ring).
	RecordSize = HeaderSize + PayloadSize
)

// Payload type indicator values (the 3 PT bits).
const (
	PTIUserEnd   = 0x1 // AAL-indicate bit of a user data cell: last cell of an AAL5 PDU
	PTICongested = 0x2 // EFCI bit of a user data cell
	PTIOAMSeg    = 0x4 // OAM F5 segment cell
	PTIOAMEnd    = 0x5 // OAM F5 end-to-end cell
	PTIRM        = 0x6 // resource management cell
	PTIReserved  = 0x7
)

// Reserved VCIs that carry F4 OAM flows on every VPI.
const (
	VCIOAMF4Seg = 3
	VCIOAMF4End = 4
)

// Header is a decoded cell header. For NNI cells GFC is 0 and VPI has 12
// bits; for UNI cells VPI has 8 bits.
type Header struct {
	GFC uint8
	VPI uint16
	VCI uint16
	PTI uint8
	CLP bool
}

// ParseUNI decodes a UNI header given as the 32 big-endian bits that
// precede the HEC.
func ParseUNI(h uint32) Header {
	return Header{
		GFC: uint8(h >> 28),
		VPI: uint16(h>>20) & 0xff,
		VCI: uint16(h >> 4),
		PTI: uint8(h>>1) & 7,
		CLP: h&1 != 0,
	}
}

// ParseNNI decodes an NNI header (12-bit VPI, no GFC).
func ParseNNI(h uint32) Header {
	return Header{
		VPI: uint16(h>>20) & 0xfff,
		VCI: uint16(h >> 4),
		PTI: uint8(h>>1) & 7,
		CLP: h&1 != 0,
	}
}

// UNI encodes h as a UNI header word (VPI truncated to 8 bits).
func (h Header) UNI() uint32 {
	w := uint32(h.GFC&0xf)<<28 | uint32(h.VPI&0xff)<<20 | uint32(h.VCI)<<4 | uint32(h.PTI&7)<<1
	if h.CLP {
		w |= 1
	}
	return w
}

// NNI encodes h as an NNI header word (VPI truncated to 12 bits).
func (h Header) NNI() uint32 {
	w := uint32(h.VPI&0xfff)<<20 | uint32(h.VCI)<<4 | uint32(h.PTI&7)<<1
	if h.CLP {
		w |= 1
	}
	return w
}

// Kind classifies a cell by its header.
type Kind uint8

// Cell kinds.
const (
	KindUser       Kind = iota // user data cell (PTI 0-3)
	KindIdle                   // idle cell (physical layer, header 00000001)
	KindUnassigned             // unassigned cell (VPI=VCI=0, PTI 0, CLP 0)
	KindOAMF4                  // F4 OAM cell (VCI 3 or 4)
	KindOAMF5                  // F5 OAM cell (PTI 4 or 5)
	KindRM                     // resource management cell (PTI 6)
	KindReserved               // PTI 7
)

var kindNames = [...]string{"user", "idle", "unassigned", "oam-f4", "oam-f5", "rm", "reserved"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Classify says what a header word carries. It works for UNI and NNI
// headers alike since only the low 28 bits matter (idle and unassigned
// cells have GFC 0 in practice).
func Classify(h uint32) Kind {
	switch {
	case h == 1:
		return KindIdle
	case h&0x0ffffff1 == 0 && h&0xe == 0:
		return KindUnassigned
	}
	vci := uint16(h >> 4)
	if vci == VCIOAMF4Seg || vci == VCIOAMF4End {
		return KindOAMF4
	}
	switch pti := uint8(h>>1) & 7; pti {
	case PTIOAMSeg, PTIOAMEnd:
		return KindOAMF5
	case PTIRM:
		return KindRM
	case PTIReserved:
		return KindReserved
	}
	return KindUser
}

// hecCoset is XORed into the CRC-8 (ITU-T I.432.1) so that an all-zero
// header does not give an all-zero HEC.
const hecCoset = 0x55

var (
	hecTable [256]uint8
	// syndromeBit maps the syndrome of a single-bit error to the position of
	// that bit in the 40-bit header+HEC word (39 = MSB of header byte 0,
	// 0..7 = HEC bits), or -1 when the syndrome is not a single-bit error.
	syndromeBit [256]int8
)

func init() {
	for i := range 256 {
		c := uint8(i)
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07 // x^8 + x^2 + x + 1
			} else {
				c <<= 1
			}
		}
		hecTable[i] = c
	}
	for i := range syndromeBit {
		syndromeBit[i] = -1
	}
	for bit := range 40 {
		var hdr uint32
		var hec uint8
		if bit < 8 {
			hec = 1 << bit
		} else {
			hdr = 1 << (bit - 8)
		}
		// The syndrome of an error pattern is linear: crc(hdr^e) ^ (hec^e')
		// against the correct one is crc0(e) ^ e', with crc0 the raw CRC.
		s := crc8(hdr) ^ hec
		syndromeBit[s] = int8(bit)
	}
}

func crc8(h uint32) uint8 {
	c := hecTable[uint8(h>>24)]
	c = hecTable[c^uint8(h>>16)]
	c = hecTable[c^uint8(h>>8)]
	return hecTable[c^uint8(h)]
}

// HEC returns the header error control byte for a header word.
func HEC(h uint32) uint8 { return crc8(h) ^ hecCoset }

// HECStatus is the result of a HEC check.
type HECStatus uint8

// HEC check results.
const (
	HECOK        HECStatus = iota
	HECCorrected           // a single-bit error was corrected
	HECBad                 // multi-bit error: the cell must be discarded
)

// CheckHEC checks the HEC of a 53-byte cell (at least 5 bytes are read)
// and returns the header word, corrected if a single bit was wrong
// (including a bit of the HEC itself). It does not modify cell.
func CheckHEC(cell []byte) (uint32, HECStatus) {
	_ = cell[4]
	h := binary.BigEndian.Uint32(cell)
	s := crc8(h) ^ hecCoset ^ cell[4]
	if s == 0 {
		return h, HECOK
	}
	bit := syndromeBit[s]
	if bit < 0 {
		return h, HECBad
	}
	if bit >= 8 {
		h ^= 1 << (bit - 8)
	}
	return h, HECCorrected
}

// PutCell writes a 53-byte cell (header, HEC, payload) into dst, which must
// hold CellSize bytes; payload shorter than 48 bytes is zero padded.
func PutCell(dst []byte, h uint32, payload []byte) {
	_ = dst[CellSize-1]
	binary.BigEndian.PutUint32(dst, h)
	dst[4] = HEC(h)
	n := copy(dst[5:CellSize], payload)
	clear(dst[5+n : CellSize])
}
