//go:build linux

package vethtest

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestPair checks that each end lives only in its namespace and that
// traffic crosses the pair.
func TestPair(t *testing.T) {
	p := New(t)
	if _, err := net.InterfaceByName(p.Iface[0]); err == nil {
		t.Fatalf("%s visible in the host namespace", p.Iface[0])
	}
	for side := range 2 {
		err := p.Do(side, func() error {
			ifi, err := net.InterfaceByName(p.Iface[side])
			if err != nil {
				return err
			}
			if ifi.HardwareAddr.String() != p.MAC[side].String() || ifi.MTU != 1500 {
				t.Errorf("side %d: %v mtu %d", side, ifi.HardwareAddr, ifi.MTU)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var srv, cli *net.UDPConn
	if err := p.Do(0, func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[0], 7000)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := p.Do(1, func() (err error) {
		cli, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr[0], 7000)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "hello" || from.Addr() != p.Addr[1] {
		t.Fatalf("got %q from %v: %v", buf[:n], from, err)
	}
	if err := p.SetMTU(9000); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Promiscuity(0); err != nil || n != 0 {
		t.Fatalf("promiscuity %d: %v", n, err)
	}
}
