//go:build linux

package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux the UDP socket is not handed to Go's network poller: the
// poller's epoll would wake a thread for every datagram (the socket is
// registered edge-triggered, and each arrival is an edge), which was most
// of the collector's CPU at a few hundred datagrams a second. Instead
// the reader drains the socket with recvmmsg(2) (up to a batch's slots
// per call, MSG_DONTWAIT) and, when it is empty, yields to the other
// goroutines and sleeps udpPoll before looking again: at most 1/udpPoll
// wake-ups a second however many datagrams arrive, while the socket
// buffer (Config.ReadBuffer, 32 MiB by default) holds what arrives
// meanwhile. A socket idle for udpIdleAfter is looked at every
// udpIdlePoll instead, when its buffer holds at least udpIdleBuffer.
// Readers see a datagram at most udpPoll (udpIdlePoll when idle) after
// it arrived; the store commits once a second.
//
// Both system calls are raw (no entersyscall): a Go timer (time.Sleep)
// or a blocking call wakes the runtime's sysmon thread as often as the
// reader (sysmon sleeps until the next timer, and entersyscall wakes it
// from its idle sleep), which cost as much as the wake-ups saved
// (BENCHMARKS.md). The sleeping goroutine keeps its P (pollSleep: only
// while another P stays free for the rest of the process; otherwise it
// sleeps with time.Sleep); the runtime's preemption signal interrupts
// the sleep (EINTR), so a stop-the-world does not wait for it.
const (
	udpPoll       = 5 * time.Millisecond
	udpIdlePoll   = 20 * time.Millisecond
	udpIdleAfter  = 200 * time.Millisecond
	udpIdleBuffer = 4 << 20
)

// pollReader reads datagrams from a socket that no poller watches.
// It allocates nothing per call.
type pollReader struct {
	fd     int
	rcvbuf int
	local  net.Addr
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6 // large enough for either family
	idle   time.Time               // since when the socket has been empty (reader only)

	stopped  atomic.Bool
	stopTime atomic.Int64 // when stop was called (unix ns)
	mu       sync.Mutex   // guards fd against release while drops reads it
	closed   bool
	final    uint64 // the drop count when the socket was closed
}

// udpDrainLimit bounds how long a stopped reader goes on reading what is
// queued (a flood would otherwise keep it reading).
const udpDrainLimit = time.Second

func listenUDP(_ context.Context, addr string, slots, rcvbuf int) (udpReader, int, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, 0, err
	}
	var (
		family = unix.AF_INET6
		sa     unix.Sockaddr
		v6only = 1
	)
	ip4 := ua.IP.To4()
	switch {
	case ip4 != nil:
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: ua.Port, Addr: [4]byte(ip4)}
	case ua.IP == nil || ua.IP.IsUnspecified():
		v6only = 0 // dual stack, as Go's net does for a wildcard address
		sa = &unix.SockaddrInet6{Port: ua.Port}
	default:
		s6 := &unix.SockaddrInet6{Port: ua.Port, Addr: [16]byte(ua.IP.To16())}
		if ua.Zone != "" {
			ifi, err := net.InterfaceByName(ua.Zone)
			if err != nil {
				return nil, 0, err
			}
			s6.ZoneId = uint32(ifi.Index)
		}
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil && family == unix.AF_INET6 && v6only == 0 {
		// No IPv6: the wildcard address of IPv4.
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ua.Port}
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("socket: %w", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			unix.Close(fd)
			return nil, 0, fmt.Errorf("setsockopt IPV6_V6ONLY: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, 0, &net.OpError{Op: "listen", Net: "udp", Addr: ua, Err: os.NewSyscallError("bind", err)}
	}
	r := &pollReader{
		fd:    fd,
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
	r.rcvbuf = setReadBuffer(fd, rcvbuf)
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("getsockname: %w", err)
	}
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		r.local = &net.UDPAddr{IP: net.IP(b.Addr[:]), Port: b.Port}
	case *unix.SockaddrInet6:
		r.local = &net.UDPAddr{IP: net.IP(b.Addr[:]), Port: b.Port, Zone: ua.Zone}
	}
	return r, r.rcvbuf, nil
}

func (r *pollReader) localAddr() net.Addr { return r.local }

func (r *pollReader) stop() {
	if !r.stopped.Swap(true) {
		r.stopTime.Store(time.Now().UnixNano())
	}
}

