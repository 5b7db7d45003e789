//go:build linux

// Command ingestfloor measures the floors under a flow collector's
// ingest of an IPFIX stream over UDP: what receiving costs, what MIRA's
// decoder adds, what writing durably adds, with nothing else a collector
// does. tools/bench/ingestfloor.sh runs its modes beside nfcapd and
// mira-collector on collector.sh's stream, pinned to one core, to show
// which parts of a collector's CPU no store design can win back
// (issue 13, goal 3).
//
//	ingestfloor -listen 127.0.0.1:4739 [-mode append] [-out FILE] [-poll 5ms] [-sync 1s] [-nosync] [-direct]
//
// Modes:
//
//	discard  receive every datagram, nothing else
//	decode   receive and decode each message with MIRA's decoder
//	         (ipfix.Session.DecodeEach, one session per exporter address,
//	         as mira-collector's UDP reader), records discarded
//	append   receive and write each datagram as it came to -out, synced
//	         (fdatasync) every -sync; -direct writes with O_DIRECT in
//	         4 KiB-aligned blocks (each sync pads the file to a block)
//	encode   decode as decode does, encode each flow record in the
//	         collector store's record encoding (store.AppendRecord, a
//	         length byte before each) and append the bytes in arrival
//	         order to -out, synced every -sync: the least a durable
//	         collector that decodes into MIRA's stored encoding does (no
//	         sort, no chunks, no index, no commit)
//	raw      the least a durable collector that keeps the IPFIX data sets
//	         as they came must do (see raw.go)
//
// -poll 0 blocks in recvmmsg(2) until a datagram arrives (a wake-up per
// datagram at low rates, as nfcapd's recvfrom); -poll D reads with
// MSG_DONTWAIT and sleeps D when the socket is empty (mira-collector's
// reader sleeps 1-100 ms). It runs until killed and prints what it
// received (and decoded or framed) to standard error on SIGTERM.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"golang.org/x/sys/unix"
)

type options struct {
	listen, out, mode     string
	poll, every           time.Duration
	nosync, direct, rawOn bool
	rcvbuf                int
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:4739", "UDP address to read")
	flag.StringVar(&o.out, "out", "", "file to write to (modes append and raw)")
	flag.StringVar(&o.mode, "mode", "append", "discard, decode, encode, append or raw")
	flag.DurationVar(&o.poll, "poll", 5*time.Millisecond, "sleep when the socket is empty (0: block in recvmmsg)")
	flag.DurationVar(&o.every, "sync", time.Second, "fdatasync interval")
	flag.BoolVar(&o.nosync, "nosync", false, "never sync (page cache only)")
	flag.BoolVar(&o.direct, "direct", false, "append with O_DIRECT (4 KiB-aligned writes)")
	flag.BoolVar(&o.rawOn, "raw", false, "same as -mode raw")
	flag.IntVar(&o.rcvbuf, "rcvbuf", 32<<20, "socket receive buffer")
	flag.Parse()
	if o.rawOn {
		o.mode = "raw"
	}
	switch o.mode {
	case "discard", "decode":
	case "append", "raw", "encode":
		if o.out == "" {
			fmt.Fprintln(os.Stderr, "ingestfloor: -out FILE is required in mode", o.mode)
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "ingestfloor: unknown -mode %q\n", o.mode)
		os.Exit(2)
	}
	if o.direct && o.mode != "append" {
		fmt.Fprintln(os.Stderr, "ingestfloor: -direct needs -mode append")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ingestfloor:", err)
		os.Exit(1)
	}
}

// sink is what a mode does with the datagrams of one recvmmsg and at
// each sync.
type sink interface {
	datagram(b []byte, addr [4]byte, port uint16) error
	sync() error
	report() string
}

func run(o options) error {
	ua, err := net.ResolveUDPAddr("udp4", o.listen)
	if err != nil {
		return err
	}
	flags := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if o.poll > 0 {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_INET, flags, unix.IPPROTO_UDP)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.rcvbuf)
	sa := &unix.SockaddrInet4{Port: ua.Port}
	copy(sa.Addr[:], ua.IP.To4())
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", o.listen, err)
	}
	var s sink
	switch o.mode {
	case "discard":
		s = &discard{}
	case "decode":
		s = &decoder{sessions: map[netip.AddrPort]*ipfix.Session{}}
	case "append":
		a, err := newAppender(o.out, o.direct, o.nosync)
		if err != nil {
			return err
		}
		defer a.f.Close()
		s = a
	case "encode":
		a, err := newAppender(o.out, false, o.nosync)
		if err != nil {
			return err
		}
		defer a.f.Close()
		s = &encoder{decoder: decoder{sessions: map[netip.AddrPort]*ipfix.Session{}}, a: a}
	case "raw":
		r, err := newRawStore(o.out, o.nosync)
		if err != nil {
			return err
		}
		defer r.f.Close()
		defer r.idx.Close()
		s = r
	}

	var datagrams, bytes atomic.Uint64
	var mu atomic.Bool // held while a batch is handled, so the report reads settled counters
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		for !mu.CompareAndSwap(false, true) {
			time.Sleep(time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "ingestfloor: %d datagrams, %d bytes%s\n", datagrams.Load(), bytes.Load(), s.report())
		os.Exit(0)
	}()

	const slots, size = 64, 65536
	bufs := make([]byte, slots*size)
	hdrs := make([]unix.Mmsghdr, slots)
	iovs := make([]unix.Iovec, slots)
	names := make([]unix.RawSockaddrInet4, slots)
	for i := range hdrs {
		hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		iovs[i].Base = &bufs[i*size]
		iovs[i].SetLen(size)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	lastSync := time.Now()
	for {
		for i := range hdrs {
			hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		}
		var n uintptr
		var e syscall.Errno
		if o.poll > 0 {
			// Never blocks: raw, as mira-collector's reader.
			n, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), slots, unix.MSG_DONTWAIT, 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), slots, unix.MSG_WAITFORONE, 0, 0)
		}
		switch e {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			if e == unix.EAGAIN {
				time.Sleep(o.poll)
			}
			continue
		default:
			return fmt.Errorf("recvmmsg: %w", e)
		}
		for !mu.CompareAndSwap(false, true) {
		}
		for i := 0; i < int(n); i++ {
			l := int(hdrs[i].Len)
			// The port as the kernel stored it (network order).
			port := *(*[2]byte)(unsafe.Pointer(&names[i].Port))
			if err := s.datagram(bufs[i*size:i*size+l], names[i].Addr, uint16(port[0])<<8|uint16(port[1])); err != nil {
				return err
			}
			datagrams.Add(1)
			bytes.Add(uint64(l))
		}
		if time.Since(lastSync) >= o.every {
			if err := s.sync(); err != nil {
				return err
			}
			lastSync = time.Now()
		}
		mu.Store(false)
	}
}

