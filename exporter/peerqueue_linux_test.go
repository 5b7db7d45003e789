package exporter

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPeerQueue reads the receive queue of a loopback receiver that does
// not read: it grows with each datagram sent, the buffer size is the
// socket's, and a port nobody receives on is errNoPeer.
func TestPeerQueue(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			host := "127.0.0.1"
			if network == "udp6" {
				host = "[::1]"
			}
			pc, err := net.ListenPacket(network, host+":0")
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer pc.Close()
			if err := pc.(*net.UDPConn).SetReadBuffer(100000); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial(network, pc.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			q, err := newPeerQueue(c.(*net.UDPConn))
			if err != nil {
				t.Fatal(err)
			}
			defer q.close()
			queued, size, drops, err := q.read()
			if err != nil {
				t.Fatal(err)
			}
			// The kernel doubles what SO_RCVBUF asks for.
			if queued != 0 || size != 200000 || drops != 0 {
				t.Fatalf("idle receiver: queued %d size %d drops %d, want 0 200000 0", queued, size, drops)
			}
			last := 0
			for i := 0; i < 3; i++ {
				if _, err := c.Write(make([]byte, 1000)); err != nil {
					t.Fatal(err)
				}
				queued, _, _, err = q.read()
				if err != nil {
					t.Fatal(err)
				}
				if queued <= last+1000 {
					t.Fatalf("after %d datagrams of 1000 bytes: %d queued, %d before", i+1, queued, last)
				}
				last = queued
			}
		})
	}
	// A collector listening on every address (mira-collector --listen
	// udp://:4739: an IPv6 socket taking IPv4 too) is found for an IPv4
	// exporter.
	t.Run("dual-stack", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		c, err := net.Dial("udp4", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q, err := newPeerQueue(c.(*net.UDPConn))
		if err != nil {
			t.Fatal(err)
		}
		defer q.close()
		if _, err := c.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if queued, _, _, err := q.read(); err != nil || queued < 1000 {
			t.Fatalf("dual-stack receiver on %v: queued %d, %v", pc.LocalAddr(), queued, err)
		}
	})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q, err := newPeerQueue(c.(*net.UDPConn))
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if _, _, _, err := q.read(); !errors.Is(err, errNoPeer) {
		t.Fatalf("nobody receiving: %v, want errNoPeer", err)
	}
}

// diagAnswer builds the kernel's answer to a sock_diag query: an
// inet_diag_msg and its SK_MEMINFO attribute (after extra attributes
// of pad bytes each).
func diagAnswer(queued, size, drops uint32, extra []uint8) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 16+inetDiagMsgLen)
	for _, n := range extra {
		a := make([]byte, (4+int(n)+3)&^3)
		ne.PutUint16(a, uint16(4+int(n)))
		ne.PutUint16(a[2:], 1) // INET_DIAG_MEMINFO, skipped
		b = append(b, a...)
	}
	a := make([]byte, 4+4*(skMeminfoDrops+1))
	ne.PutUint16(a, uint16(len(a)))
	ne.PutUint16(a[2:], inetDiagSkMeminfo)
	ne.PutUint32(a[4+4*skMeminfoRmem:], queued)
	ne.PutUint32(a[4+4*skMeminfoRcvbuf:], size)
	ne.PutUint32(a[4+4*skMeminfoDrops:], drops)
	b = append(b, a...)
	ne.PutUint32(b, uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	return b
}

// FuzzParseDiag: parseDiag never panics; an answer built from values
// reads back as them, and any bytes that parse give values the bytes
// hold.
func FuzzParseDiag(f *testing.F) {
	f.Add(uint32(2304), uint32(212992), uint32(0), []byte{}, []byte{})
	f.Add(uint32(1), uint32(2), uint32(3), []byte{0, 5, 8}, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, queued, size, drops uint32, extra, raw []byte) {
		if len(extra) > 8 {
			extra = extra[:8]
		}
		b := diagAnswer(queued, size, drops, extra)
		q, s, d, err := parseDiag(b)
		if err != nil || q != int(queued) || s != int(size) || d != int(drops) {
			t.Fatalf("built from %d %d %d: read %d %d %d, %v", queued, size, drops, q, s, d, err)
		}
		// Truncated, it fails or reads the same (an attribute cut off
		// is not read).
		for n := range b {
			if q, s, d, err := parseDiag(b[:n]); err == nil && (q != int(queued) || s != int(size) || d != int(drops)) {
				t.Fatalf("truncated at %d: read %d %d %d", n, q, s, d)
			}
		}
		parseDiag(raw)
	})
}