func (r *pollReader) release() {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		// What the kernel dropped while a stopped reader drained the
		// socket is still counted.
		if n, err := r.sockDrops(); err == nil {
			r.final = n
		}
		r.closed = true
		unix.Close(r.fd)
	}
}

// read fills b.msgs with the datagrams waiting on the socket (at least
// one; it sleeps until one arrives or the reader is stopped). A stopped
// reader still returns what was queued, for up to udpDrainLimit.
func (r *pollReader) read(b *udpBatch) error {
	for i := range r.hdrs {
		r.iovs[i].Base = &b.bufs[i][0]
		r.iovs[i].SetLen(len(b.bufs[i]))
	}
	for {
		for i := range r.hdrs {
			r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
			r.hdrs[i].Hdr.Flags = 0
			r.hdrs[i].Len = 0
		}
		// A raw system call: with MSG_DONTWAIT it never blocks, and
		// unix.Syscall6's entersyscall would wake the runtime's sysmon
		// thread from its idle sleep on every call (BENCHMARKS.md).
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.msgs = b.msgs[:0]
			for i := 0; i < int(n); i++ {
				h := &r.hdrs[i]
				m := udpMsg{n: int(h.Len), from: sockaddrAddrPort(&r.names[i])}
				if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
					m.truncated = true
				}
				b.msgs = append(b.msgs, m)
			}
			r.idle = time.Time{}
			if r.stopped.Load() && time.Since(time.Unix(0, r.stopTime.Load())) > udpDrainLimit {
				return net.ErrClosed
			}
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			if r.stopped.Load() {
				return net.ErrClosed
			}
			return fmt.Errorf("recvmmsg: %w", e)
		}
		if r.stopped.Load() {
			return net.ErrClosed
		}
		now := time.Now()
		if r.idle.IsZero() {
			r.idle = now
		}
		d := udpPoll
		if now.Sub(r.idle) > udpIdleAfter && r.rcvbuf >= udpIdleBuffer {
			d = udpIdlePoll
		}
		pollSleep(d)
	}
}

// rawSleepers counts the readers sleeping in a raw nanosleep, each
// holding its P.
var rawSleepers atomic.Int32

// pollSleep sleeps d between looks at an empty socket: in a raw
// nanosleep (no sysmon wake-up, the P kept) while that leaves at least
// one P for the rest of the process, else with time.Sleep (the P
// released). On one CPU (GOMAXPROCS 1, a small appliance), or with as
// many UDP listeners as Ps, raw sleeps would leave the store's committer,
// the rollups, the HTTP API and the TCP exporters only the moments
// between sleeps.
func pollSleep(d time.Duration) {
	n := rawSleepers.Add(1)
	defer rawSleepers.Add(-1)
	if !holdP(int(n), runtime.GOMAXPROCS(0)) {
		time.Sleep(d)
		return
	}
	runtime.Gosched()
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// holdP says whether the sleeper'th reader sleeping at once may keep its
// P when the process has procs of them: only while one stays free.
func holdP(sleeper, procs int) bool { return sleeper < procs }

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
func setReadBuffer(fd, n int) int {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if got < n {
		// Fails without CAP_NET_ADMIN; the capped buffer stays.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil {
			got, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		}
	}
	return got
}

// drops returns how many datagrams the kernel has dropped on the socket
// because its receive buffer was full (SO_MEMINFO, Linux 4.6+).
// A closed socket's count is the one it had when it was closed.
func (r *pollReader) drops() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.final, nil
	}
	return r.sockDrops()
}

// sockDrops reads the counter; r.mu held, socket open.
func (r *pollReader) sockDrops() (uint64, error) {
	var mi [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(mi))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(r.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
	switch {
	case errno == unix.ENOPROTOOPT:
		return 0, fmt.Errorf("socket drop count: SO_MEMINFO: %w", errors.ErrUnsupported)
	case errno != 0:
		return 0, fmt.Errorf("socket drop count: getsockopt SO_MEMINFO: %w", syscall.Errno(errno))
	case l <= unix.SK_MEMINFO_DROPS*4:
		return 0, fmt.Errorf("socket drop count: SO_MEMINFO returned %d bytes, no drop counter: %w", l, errors.ErrUnsupported)
	}
	return uint64(mi[unix.SK_MEMINFO_DROPS]), nil
}
