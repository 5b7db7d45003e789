package appmeta

// IsDNSPort reports whether port is one DNS, mDNS or LLMNR use.
func IsDNSPort(port uint16) bool { return port == 53 || port == 5353 || port == 5355 }

// DNS reads the DNS message at the start of p (over TCP, after its
// 2-byte length prefix: pass tcp) and keeps the first question's name
// and, for a response, the response code in f. It reports whether the
// message parsed as DNS with a valid question name (a response without
// a question still sets the code).
func DNS(p []byte, tcp bool, f *Found) bool {
	if tcp {
		if len(p) < 2 {
			return false
		}
		p = p[2:]
	}
	if len(p) < 12 {
		return false
	}
	if op := p[2] >> 3 & 0x0f; op != 0 && op != 4 && op != 5 {
		return false // query, notify and update only
	}
	qd := int(p[4])<<8 | int(p[5])
	if p[2]&0x80 != 0 {
		f.HasRcode, f.Rcode = true, p[3]&0x0f
	}
	if qd == 0 {
		return false
	}
	// The first question's name, uncompressed labels.
	var name [MaxName]byte
	n, off := 0, 12
	for {
		if off >= len(p) {
			return false
		}
		l := int(p[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(p) {
			return false // a pointer, or cut short
		}
		if n > 0 {
			if n >= len(name) {
				return false
			}
			name[n] = '.'
			n++
		}
		if n+l > len(name) {
			return false
		}
		n += copy(name[n:], p[off:off+l])
		off += l
	}
	if n == 0 {
		return false // the root
	}
	return f.setName(KindDNS, name[:n], false)
}
