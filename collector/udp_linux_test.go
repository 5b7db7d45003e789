package collector

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// TestHoldPLeavesOneFree checks the raw-sleep policy: readers sleeping
// at once keep their Ps only while one P stays free for the rest of the
// process, so on one CPU no reader holds the only P.
func TestHoldPLeavesOneFree(t *testing.T) {
	for _, c := range []struct {
		procs int
		want  int // how many of 4 simultaneous sleepers may hold their P
	}{{1, 0}, {2, 1}, {4, 3}, {8, 4}} {
		held := 0
		for i := 1; i <= 4; i++ {
			if holdP(i, c.procs) {
				held++
			}
		}
		if held != c.want {
			t.Errorf("GOMAXPROCS %d: %d of 4 sleeping readers keep their P, want %d", c.procs, held, c.want)
		}
	}
}

// TestPollSleepOneCPU runs a reader's sleeps under GOMAXPROCS 1 beside a
// goroutine that counts how often it gets the only P (yielding after each
// count): while the sleeps hold the P it runs only in the moments between
// them, about once per sleep; with the P free, thousands of times.
func TestPollSleepOneCPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	ran := make(chan int, 1)
	go func() {
		n := 0
		for !stop.Load() {
			n++
			runtime.Gosched()
		}
		ran <- n
	}()
	const sleeps = 20
	for i := 0; i < sleeps; i++ {
		pollSleep(5 * time.Millisecond)
	}
	stop.Store(true)
	if n := <-ran; n < 100*sleeps {
		t.Errorf("a runnable goroutine ran %d times during %d sleeps of a reader on one P: the sleeps held the P", n, sleeps)
	}
}

// TestNextSleep: the sleep between looks at an empty socket lets the
// buffer fill to 1/udpFillShare at the rate of the last sleep, within
// [udpPollMin, udpPollMax], at most doubling.
func TestNextSleep(t *testing.T) {
	const buf = 64 << 20
	ms := time.Millisecond
	for _, c := range []struct {
		name   string
		cur, d time.Duration
		queued int
		rcvbuf int
		known  bool
		want   time.Duration
	}{
		{"empty socket doubles", 10 * ms, 10 * ms, 0, buf, true, 20 * ms},
		{"empty socket stops at the maximum", 80 * ms, 80 * ms, 0, buf, true, udpPollMax},
		{"a slow stream doubles", 10 * ms, 10 * ms, 64 << 10, buf, true, 20 * ms},
		// 4 MiB in 10 ms: the share (4 MiB) fills in 10 ms.
		{"a fast stream holds", 10 * ms, 10 * ms, 4 << 20, buf, true, 10 * ms},
		// 16 MiB in 10 ms: the share fills in 2.5 ms.
		{"a burst shortens", 10 * ms, 10 * ms, 16 << 20, buf, true, 2500 * time.Microsecond},
		{"a flood stops at the minimum", 10 * ms, 10 * ms, 60 << 20, buf, true, udpPollMin},
		// A small buffer (rmem_max without CAP_NET_ADMIN): 416 KiB, 26 KiB
		// a share; 4 MB/s (the benchmark's stream) fills it in 6.5 ms.
		{"small buffer", 5 * ms, 5 * ms, 20000, 425984, true, 6656 * time.Microsecond},
		// 100,000 bytes in a 50 ms sleep (a late wake-up): the share
		// fills in 13 ms at that rate, but a sleep at most doubles.
		{"a sleep that overran measures its length", 5 * ms, 50 * ms, 100000, 425984, true, 10 * ms},
		{"no measurement", 50 * ms, 50 * ms, 0, buf, false, udpPollStart},
	} {
		if got := nextSleep(c.cur, c.d, c.queued, c.rcvbuf, c.known); got != c.want {
			t.Errorf("%s: nextSleep(%v, %v, %d, %d) = %v, want %v", c.name, c.cur, c.d, c.queued, c.rcvbuf, got, c.want)
		}
	}
}

// udpTestReader listens on loopback with c and returns the socket's
// reader and a connection to it.
func udpTestReader(t *testing.T, ctx context.Context, c *Collector) (*pollReader, net.Conn) {
	t.Helper()
	addr, err := c.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c.sockets[0].rd.(*pollReader), conn
}

