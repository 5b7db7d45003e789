package exporter

import (
	"errors"
	"net"
	"testing"
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
