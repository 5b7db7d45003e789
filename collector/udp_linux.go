//go:build linux

package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader reads datagrams with recvmmsg(2): one system call returns
// every datagram queued on the socket, up to the batch's slots. It
// allocates nothing per call.
type batchReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	fn    func(fd uintptr) bool   // made once: a closure per call would allocate

	n     int
	errno syscall.Errno
}

func newBatchReader(conn *net.UDPConn, slots int) (*batchReader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{
		rc:    rc,
		hdrs:  make([]unix.Mmsghdr, slots),
		iovs:  make([]unix.Iovec, slots),
		names: make([]unix.RawSockaddrInet6, slots),
	}
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.fn = func(fd uintptr) bool {
		// A raw system call: with MSG_DONTWAIT it never blocks, and
		// unix.Syscall6's entersyscall would wake the runtime's sysmon
		// thread from its idle sleep on every datagram (two or three
		// context switches each at a few hundred datagrams a second:
		// BENCHMARKS.md).
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for the poller
		}
		r.n, r.errno = int(n), e
		return true
	}
	return r, nil
}

// read fills b.msgs with the datagrams waiting on the socket (at least
// one; it blocks until one arrives).
func (r *batchReader) read(b *udpBatch) error {
	for i := range r.hdrs {
		r.iovs[i].Base = &b.bufs[i][0]
		r.iovs[i].SetLen(len(b.bufs[i]))
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	r.n, r.errno = 0, 0
	if err := r.rc.Read(r.fn); err != nil {
		return err
	}
	if r.errno != 0 {
		return fmt.Errorf("recvmmsg: %w", r.errno)
	}
	b.msgs = b.msgs[:0]
	for i := 0; i < r.n; i++ {
		h := &r.hdrs[i]
		m := udpMsg{n: int(h.Len), from: sockaddrAddrPort(&r.names[i])}
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			m.truncated = true
		}
		b.msgs = append(b.msgs, m)
	}
	return nil
}

// sockaddrAddrPort converts a sockaddr_in or sockaddr_in6 as recvmmsg
// filled it in. IPv4-mapped addresses are unmapped.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// setReadBuffer asks for an n-byte receive buffer. The kernel caps
// SO_RCVBUF at net.core.rmem_max; SO_RCVBUFFORCE (CAP_NET_ADMIN) is not
// capped, so it is tried when the first falls short. It returns the
// buffer the kernel granted (which counts its bookkeeping: about twice
// what was asked).
func setReadBuffer(conn *net.UDPConn, n int) int {
	_ = conn.SetReadBuffer(n)
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	rc.Control(func(fd uintptr) {
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		if got < n {
			// Fails without CAP_NET_ADMIN; the capped buffer stays.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil {
				got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
			}
		}
	})
	return got
}

// socketDrops returns how many datagrams the kernel has dropped on the
// socket because its receive buffer was full (SO_MEMINFO, Linux 4.6+).
func socketDrops(conn *net.UDPConn) (uint64, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("socket drop count: %w", err)
	}
	var mi [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(mi))
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
	}); err != nil {
		return 0, fmt.Errorf("socket drop count: %w", err)
	}
	switch {
	case errno == unix.ENOPROTOOPT:
		return 0, fmt.Errorf("socket drop count: SO_MEMINFO: %w", errors.ErrUnsupported)
	case errno != 0:
		return 0, fmt.Errorf("socket drop count: getsockopt SO_MEMINFO: %w", errno)
	case l <= unix.SK_MEMINFO_DROPS*4:
		return 0, fmt.Errorf("socket drop count: SO_MEMINFO returned %d bytes, no drop counter: %w", l, errors.ErrUnsupported)
	}
	return uint64(mi[unix.SK_MEMINFO_DROPS]), nil
}
