package exporter

import (
	"net"

	"golang.org/x/sys/unix"
)

// PathMTU is the largest UDP payload the route to the collector carries
// without fragmentation: the path MTU the kernel knows for the connected
// socket (the interface's MTU, or less once ICMP said so), less the IP
// and UDP headers.
func (t *udpTransport) PathMTU() (int, error) {
	rc, err := t.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	v6 := false
	if ua, ok := t.c.RemoteAddr().(*net.UDPAddr); ok && ua.IP.To4() == nil {
		v6 = true
	}
	var mtu int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if !v6 {
			if mtu, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU); serr == nil {
				return
			}
		}
		// An IPv6 socket, possibly talking to a v4-mapped address.
		mtu, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	hdr := 20 + 8
	if v6 {
		hdr = 40 + 8
	}
	return min(mtu, 65535) - hdr, nil
}
