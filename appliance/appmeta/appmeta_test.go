package appmeta

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// clientHello returns the first TLS record crypto/tls writes as a client
// for server name sni and ALPN protocols.
func clientHello(t testing.TB, sni string, alpn []string) []byte {
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		cl := tls.Client(c, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true})
		cl.Handshake()
		c.Close()
	}()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16384)
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestTLSClientHello(t *testing.T) {
	p := clientHello(t, "video.example.net", []string{"h2", "http/1.1"})
	var f Found
	if !TLSClientHello(p, &f) || f.Kind != KindTLS || f.NameString() != "video.example.net" || f.ALPNString() != "h2,http/1.1" {
		t.Fatalf("got kind %d name %q alpn %q", f.Kind, f.NameString(), f.ALPNString())
	}
	// Cut short before the extensions: nothing, and no panic.
	f.Reset()
	if TLSClientHello(p[:60], &f) {
		t.Errorf("a hello cut before its extensions gave %q", f.NameString())
	}
}

func TestHTTPHost(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: www.example.com:8080\r\n\r\n", "www.example.com:8080"},
		{"POST /a HTTP/1.1\r\nhOsT:\texample.org \r\n\r\n", "example.org"},
		{"GET / HTTP/1.1\r\nX: y\r\n\r\nHost: late.example\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", ""},
		{"HELLO / HTTP/1.1\r\nHost: a.example\r\n\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "[2001:db8::1]:80"},
	} {
		var f Found
		ok := HTTPHost([]byte(c.in), &f)
		if ok != (c.want != "") || f.NameString() != c.want {
			t.Errorf("%q: got %v %q, want %q", c.in, ok, f.NameString(), c.want)
		}
	}
}

func TestDNS(t *testing.T) {
	q := []byte{0x12, 0x34, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0,
		3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	var f Found
	if !DNS(q, false, &f) || f.NameString() != "www.example.com" || !f.HasRcode || f.Rcode != 3 {
		t.Fatalf("got %q rcode %v %d", f.NameString(), f.HasRcode, f.Rcode)
	}
	f.Reset()
	tcp := append([]byte{0, byte(len(q))}, q...)
	tcp[4] = 0x01 // a query
	if !DNS(tcp, true, &f) || f.NameString() != "www.example.com" || f.HasRcode {
		t.Fatalf("tcp: got %q rcode %v", f.NameString(), f.HasRcode)
	}
	f.Reset()
	bad := append([]byte(nil), q...)
	bad[13] = 'w' | 0x80
	if DNS(bad, false, &f) || f.NameLen != 0 {
		t.Errorf("a name with a non-hostname byte was kept: %q", f.NameString())
	}
}

// checkFound is the invariant of every parser: a kept name is a valid
// hostname (HTTP: with an optional port) within bounds, the ALPN list is
// printable, and a parser that reports success kept a name.
func checkFound(t *testing.T, ok bool, f *Found) {
	t.Helper()
	if int(f.NameLen) > MaxName || int(f.ALPNLen) > MaxALPN {
		t.Fatalf("lengths out of bounds: %d %d", f.NameLen, f.ALPNLen)
	}
	name := f.Name[:f.NameLen]
	if ok != (f.NameLen > 0) {
		t.Fatalf("reported %v with name %q", ok, name)
	}
	if f.NameLen > 0 && !ValidName(name, f.Kind == KindHTTP) {
		t.Fatalf("invalid name %q kept", name)
	}
	for _, c := range f.ALPN[:f.ALPNLen] {
		if c <= ' ' || c >= 0x7f {
			t.Fatalf("ALPN %q not printable", f.ALPN[:f.ALPNLen])
		}
	}
}

// guarded returns a copy of b whose capacity ends where its length does,
// so a read beyond the input panics.
func guarded(b []byte) []byte { return append([]byte(nil), b...)[:len(b):len(b)] }

func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.example:80\r\n\r\n"))
	f.Add([]byte("PUT / HTTP/1.0\nHOST: [::1]:8\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd Found
		checkFound(t, HTTPHost(guarded(b), &fd), &fd)
	})
}

func FuzzTLSClientHello(f *testing.F) {
	f.Add(clientHello(f, "a.example", []string{"h2"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd Found
		checkFound(t, TLSClientHello(guarded(b), &fd), &fd)
	})
}

func FuzzDNS(f *testing.F) {
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1}, false)
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		var fd Found
		checkFound(t, DNS(guarded(b), tcp, &fd), &fd)
	})
}

func FuzzQUICInitial(f *testing.F) {
	p := make([]byte, 1200)
	copy(p, []byte{0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0x9e})
	f.Add(p)
	var s Scratch
	f.Fuzz(func(t *testing.T, b []byte) {
		var fd Found
		in := guarded(b)
		keep := append([]byte(nil), b...)
		checkFound(t, QUICInitial(in, &s, &fd), &fd)
		if string(in) != string(keep) {
			t.Fatal("QUICInitial changed its input")
		}
	})
}

func FuzzCryptoData(f *testing.F) {
	f.Add([]byte{0x06, 0x00, 0x04, 1, 0, 0, 0, 0x00, 0x06, 0x40, 0x10, 0x01, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf [cryptoSpace]byte
		if n := cryptoData(guarded(b), &buf); n < 0 || n > cryptoSpace {
			t.Fatalf("contiguous length %d", n)
		}
	})
}