// TestIdleReaderWaits: a reader whose socket stays empty waits in the
// poller instead of looking every few milliseconds; a datagram ends the
// wait at once, and so does stopping the listener.
func TestIdleReaderWaits(t *testing.T) {
	g := newGate()
	close(g.open)
	c := New(g, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, conn := udpTestReader(t, ctx, c)
	waiting := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.waiter != nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatalf("an idle reader did not wait in the poller within 5 s (%d sleeps)", r.sleeps.Load())
		}
		time.Sleep(time.Millisecond)
	}
	sleeps := r.sleeps.Load()
	time.Sleep(500 * time.Millisecond) // an idle half second
	if n := r.sleeps.Load() - sleeps; n > 0 || !waiting() {
		t.Errorf("an idle reader slept %d times in half a second (waiting in the poller: %v)", n, waiting())
	}
	for round := 0; round < 2; round++ {
		for _, d := range udpDatagrams(t, ipfixtest.Random(uint64(8+round), 10)) {
			if _, err := conn.Write(d); err != nil {
				t.Fatal(err)
			}
		}
		want := int64(10 * (round + 1))
		for g.records.Load() < want {
			if time.Now().After(deadline.Add(5 * time.Second)) {
				t.Fatalf("round %d: %d records decoded, want %d: the idle wait did not end", round, g.records.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		// Back to the poller once the socket is empty again.
		for !waiting() {
			if time.Now().After(deadline.Add(10 * time.Second)) {
				t.Fatalf("round %d: the reader did not return to the poller", round)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if w := r.waits.Load(); w < 3 {
		t.Errorf("%d idle waits, want at least 3", w)
	}
	done := make(chan struct{})
	go func() { cancel(); c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stopping the listener did not end the reader's idle wait")
	}
}

// TestSteadyStreamFewWakeups: under a steady stream the reader's sleeps
// lengthen to what the socket buffer holds easily, so it wakes far less
// often than the datagrams arrive (a fixed 5 ms sleep woke it 200 times
// a second), and nothing is dropped.
func TestSteadyStreamFewWakeups(t *testing.T) {
	g := newGate()
	close(g.open)
	c := New(g, nil) // the default 32 MiB buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, conn := udpTestReader(t, ctx, c)
	if r.rcvbuf < 16<<20 {
		// A datagram here takes ~29 KB of the buffer (the kernel's
		// accounting): 400 a second fill a 2 MiB share in ~180 ms.
		peertest.Missing(t, "the socket buffer is capped at %d bytes (net.core.rmem_max; SO_RCVBUFFORCE needs CAP_NET_ADMIN)", r.rcvbuf)
	}
	dgrams := udpDatagrams(t, ipfixtest.Random(11, 400))
	const rate, n = 400, 600 // datagrams a second, sent
	start := time.Now()
	sent := 0
	for sent < n {
		// Paced: datagram i leaves at start + i/rate.
		if wait := time.Until(start.Add(time.Duration(sent) * time.Second / rate)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := conn.Write(dgrams[sent%len(dgrams)]); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	elapsed := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Messages < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d datagrams decoded", c.Stats().Messages, n)
		}
		time.Sleep(time.Millisecond)
	}
	sleeps := r.sleeps.Load()
	cancel()
	c.Wait()
	if st := c.Stats(); st.SocketDrops != 0 {
		t.Errorf("%d datagrams dropped", st.SocketDrops)
	}
	// At udpPollMax apart, elapsed/udpPollMax sleeps; the first ones are
	// shorter (udpPollStart, doubling).
	if limit := uint64(elapsed/udpPollMax) + 20; sleeps > limit {
		t.Errorf("%d sleeps over %v of a steady stream of %d datagrams a second, want at most %d", sleeps, elapsed.Round(time.Millisecond), rate, limit)
	}
	t.Logf("%d datagrams over %v: %d sleeps, %d idle waits", n, elapsed.Round(time.Millisecond), sleeps, r.waits.Load())
}
