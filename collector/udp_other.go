//go:build !linux

package collector

import (
	"errors"
	"fmt"
	"net"
)

// batchReader reads one datagram per call where recvmmsg(2) is missing.
type batchReader struct{ conn *net.UDPConn }

func newBatchReader(conn *net.UDPConn, slots int) (*batchReader, error) {
	return &batchReader{conn: conn}, nil
}

func (r *batchReader) read(b *udpBatch) error {
	b.msgs = b.msgs[:0]
	n, from, err := r.conn.ReadFromUDPAddrPort(b.bufs[0])
	if err != nil {
		return err
	}
	b.msgs = append(b.msgs, udpMsg{n: n, from: from})
	return nil
}

func setReadBuffer(conn *net.UDPConn, n int) int {
	_ = conn.SetReadBuffer(n)
	return 0
}

// socketDrops is unknown off Linux.
func socketDrops(conn *net.UDPConn) (uint64, error) {
	return 0, fmt.Errorf("socket drop count: %w", errors.ErrUnsupported)
}
