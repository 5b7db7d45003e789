package agent

import (
	"strconv"
)

// oidCompare orders OIDs lexicographically.
func oidCompare(a, b []uint32) int {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func hasPrefix(oid, prefix []uint32) bool {
	if len(oid) < len(prefix) {
		return false
	}
	for i, p := range prefix {
		if oid[i] != p {
			return false
		}
	}
	return true
}

// parseOIDInto parses a dotted OID (gosnmp's ".1.3.6...") into dst.
func parseOIDInto(dst []uint32, s string) ([]uint32, bool) {
	dst = dst[:0]
	if len(s) > 0 && s[0] == '.' {
		s = s[1:]
	}
	if s == "" {
		return dst, false
	}
	var n uint64
	digits := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 {
				return dst, false
			}
			dst = append(dst, uint32(n))
			n, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' {
			return dst, false
		}
		n = n*10 + uint64(c-'0')
		if n > 0xffffffff {
			return dst, false
		}
		digits++
	}
	return dst, true
}

// appendOID formats an OID with a leading dot, as gosnmp expects.
func appendOID(dst []byte, oid []uint32) []byte {
	for _, n := range oid {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(n), 10)
	}
	return dst
}

func oidString(oid []uint32) string { return string(appendOID(nil, oid)) }

// berOIDLen is the length of an OID's BER contents octets.
func berOIDLen(oid []uint32) int {
	if len(oid) < 2 {
		return 1
	}
	n := subIDLen(oid[0]*40 + oid[1])
	for _, s := range oid[2:] {
		n += subIDLen(s)
	}
	return n
}

func subIDLen(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// berLenLen is the size of a BER length field for a content length.
func berLenLen(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n < 0x100:
		return 2
	case n < 0x10000:
		return 3
	default:
		return 4
	}
}

func tlvLen(content int) int { return 1 + berLenLen(content) + content }
