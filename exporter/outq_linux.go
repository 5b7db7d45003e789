package exporter

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// unacked returns the bytes of TCP connection c that the peer has not
// acknowledged yet (SIOCOUTQ: sent and unacknowledged plus unsent).
func unacked(c net.Conn) (int, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) { n, serr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	return n, serr
}
