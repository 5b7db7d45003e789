package appmeta

// httpScan bounds how far into a request the Host header is looked for.
const httpScan = 4096

var methods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "CONNECT ", "PATCH ", "TRACE ",
	"PROPFIND ", "PROPPATCH ", "MKCOL ", "COPY ", "MOVE ", "LOCK ", "UNLOCK "}

// IsHTTPRequest reports whether p starts like an HTTP/1.x request line.
func IsHTTPRequest(p []byte) bool {
	for _, m := range methods {
		if len(p) >= len(m) && string(p[:len(m)]) == m {
			return true
		}
	}
	return false
}

// HTTPHost looks for the Host header in the request head at the start of
// p (at most httpScan bytes, up to the blank line ending the head) and
// keeps it in f. It reports whether a valid host was found.
func HTTPHost(p []byte, f *Found) bool {
	if !IsHTTPRequest(p) {
		return false
	}
	if len(p) > httpScan {
		p = p[:httpScan]
	}
	// Skip the request line.
	i := indexLF(p, 0)
	for i >= 0 && i+1 < len(p) {
		line := p[i+1:]
		end := indexLF(p, i+1)
		if end >= 0 {
			line = p[i+1 : end]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return false // end of the head
		}
		if len(line) > 5 && lowerEq(line[:5], "host:") {
			v := trimSpace(line[5:])
			return f.setName(KindHTTP, v, true)
		}
		i = end
	}
	return false
}

func indexLF(p []byte, from int) int {
	for j := from; j < len(p); j++ {
		if p[j] == '\n' {
			return j
		}
	}
	return -1
}

func lowerEq(b []byte, s string) bool {
	for i := range len(s) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
