package appmeta

// Kind says where a Found's name came from.
type Kind uint8

const (
	KindNone Kind = iota
	KindHTTP      // HTTP/1.x Host header
	KindTLS       // TLS ClientHello server_name
	KindQUIC      // QUIC client Initial's ClientHello server_name
	KindDNS       // DNS question name
)

// MaxName bounds a name (a DNS name's text form is at most 253 bytes;
// an HTTP Host may add a port).
const MaxName = 255

// MaxALPN bounds the comma-joined ALPN list kept.
const MaxALPN = 64

// Found is what one flow direction revealed. It holds no pointers.
type Found struct {
	Kind     Kind
	NameLen  uint8
	ALPNLen  uint8
	HasRcode bool // a DNS response was seen; Rcode is its response code
	Rcode    uint8
	Name     [MaxName]byte
	ALPN     [MaxALPN]byte
}

// NameString and ALPNString return the name and the ALPN list.
func (f *Found) NameString() string { return string(f.Name[:f.NameLen]) }
func (f *Found) ALPNString() string { return string(f.ALPN[:f.ALPNLen]) }

// Reset empties f.
func (f *Found) Reset() { f.Kind, f.NameLen, f.ALPNLen, f.HasRcode, f.Rcode = KindNone, 0, 0, false, 0 }

// setName keeps name in f when it is a valid hostname (with an optional
// :port when port is set); it reports whether it did.
func (f *Found) setName(k Kind, name []byte, port bool) bool {
	if !ValidName(name, port) {
		return false
	}
	f.Kind = k
	f.NameLen = uint8(copy(f.Name[:], name))
	return true
}

// ValidName reports whether b is a non-empty name of at most MaxName
// bytes made of letters, digits, '-', '_' and '.', and, when port is set,
// ending in an optional ":digits" or being a bracketed IPv6 literal.
func ValidName(b []byte, port bool) bool {
	if len(b) == 0 || len(b) > MaxName {
		return false
	}
	if port {
		if b[0] == '[' {
			end := -1
			for i, c := range b {
				if c == ']' {
					end = i
					break
				}
				if i > 0 && !isHex(c) && c != ':' && c != '.' {
					return false
				}
			}
			if end < 2 {
				return false
			}
			return validPort(b[end+1:])
		}
		for i, c := range b {
			if c == ':' {
				return i > 0 && validHost(b[:i]) && validPort(b[i:])
			}
		}
	}
	return validHost(b)
}

func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validPort accepts "" or ":" followed by 1 to 5 digits.
func validPort(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != ':' || len(b) < 2 || len(b) > 6 {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
