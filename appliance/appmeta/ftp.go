package appmeta

// FTP data connections are announced on the control connection: the
// client's PORT h1,h2,h3,h4,p1,p2 (RFC 959) and EPRT |af|addr|port|
// (RFC 2428) name the port the server is to connect to; the server's
// 227 (PASV) and 229 (EPSV) replies the port the client is to connect
// to. FTPDataPorts finds these ports in a control connection's segment.

// IsFTPPort reports whether port is FTP's control port.
func IsFTPPort(port uint16) bool { return port == 21 }

// IsFTPControl reports whether p starts like the server's side of an
// FTP control connection on another port: a 220 greeting naming FTP on
// its first line. (The client's USER command is also IRC's, so only the
// greeting is taken.)
func IsFTPControl(p []byte) bool {
	if len(p) < 8 || p[0] != '2' || p[1] != '2' || p[2] != '0' || (p[3] != ' ' && p[3] != '-') {
		return false
	}
	end := min(len(p), 256)
	for i := 4; i+3 <= end; i++ {
		if p[i]|0x20 == 'f' && p[i+1]|0x20 == 't' && p[i+2]|0x20 == 'p' {
			return true
		}
		if p[i] == '\n' {
			return false
		}
	}
	return false
}

// FTPDataPorts calls fn with the data port of every PORT, EPRT, 227 or
// 229 line that begins a line of p (a control connection segment may
// hold several). It reads only p and allocates nothing.
func FTPDataPorts(p []byte, fn func(port uint16)) {
	for len(p) > 0 {
		line := p
		next := []byte(nil)
		for i, c := range p {
			if c == '\n' {
				line, next = p[:i], p[i+1:]
				break
			}
		}
		if port, ok := FTPDataPort(line); ok {
			fn(port)
		}
		p = next
	}
}

// FTPDataPort returns the data port one control line announces: PORT and
// EPRT commands (any case), 227 and 229 replies; ok is false for other
// lines and for malformed announcements (a number out of range, a port
// of 0).
func FTPDataPort(line []byte) (port uint16, ok bool) {
	switch {
	case hasPrefixFold(line, "PORT "):
		return hostPort(line[5:], false)
	case hasPrefixFold(line, "EPRT "):
		return extPort(line[5:], true)
	case len(line) >= 4 && line[0] == '2' && line[1] == '2' && line[2] == '7' && line[3] == ' ':
		// "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)": the numbers may
		// come without the parenthesis; they are the first digits after
		// the code.
		return hostPort(line[4:], true)
	case len(line) >= 4 && line[0] == '2' && line[1] == '2' && line[2] == '9' && line[3] == ' ':
		// "229 Entering Extended Passive Mode (|||port|)".
		for i := 4; i < len(line); i++ {
			if line[i] == '(' {
				return extPort(line[i+1:], false)
			}
		}
	}
	return 0, false
}

func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// hostPort reads h1,h2,h3,h4,p1,p2 (each 0-255) and returns p1*256+p2.
// With skip, text before the first digit is skipped.
func hostPort(b []byte, skip bool) (uint16, bool) {
	i := 0
	if skip {
		for i < len(b) && (b[i] < '0' || b[i] > '9') {
			i++
		}
	} else {
		for i < len(b) && b[i] == ' ' {
			i++
		}
	}
	var v [6]int
	for k := 0; k < 6; k++ {
		n, digits := 0, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && digits < 4 {
			n = n*10 + int(b[i]-'0')
			i++
			digits++
		}
		if digits == 0 || digits > 3 || n > 255 {
			return 0, false
		}
		v[k] = n
		if k < 5 {
			if i >= len(b) || b[i] != ',' {
				return 0, false
			}
			i++
		}
	}
	if i < len(b) && b[i] >= '0' && b[i] <= '9' {
		return 0, false
	}
	port := v[4]<<8 | v[5]
	return uint16(port), port != 0
}

// extPort reads RFC 2428's <d>af<d>addr<d>port<d> (withAddr: EPRT) or
// <d><d><d>port<d> (EPSV's reply), with any delimiter d in 33-126.
func extPort(b []byte, withAddr bool) (uint16, bool) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	if len(b) < 4 || b[0] < 33 || b[0] > 126 {
		return 0, false
	}
	d := b[0]
	i := 1
	// Skip the two fields before the port (af and addr, or two empty
	// ones), each ended by the delimiter.
	for f := 0; f < 2; f++ {
		start := i
		for i < len(b) && b[i] != d {
			i++
		}
		if i >= len(b) || (!withAddr && i != start) || (withAddr && i == start) {
			return 0, false
		}
		i++
	}
	n, digits := 0, 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && digits < 6 {
		n = n*10 + int(b[i]-'0')
		i++
		digits++
	}
	if digits == 0 || n == 0 || n > 65535 || i >= len(b) || b[i] != d {
		return 0, false
	}
	return uint16(n), true
}
