package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// The UDP receive path: one goroutine reads datagrams in batches (one
// recvmmsg(2) per batch on Linux) and hands full batches to a decoding
// goroutine through a bounded ring of buffers. A slow decoder blocks the
// reader, and the socket's own buffer (Config.ReadBuffer) absorbs the
// burst; what overflows it the kernel drops and counts, and Stats reports
// that count as SocketDrops.
const (
	udpSlots    = 32    // datagrams per batch (per recvmmsg call)
	udpBatches  = 4     // batches in flight between reader and decoder
	maxDatagram = 65536 // no UDP datagram is larger, so none is truncated
)

type udpMsg struct {
	from      netip.AddrPort
	n         int
	truncated bool
}

type udpBatch struct {
	bufs [][]byte
	msgs []udpMsg
}

func newUDPBatch() *udpBatch {
	b := &udpBatch{bufs: make([][]byte, udpSlots), msgs: make([]udpMsg, 0, udpSlots)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, maxDatagram)
	}
	return b
}

// udpReader is a listening UDP socket as the receive path uses it
// (udp_linux.go, udp_other.go).
type udpReader interface {
	// read fills b.msgs with at least one datagram, waiting for one;
	// once close was called it returns net.ErrClosed (on Linux after
	// reading what was already queued).
	read(b *udpBatch) error
	// stop makes read return net.ErrClosed; safe from any goroutine,
	// more than once.
	stop()
	// release closes the socket; called by the reading goroutine once
	// it no longer reads.
	release()
	// drops returns the kernel's count of datagrams dropped because the
	// receive buffer was full.
	drops() (uint64, error)
	localAddr() net.Addr
}

// udpSocket is a listening UDP socket's accounting.
type udpSocket struct {
	rd     udpReader
	rcvbuf int    // receive buffer the kernel granted
	drops  uint64 // kernel drops, as last read; Collector.mu
}

// refreshDrops reads the socket's drop counter; c.mu held. A closed
// socket keeps its last value.
func (us *udpSocket) refreshDrops() {
	if n, err := us.rd.drops(); err == nil && n > us.drops {
		us.drops = n
	}
}

// ListenUDP listens on addr and serves until ctx is done. It returns the
// bound address. Datagrams read before ctx is done are still decoded;
// Wait returns once they have been handed to the Consumer.
func (c *Collector) ListenUDP(ctx context.Context, addr string) (net.Addr, error) {
	rd, rcvbuf, err := listenUDP(ctx, addr, udpSlots, c.cfg.ReadBuffer)
	if err != nil {
		return nil, fmt.Errorf("collector: listen udp %s: %w", addr, err)
	}
	us := &udpSocket{rd: rd, rcvbuf: rcvbuf}
	c.mu.Lock()
	c.sockets = append(c.sockets, us)
	c.mu.Unlock()

	free := make(chan *udpBatch, udpBatches)
	full := make(chan *udpBatch, udpBatches)
	for i := 0; i < udpBatches; i++ {
		free <- newUDPBatch()
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		us.refreshDrops()
		c.mu.Unlock()
		rd.stop()
	})
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		defer close(full)
		defer stop()
		defer rd.release()
		for {
			b := <-free
			if err := rd.read(b); err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				c.mu.Lock()
				c.readErrs++
				c.mu.Unlock()
				free <- b
				continue
			}
			full <- b
		}
	}()
	go func() {
		defer c.wg.Done()
		for b := range full {
			for i, m := range b.msgs {
				if m.truncated {
					c.mu.Lock()
					c.readErrs++
					c.mu.Unlock()
					continue
				}
				if !c.allowed(m.from, "udp") {
					continue
				}
				c.decode(c.udpSession(m.from), b.bufs[i][:m.n])
			}
			free <- b
		}
	}()
	return rd.localAddr(), nil
}
