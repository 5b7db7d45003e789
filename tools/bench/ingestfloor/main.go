//go:build linux

// Command ingestfloor is the least a durable flow collector does with
// an IPFIX stream over UDP: receive every datagram and write it, as it
// came, to a file that is synced (fdatasync) every second — no decoding,
// no record format, no index. tools/bench/ingestfloor.sh runs it beside
// nfcapd on collector.sh's stream to show how much of a collector's CPU
// the kernel's side of receiving and writing takes, which no decoder can
// win back (issue 13, goal 3).
//
//	ingestfloor -listen 127.0.0.1:4739 -out FILE [-poll 5ms] [-sync 1s] [-nosync]
//
// -poll 0 blocks in recvmmsg(2) until a datagram arrives (a wake-up per
// datagram at low rates, as nfcapd's recvfrom); -poll D reads with
// MSG_DONTWAIT and sleeps D when the socket is empty (mira-collector's
// reader). It runs until killed and prints the datagrams and bytes it
// wrote to standard error on SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4739", "UDP address to read")
	out := flag.String("out", "", "file to append the datagrams to")
	poll := flag.Duration("poll", 5*time.Millisecond, "sleep when the socket is empty (0: block in recvmmsg)")
	every := flag.Duration("sync", time.Second, "fdatasync interval")
	nosync := flag.Bool("nosync", false, "never sync (page cache only)")
	rcvbuf := flag.Int("rcvbuf", 32<<20, "socket receive buffer")
	raw := flag.Bool("raw", false, "store records as they came: walk each record for its end time, frame each data set with its bounds and a CRC, commit an index entry per sync to a second synced file")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "ingestfloor: -out FILE is required")
		os.Exit(2)
	}
	if err := run(*listen, *out, *poll, *every, *nosync, *rcvbuf, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "ingestfloor:", err)
		os.Exit(1)
	}
}

func run(listen, out string, poll, every time.Duration, nosync bool, rcvbuf int, raw bool) error {
	ua, err := net.ResolveUDPAddr("udp4", listen)
	if err != nil {
		return err
	}
	flags := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if poll > 0 {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_INET, flags, unix.IPPROTO_UDP)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf)
	sa := &unix.SockaddrInet4{Port: ua.Port}
	copy(sa.Addr[:], ua.IP.To4())
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", listen, err)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var st *rawStore
	if raw {
		idx, err := os.OpenFile(out+".idx", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer idx.Close()
		st = newRawStore(idx)
	}

	var datagrams, bytes atomic.Uint64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		fmt.Fprintf(os.Stderr, "ingestfloor: %d datagrams, %d bytes\n", datagrams.Load(), bytes.Load())
		if st != nil {
			fmt.Fprintf(os.Stderr, "ingestfloor: raw: %d data records framed\n", st.records.Load())
		}
		os.Exit(0)
	}()

	const slots, size = 64, 65536
	bufs := make([]byte, slots*size)
	hdrs := make([]unix.Mmsghdr, slots)
	iovs := make([]unix.Iovec, slots)
	names := make([]unix.RawSockaddrInet4, slots)
	for i := range hdrs {
		hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		iovs[i].Base = &bufs[i*size]
		iovs[i].SetLen(size)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	wbuf := make([]byte, 0, 1<<20)
	lastSync := time.Now()
	for {
		recvFlags := unix.MSG_WAITFORONE
		if poll > 0 {
			recvFlags = unix.MSG_DONTWAIT
		}
		var n uintptr
		var e syscall.Errno
		if poll > 0 {
			// Never blocks: raw, as mira-collector's reader.
			n, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), slots, uintptr(recvFlags), 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), slots, uintptr(recvFlags), 0, 0)
		}
		switch e {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			if e == unix.EAGAIN {
				time.Sleep(poll)
			}
			continue
		default:
			return fmt.Errorf("recvmmsg: %w", e)
		}
		for i := 0; i < int(n); i++ {
			l := int(hdrs[i].Len)
			if st != nil {
				wbuf = st.message(wbuf, bufs[i*size:i*size+l], names[i].Addr, names[i].Port)
				hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
				datagrams.Add(1)
				bytes.Add(uint64(l))
				if len(wbuf) >= 256<<10 {
					if _, err := f.Write(wbuf); err != nil {
						return err
					}
					wbuf = wbuf[:0]
				}
				continue
			}
			if len(wbuf)+l > cap(wbuf) {
				if _, err := f.Write(wbuf); err != nil {
					return err
				}
				wbuf = wbuf[:0]
			}
			wbuf = append(wbuf, bufs[i*size:i*size+l]...)
			datagrams.Add(1)
			bytes.Add(uint64(l))
		}
		if time.Since(lastSync) >= every {
			if _, err := f.Write(wbuf); err != nil {
				return err
			}
			wbuf = wbuf[:0]
			if !nosync {
				if err := unix.Fdatasync(int(f.Fd())); err != nil {
					return err
				}
			}
			if st != nil {
				if err := st.commit(nosync); err != nil {
					return err
				}
			}
			lastSync = time.Now()
		}
	}
}
