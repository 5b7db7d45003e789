package sampling

// BOB is the hash function of RFC 5475 Appendix A.2 (Bob Jenkins'
// 1997 hash, "lookup2"): it hashes key with initialiser init into 32
// bits. Key bytes are read little-endian, 12 at a time, as the RFC's C
// code does on any machine; the length goes into the low byte of the
// third word before the last mix.
func BOB(key []byte, init uint32) uint32 {
	a, b, c := uint32(0x9e3779b9), uint32(0x9e3779b9), init
	k := key
	for len(k) >= 12 {
		a += le32(k[0:4])
		b += le32(k[4:8])
		c += le32(k[8:12])
		a, b, c = bobMix(a, b, c)
		k = k[12:]
	}
	c += uint32(len(key))
	// The tail: up to 11 bytes; c's low byte holds the length.
	switch len(k) {
	case 11:
		c += uint32(k[10]) << 24
		fallthrough
	case 10:
		c += uint32(k[9]) << 16
		fallthrough
	case 9:
		c += uint32(k[8]) << 8
		fallthrough
	case 8:
		b += uint32(k[7]) << 24
		fallthrough
	case 7:
		b += uint32(k[6]) << 16
		fallthrough
	case 6:
		b += uint32(k[5]) << 8
		fallthrough
	case 5:
		b += uint32(k[4])
		fallthrough
	case 4:
		a += uint32(k[3]) << 24
		fallthrough
	case 3:
		a += uint32(k[2]) << 16
		fallthrough
	case 2:
		a += uint32(k[1]) << 8
		fallthrough
	case 1:
		a += uint32(k[0])
	}
	_, _, c = bobMix(a, b, c)
	return c
}

// bobMix is the reversible mix of three 32-bit words of RFC 5475 A.2.
func bobMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= b
	a -= c
	a ^= c >> 13
	b -= c
	b -= a
	b ^= a << 8
	c -= a
	c -= b
	c ^= b >> 13
	a -= b
	a -= c
	a ^= c >> 12
	b -= c
	b -= a
	b ^= a << 16
	c -= a
	c -= b
	c ^= b >> 5
	a -= b
	a -= c
	a ^= c >> 3
	b -= c
	b -= a
	b ^= a << 10
	c -= a
	c -= b
	c ^= b >> 15
	return a, b, c
}

func le32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
