package appmeta

// TLS constants.
const (
	tlsHandshake   = 0x16
	hsClientHello  = 1
	extServerName  = 0
	extALPN        = 16
	sniHostName    = 0
	tlsRecordHead  = 5
	handshakeHead  = 4
	helloRandomLen = 32
)

// IsTLSClientHello reports whether p starts with a TLS handshake record
// holding a ClientHello.
func IsTLSClientHello(p []byte) bool {
	return len(p) > tlsRecordHead && p[0] == tlsHandshake && p[1] == 3 && p[2] <= 4 && p[tlsRecordHead] == hsClientHello
}

// TLSClientHello reads the ClientHello in the TLS record at the start of
// p, which may be cut short (the rest of the record in a later segment):
// what lies within p is used. It reports whether a server name was found.
func TLSClientHello(p []byte, f *Found) bool {
	if !IsTLSClientHello(p) {
		return false
	}
	rec := p[tlsRecordHead:]
	if n := int(p[3])<<8 | int(p[4]); n < len(rec) {
		rec = rec[:n]
	}
	return ClientHello(rec, KindTLS, f)
}

// ClientHello reads a handshake message (type, 3-byte length, body),
// perhaps cut short, keeping its server name and ALPN list in f under
// kind k. It reports whether a server name was found.
func ClientHello(m []byte, k Kind, f *Found) bool {
	if len(m) < handshakeHead || m[0] != hsClientHello {
		return false
	}
	b := m[handshakeHead:]
	if n := int(m[1])<<16 | int(m[2])<<8 | int(m[3]); n < len(b) {
		b = b[:n]
	}
	// version(2) random(32) session_id<0..32>
	off := 2 + helloRandomLen
	if off >= len(b) {
		return false
	}
	off += 1 + int(b[off])
	// cipher_suites<2..2^16-2>
	if off+2 > len(b) {
		return false
	}
	off += 2 + (int(b[off])<<8 | int(b[off+1]))
	// compression_methods<1..2^8-1>
	if off >= len(b) {
		return false
	}
	off += 1 + int(b[off])
	// extensions<8..2^16-1>
	if off+2 > len(b) {
		return false
	}
	off += 2
	found := false
	for off+4 <= len(b) {
		typ := int(b[off])<<8 | int(b[off+1])
		n := int(b[off+2])<<8 | int(b[off+3])
		off += 4
		if off+n > len(b) {
			break // cut short
		}
		ext := b[off : off+n]
		off += n
		switch typ {
		case extServerName:
			found = serverName(ext, k, f) || found
		case extALPN:
			alpn(ext, f)
		}
	}
	return found
}

// serverName reads a server_name extension's first host_name.
func serverName(ext []byte, k Kind, f *Found) bool {
	if len(ext) < 2 {
		return false
	}
	l := int(ext[0])<<8 | int(ext[1])
	list := ext[2:]
	if l < len(list) {
		list = list[:l]
	}
	for len(list) >= 3 {
		typ := list[0]
		n := int(list[1])<<8 | int(list[2])
		if 3+n > len(list) {
			return false
		}
		if typ == sniHostName {
			return f.setName(k, list[3:3+n], false)
		}
		list = list[3+n:]
	}
	return false
}

// alpn keeps the protocol names of an ALPN extension, comma-joined, as
// far as they fit in MaxALPN bytes; a name with a byte outside printable
// ASCII (or a comma) ends the list.
func alpn(ext []byte, f *Found) {
	if len(ext) < 2 {
		return
	}
	l := int(ext[0])<<8 | int(ext[1])
	list := ext[2:]
	if l < len(list) {
		list = list[:l]
	}
	n := 0
	for len(list) >= 1 {
		pl := int(list[0])
		if pl == 0 || 1+pl > len(list) {
			break
		}
		name := list[1 : 1+pl]
		list = list[1+pl:]
		if !printable(name) {
			break
		}
		need := len(name)
		if n > 0 {
			need++
		}
		if n+need > MaxALPN {
			break
		}
		if n > 0 {
			f.ALPN[n] = ','
			n++
		}
		n += copy(f.ALPN[n:], name)
	}
	f.ALPNLen = uint8(n)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ',' {
			return false
		}
	}
	return true
}
