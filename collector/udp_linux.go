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

// On Linux the UDP socket is not handed to Go's network poller while
// datagrams flow: the poller's epoll would wake a thread for every
// datagram (the socket is registered edge-triggered, and each arrival is
// an edge), which was most of the collector's CPU at a few hundred
// datagrams a second. Instead the reader drains the socket with
// recvmmsg(2) (up to a batch's slots per call, MSG_DONTWAIT) and, when
// it is empty, yields to the other goroutines and sleeps before looking
// again, while the socket buffer (Config.ReadBuffer, 32 MiB by default)
// holds what arrives meanwhile.
//
// The sleep adapts to the arrival rate (adapt): after each sleep the
// reader reads how much of the buffer filled during it (SO_MEMINFO) and
// sets the next sleep so that, at that rate, the buffer fills to at most
// 1/udpFillShare of its size, between udpPollMin and udpPollMax, and at
// most twice the previous sleep (the first is udpPollStart). A burst
// udpFillShare times the rate last seen thus still fits, and the reader
// wakes only 1/udpPollMax times a second under a steady stream that the
// buffer holds easily (10 a second at the benchmark's 500 datagrams a
// second, where a fixed 5 ms sleep woke it 200 times). Readers see a
// datagram at most udpPollMax after it arrived; the store commits once
// a second.
//
// A socket empty for udpIdleAfter is handed to the poller after all
// (through a duplicate of its descriptor, registered only for the wait
// and closed once a datagram is there), so an idle collector sleeps
// until one arrives instead of looking every few milliseconds.
//
// The reads are raw system calls (no entersyscall), and so are short
// sleeps: a Go timer (time.Sleep) or a blocking call wakes the runtime's
// sysmon thread as often as the reader (sysmon sleeps until the next
// timer, and entersyscall wakes it from its idle sleep), which at 5 ms
// sleeps cost as much as the wake-ups saved (BENCHMARKS.md). A raw
// sleep keeps its P (pollSleep: only while another P stays free for the
// rest of the process, and only up to udpRawSleepMax; otherwise it
// sleeps with time.Sleep); the runtime's preemption signal interrupts
// it (EINTR), so a stop-the-world does not wait for it.
const (
	udpPollMin   = time.Millisecond
	udpPollStart = 5 * time.Millisecond
	udpPollMax   = 100 * time.Millisecond
	udpFillShare = 16
	udpIdleAfter = 200 * time.Millisecond
	// udpRawSleepMax is the longest sleep taken in a raw nanosleep
	// (pollSleep).
	udpRawSleepMax = 5 * time.Millisecond
)

// pollReader reads datagrams from a socket that no poller watches.
// It allocates nothing per call while datagrams flow.
type pollReader struct {
	fd     int
	rcvbuf int
	local  net.Addr
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6 // large enough for either family

	// The reader's own state (the reading goroutine only).
	sleep time.Duration // the next sleep between looks at an empty socket
	slept time.Time     // when the last sleep began (zero: not sleeping since the last look)
	empty time.Time     // since when the socket has been empty (zero: datagrams were just read)
	// sleeps and waits count the sleeps between looks and the idle waits
	// in the poller (tests).
	sleeps, waits atomic.Uint64

	stopped  atomic.Bool
	stopTime atomic.Int64 // when stop was called (unix ns)
	mu       sync.Mutex   // guards fd against release while drops reads it, and waiter
	closed   bool
	final    uint64   // the drop count when the socket was closed
	waiter   *os.File // the descriptor the poller watches during an idle wait
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
	r.mu.Lock()
	if r.waiter != nil {
		r.waiter.SetReadDeadline(time.Unix(1, 0)) // ends an idle wait
	}
	r.mu.Unlock()
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
		if !r.slept.IsZero() {
			r.adapt(time.Since(r.slept))
			r.slept = time.Time{}
		}
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
			r.empty = time.Time{}
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
		if r.empty.IsZero() {
			r.empty = now
		}
		if now.Sub(r.empty) >= udpIdleAfter && r.waitIdle() == nil {
			r.sleep = udpPollStart
			continue
		}
		if r.sleep == 0 {
			r.sleep = udpPollStart
		}
		r.slept = now
		r.sleeps.Add(1)
		pollSleep(r.sleep)
	}
}

// adapt sets the next sleep from how much of the socket buffer filled
// during the last one, which lasted d.
func (r *pollReader) adapt(d time.Duration) {
	q, err := r.queued()
	r.sleep = nextSleep(r.sleep, d, q, r.rcvbuf, err == nil)
}

// nextSleep returns the sleep that follows one of cur, which lasted d
// and during which queued bytes (the kernel's accounting, as rcvbuf)
// arrived: at that rate the buffer fills to at most rcvbuf/udpFillShare,
// within [udpPollMin, udpPollMax], growing at most twofold. Without a
// measurement (known false) it stays at udpPollStart.
func nextSleep(cur, d time.Duration, queued, rcvbuf int, known bool) time.Duration {
	if !known || rcvbuf <= 0 {
		return udpPollStart
	}
	next := 2 * max(cur, udpPollMin)
	if queued > 0 {
		fit := time.Duration(float64(d) * float64(rcvbuf/udpFillShare) / float64(queued))
		next = min(next, fit)
	}
	return min(max(next, udpPollMin), udpPollMax)
}

// queued returns the bytes waiting in the socket's receive buffer, as
// the kernel counts them against it (SK_MEMINFO_RMEM_ALLOC).
func (r *pollReader) queued() (int, error) {
	var mi [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(mi))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(r.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 || l <= unix.SK_MEMINFO_RMEM_ALLOC*4 {
		return 0, errors.ErrUnsupported
	}
	return int(mi[unix.SK_MEMINFO_RMEM_ALLOC]), nil
}

// waitIdle waits in Go's poller until a datagram is queued or the
// reader is stopped, through a duplicate of the socket's descriptor that
// the poller watches only for this wait (closing it takes it out of the
// poller's epoll set, so datagrams that follow wake no thread). An error
// means the wait could not be set up; the caller then sleeps instead.
func (r *pollReader) waitIdle() error {
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "udp")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.waiter = f
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.waiter = nil
		r.mu.Unlock()
	}()
	if r.stopped.Load() {
		return nil
	}
	r.waits.Add(1)
	var one [1]byte
	err = rc.Read(func(fd uintptr) bool {
		// Readable once a datagram is queued: peek at it, leaving it there.
		_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&one[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		return e != unix.EAGAIN
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return nil
}

// rawSleepers counts the readers sleeping in a raw nanosleep, each
// holding its P.
var rawSleepers atomic.Int32

// pollSleep sleeps d between looks at an empty socket. A short sleep
// (at most udpRawSleepMax) is a raw nanosleep (no sysmon wake-up, the P
// kept) while that leaves at least one P for the rest of the process;
// otherwise, and for longer sleeps, time.Sleep (the P released). On one
// CPU (GOMAXPROCS 1, a small appliance), or with as many UDP listeners
// as Ps, raw sleeps would leave the store's committer, the rollups, the
// HTTP API and the TCP exporters only the moments between sleeps. A raw
// sleep longer than the runtime's 10 ms preemption slice would be cut by
// sysmon's preemption signal every 10 ms, each a wake-up of sysmon and
// the reader; a long time.Sleep wakes sysmon only when it ends.
func pollSleep(d time.Duration) {
	n := rawSleepers.Add(1)
	defer rawSleepers.Add(-1)
	if d > udpRawSleepMax || !holdP(int(n), runtime.GOMAXPROCS(0)) {
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
