//go:build !linux

package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// connReader reads one datagram per call from a net.UDPConn where
// recvmmsg(2) is missing.
type connReader struct{ conn *net.UDPConn }

func listenUDP(ctx context.Context, addr string, slots, rcvbuf int) (udpReader, int, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, 0, err
	}
	conn := pc.(*net.UDPConn)
	_ = conn.SetReadBuffer(rcvbuf)
	return &connReader{conn: conn}, 0, nil
}

func (r *connReader) read(b *udpBatch) error {
	b.msgs = b.msgs[:0]
	n, from, err := r.conn.ReadFromUDPAddrPort(b.bufs[0])
	if err != nil {
		return err
	}
	b.msgs = append(b.msgs, udpMsg{n: n, from: from})
	return nil
}

func (r *connReader) stop()               { r.conn.Close() }
func (r *connReader) release()            { r.conn.Close() }
func (r *connReader) localAddr() net.Addr { return r.conn.LocalAddr() }

// drops is unknown off Linux.
func (r *connReader) drops() (uint64, error) {
	return 0, fmt.Errorf("socket drop count: %w", errors.ErrUnsupported)
}
