package collector

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// gate is a Consumer whose calls block until it is opened.
type gate struct {
	open     chan struct{}
	entered  chan struct{} // closed at the first call
	once     sync.Once
	records  atomic.Int64
	finished atomic.Int64 // calls that have returned
	origins  chan Origin
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan struct{}), origins: make(chan Origin, 1)}
}

func (g *gate) Consume(o Origin, recs []flow.Record) {
	g.once.Do(func() {
		g.origins <- o
		close(g.entered)
	})
	<-g.open
	g.records.Add(int64(len(recs)))
	g.finished.Add(1)
}

// udpDatagrams returns the datagrams an exporter sends for recs.
func udpDatagrams(t *testing.T, recs []flow.Record) [][]byte {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.SetReadBuffer(8 << 20); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New("udp://"+pc.LocalAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	var out [][]byte
	buf := make([]byte, 65536)
	for uint64(len(out)) < e.Stats().Messages {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("read datagram %d of %d: %v", len(out), e.Stats().Messages, err)
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}

// TestWaitOutlivesConsume: a decoder still inside Consume when the
// listeners are cancelled keeps Wait from returning, so a commit after
// Wait sees its records (the shutdown race of mira-collector).
func TestWaitOutlivesConsume(t *testing.T) {
	g := newGate()
	c := New(g, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	uaddr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListenTCP(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	dgrams := udpDatagrams(t, ipfixtest.Random(5, 50))
	conn, err := net.Dial("udp", uaddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range dgrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no records delivered")
	}
	cancel()
	waited := make(chan struct{})
	go func() { c.Wait(); close(waited) }()
	// Give a broken Wait every chance to return early.
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	select {
	case <-waited:
		t.Fatal("Wait returned while a decoder was inside Consume")
	default:
	}
	close(g.open)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the listeners were cancelled")
	}
	n := g.finished.Load()
	if n == 0 {
		t.Fatal("Wait returned before Consume did")
	}
	// Nothing is delivered after Wait.
	recs := g.records.Load()
	runtime.Gosched()
	if g.finished.Load() != n || g.records.Load() != recs {
		t.Fatal("Consume called after Wait returned")
	}
}

// TestSocketDropsCounted: with the decoder blocked and a small socket
// buffer, the kernel drops datagrams; Stats counts them, and every sent
// datagram is either decoded or counted as dropped.
func TestSocketDropsCounted(t *testing.T) {
	dgrams := udpDatagrams(t, ipfixtest.Random(6, 3000))
	g := newGate()
	c := New(g, &Config{ReadBuffer: 16 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.sockets[0].rd.drops(); errors.Is(err, errors.ErrUnsupported) {
		peertest.Missing(t, "the kernel does not count socket drops: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const rounds = 20
	for r := 0; r < rounds; r++ {
		for _, d := range dgrams {
			if _, err := conn.Write(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	sent := uint64(rounds * len(dgrams))
	st := c.Stats()
	if st.SocketDrops == 0 {
		t.Fatalf("%d datagrams into a 16 KiB buffer with the decoder blocked: no drops counted (stats %+v)", sent, st)
	}
	close(g.open)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = c.Stats()
		if st.Messages+st.SocketDrops == sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d datagrams, decoded %d, dropped %d", sent, st.Messages, st.SocketDrops)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	c.Wait()
	if st2 := c.Stats(); st2.SocketDrops != st.SocketDrops {
		t.Fatalf("drops changed after close: %d, was %d", st2.SocketDrops, st.SocketDrops)
	}
}

// TestUDPv6Origin: the recvmmsg path reports IPv6 exporters' addresses.
func TestUDPv6Origin(t *testing.T) {
	g := newGate()
	close(g.open)
	c := New(g, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := c.ListenUDP(ctx, "[::1]:0")
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
		peertest.Missing(t, "no IPv6 loopback: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	dgrams := udpDatagrams(t, ipfixtest.Random(7, 20))
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range dgrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	var o Origin
	select {
	case o = <-g.origins:
	case <-time.After(10 * time.Second):
		t.Fatal("no records delivered")
	}
	want := netip.MustParseAddrPort(conn.LocalAddr().String())
	if o.Exporter != want || o.Transport != "udp" {
		t.Fatalf("origin %+v, want exporter %v over udp", o, want)
	}
}
