package exporter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerQueue reads the receive queue of the socket on this host that the
// datagrams of a connected UDP socket arrive at (a collector on the same
// host, in the same network namespace), through NETLINK_SOCK_DIAG, as
// `ss -um` shows it: no privilege is needed.
type peerQueue struct {
	fd  int
	req []byte
	buf []byte
}

// Netlink sock_diag constants (linux/inet_diag.h, linux/sock_diag.h).
const (
	inetDiagSkMeminfo = 7  // INET_DIAG_SKMEMINFO: u32 SK_MEMINFO_VARS
	inetDiagMsgLen    = 72 // struct inet_diag_msg
	skMeminfoRmem     = 0  // SK_MEMINFO_RMEM_ALLOC
	skMeminfoRcvbuf   = 1  // SK_MEMINFO_RCVBUF
	skMeminfoDrops    = 8  // SK_MEMINFO_DROPS
)

// newPeerQueue prepares the query for the receiver of c's datagrams.
func newPeerQueue(c *net.UDPConn) (*peerQueue, error) {
	la, ok1 := c.LocalAddr().(*net.UDPAddr)
	ra, ok2 := c.RemoteAddr().(*net.UDPAddr)
	if !ok1 || !ok2 {
		return nil, errors.New("not a UDP socket")
	}
	family := uint8(unix.AF_INET6)
	src, dst := la.IP.To16(), ra.IP.To16()
	if l4, r4 := la.IP.To4(), ra.IP.To4(); l4 != nil && r4 != nil {
		family, src, dst = unix.AF_INET, l4, r4
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	// struct nlmsghdr, then struct inet_diag_req_v2: the kernel looks
	// the socket up as it would deliver a datagram from src:sport to
	// dst:dport (udp_dump_one), the cookie left unchecked.
	req := make([]byte, 16+56)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	r := req[16:]
	r[0], r[1], r[2] = family, unix.IPPROTO_UDP, 1<<(inetDiagSkMeminfo-1)
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], uint16(la.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(ra.Port))
	copy(id[4:20], src)
	copy(id[20:36], dst)
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	return &peerQueue{fd: fd, req: req, buf: make([]byte, 4096)}, nil
}

// read returns the receiver's queued bytes (as the kernel charges them:
// with each datagram's overhead), its buffer size and the datagrams it
// dropped for want of room.
func (q *peerQueue) read() (queued, size, drops int, err error) {
	if err := unix.Sendto(q.fd, q.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, 0, os.NewSyscallError("sendto", err)
	}
	n, _, err := unix.Recvfrom(q.fd, q.buf, 0)
	if err != nil {
		return 0, 0, 0, os.NewSyscallError("recvfrom", err)
	}
	return parseDiag(q.buf[:n])
}

// parseDiag reads the answer to a sock_diag query: one inet_diag_msg
// with its SK_MEMINFO attribute, or an error.
func parseDiag(b []byte) (queued, size, drops int, err error) {
	ne := binary.NativeEndian
	if len(b) < 16 {
		return 0, 0, 0, fmt.Errorf("sock_diag: short answer (%d bytes)", len(b))
	}
	l, typ := int(ne.Uint32(b)), ne.Uint16(b[4:])
	if l < 16 || l > len(b) {
		return 0, 0, 0, fmt.Errorf("sock_diag: bad message length %d of %d", l, len(b))
	}
	b = b[16:l]
	switch typ {
	case unix.NLMSG_ERROR:
		if len(b) < 4 {
			return 0, 0, 0, errors.New("sock_diag: short error")
		}
		e := unix.Errno(-int32(ne.Uint32(b)))
		if e == unix.ENOENT {
			return 0, 0, 0, errNoPeer
		}
		return 0, 0, 0, os.NewSyscallError("sock_diag", e)
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, 0, 0, fmt.Errorf("sock_diag: unexpected message type %d", typ)
	}
	if len(b) < inetDiagMsgLen {
		return 0, 0, 0, fmt.Errorf("sock_diag: short inet_diag_msg (%d bytes)", len(b))
	}
	for a := b[inetDiagMsgLen:]; len(a) >= 4; {
		al, at := int(ne.Uint16(a)), ne.Uint16(a[2:])
		if al < 4 || al > len(a) {
			break
		}
		if at == inetDiagSkMeminfo && al >= 4+4*(skMeminfoDrops+1) {
			v := a[4:al]
			return int(ne.Uint32(v[4*skMeminfoRmem:])), int(ne.Uint32(v[4*skMeminfoRcvbuf:])), int(ne.Uint32(v[4*skMeminfoDrops:])), nil
		}
		a = a[min((al+3)&^3, len(a)):]
	}
	return 0, 0, 0, errors.New("sock_diag: no SK_MEMINFO in the answer")
}

func (q *peerQueue) close() { unix.Close(q.fd) }

// receiverQueue returns a reader of the receive queue of the collector's
// socket when the collector is on this host (nil when it cannot be
// read: no netlink).
func (t *udpTransport) receiverQueue() queueReader {
	if t.peer == nil {
		q, err := newPeerQueue(t.c)
		if err != nil {
			return nil
		}
		t.peer = q
	}
	return t.peer
}

func (t *udpTransport) closePeer() {
	if t.peer != nil {
		t.peer.close()
		t.peer = nil
	}
}