type discard struct{}

func (discard) datagram([]byte, [4]byte, uint16) error { return nil }
func (discard) sync() error                            { return nil }
func (discard) report() string                         { return "" }

// decoder decodes with MIRA's decoder, one session per exporter address
// and port, and counts the flow records.
type decoder struct {
	sessions map[netip.AddrPort]*ipfix.Session
	records  uint64
	errors   uint64
}

func (d *decoder) datagram(b []byte, addr [4]byte, port uint16) error {
	ap := netip.AddrPortFrom(netip.AddrFrom4(addr), port)
	s := d.sessions[ap]
	if s == nil {
		s = ipfix.NewSession(ap.String())
		d.sessions[ap] = s
	}
	if _, err := s.DecodeEach(b, d.count); err != nil {
		d.errors++
	}
	return nil
}

func (d *decoder) count(*flow.Record) { d.records++ }
func (d *decoder) sync() error        { return nil }
func (d *decoder) report() string {
	return fmt.Sprintf(", %d flow records decoded, %d messages with errors", d.records, d.errors)
}

// appender writes each datagram as it came.
type appender struct {
	f      *os.File
	direct bool
	nosync bool
	buf    []byte // aligned to 4 KiB when direct
	off    int64  // where buf's first byte goes (block-aligned when direct)
}

const block = 4096

func newAppender(path string, direct, nosync bool) (*appender, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	const size = 1 << 20
	raw := make([]byte, size+block)
	a := int(uintptr(unsafe.Pointer(&raw[0])) & (block - 1))
	if a != 0 {
		raw = raw[block-a:]
	}
	return &appender{f: f, direct: direct, nosync: nosync, buf: raw[:0:size]}, nil
}

func (a *appender) datagram(b []byte, _ [4]byte, _ uint16) error {
	for len(b) > 0 {
		n := copy(a.buf[len(a.buf):cap(a.buf)], b)
		a.buf = a.buf[:len(a.buf)+n]
		b = b[n:]
		if len(a.buf) == cap(a.buf) {
			if err := a.flush(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes buf; at a sync with O_DIRECT the last block is padded
// with zeros (a real store would frame the padding).
func (a *appender) flush(final bool) error {
	if len(a.buf) == 0 {
		return nil
	}
	w := a.buf
	if a.direct {
		n := len(w)
		if !final {
			n &^= block - 1
		} else if n&(block-1) != 0 {
			p := block - n&(block-1)
			a.buf = a.buf[:n+p]
			clear(a.buf[n:])
			n += p
		}
		w = a.buf[:n]
	}
	if _, err := a.f.WriteAt(w, a.off); err != nil {
		return err
	}
	a.off += int64(len(w))
	rest := copy(a.buf, a.buf[len(w):])
	a.buf = a.buf[:rest]
	return nil
}

func (a *appender) sync() error {
	if err := a.flush(true); err != nil {
		return err
	}
	if a.nosync {
		return nil
	}
	return unix.Fdatasync(int(a.f.Fd()))
}

func (a *appender) report() string { return "" }

// encoder decodes as decoder and appends each record in the store's
// encoding.
type encoder struct {
	decoder
	a   *appender
	rec []byte
}

func (e *encoder) datagram(b []byte, addr [4]byte, port uint16) error {
	ap := netip.AddrPortFrom(netip.AddrFrom4(addr), port)
	s := e.sessions[ap]
	if s == nil {
		s = ipfix.NewSession(ap.String())
		e.sessions[ap] = s
	}
	if _, err := s.DecodeEach(b, e.add); err != nil {
		e.errors++
	}
	return nil
}

func (e *encoder) add(r *flow.Record) {
	e.records++
	e.rec = store.AppendRecord(e.rec[:0], r)
	var l [binary.MaxVarintLen32]byte
	_ = e.a.datagram(l[:binary.PutUvarint(l[:], uint64(len(e.rec)))], [4]byte{}, 0)
	_ = e.a.datagram(e.rec, [4]byte{}, 0)
}

func (e *encoder) sync() error { return e.a.sync() }
