package atm

// AAL5 uses the CRC-32 of IEEE 802.3 computed MSB first (not the
// bit-reflected form of hash/crc32): polynomial 0x04C11DB7, initial value
// all ones, complemented result. Running it over a whole CPCS-PDU
// including the CRC field leaves the constant residue CRCResidue.

const crcPoly = 0x04c11db7

// CRCResidue is the register value (before the final complement) left by
// running the CRC over a correct CPCS-PDU including its CRC field.
const CRCResidue = 0xc704dd7b

// crcTables is a slicing-by-8 table set for the MSB-first CRC:
// crcTables[k][b] is the CRC of byte b followed by k zero bytes.
var crcTables [8][256]uint32

func init() {
	for i := range 256 {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ crcPoly
			} else {
				c <<= 1
			}
		}
		crcTables[0][i] = c
	}
	for i := range 256 {
		c := crcTables[0][i]
		for t := 1; t < 8; t++ {
			c = c<<8 ^ crcTables[0][c>>24]
			crcTables[t][i] = c
		}
	}
}

// crcUpdate continues the CRC register crc over p (no complement).
func crcUpdate(crc uint32, p []byte) uint32 {
	for len(p) >= 8 {
		crc ^= uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
		crc = crcTables[7][crc>>24] ^ crcTables[6][crc>>16&0xff] ^
			crcTables[5][crc>>8&0xff] ^ crcTables[4][crc&0xff] ^
			crcTables[3][p[4]] ^ crcTables[2][p[5]] ^ crcTables[1][p[6]] ^ crcTables[0][p[7]]
		p = p[8:]
	}
	for _, b := range p {
		crc = crc<<8 ^ crcTables[0][byte(crc>>24)^b]
	}
	return crc
}

// CRC32 returns the AAL5 CRC-32 of p: the value to put in the trailer when
// p is the PDU up to and excluding the CRC field.
func CRC32(p []byte) uint32 { return ^crcUpdate(0xffffffff, p) }
