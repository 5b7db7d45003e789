package exporter

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a pacer's clock: sleeping advances it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) sleep(d time.Duration)   { c.t = c.t.Add(d) }
func (c *fakeClock) install(p *pacer) *pacer { p.now, p.sleep = c.now, c.sleep; return p }

// fakeReceiver is a collector's socket on this host, read in fake time:
// it drains rate bytes a second (as the kernel charges them), holds at
// most size and counts what did not fit as drops.
type fakeReceiver struct {
	clock       *fakeClock
	rate        float64
	size        int
	queued      float64
	drops       int
	last        time.Time
	reads       int
	maxQueued   float64
	missing     bool // no socket receives: errNoPeer
	unreadable  bool // some other error
	missingRead int
}

func (r *fakeReceiver) drain() {
	now := r.clock.now()
	if !r.last.IsZero() {
		r.queued = max(0, r.queued-now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
}

func (r *fakeReceiver) read() (int, int, int, error) {
	r.reads++
	switch {
	case r.missing:
		r.missingRead++
		return 0, 0, 0, errNoPeer
	case r.unreadable:
		return 0, 0, 0, errors.New("netlink broke")
	}
	r.drain()
	return int(r.queued), r.size, r.drops, nil
}

// deliver is a datagram of n bytes arriving (charged as loopback does).
func (r *fakeReceiver) deliver(n int) {
	r.drain()
	c := float64(n) + 900
	if r.queued+c > float64(r.size) {
		r.drops++
		return
	}
	r.queued += c
	r.maxQueued = max(r.maxQueued, r.queued)
}

// TestPacerRate: to a receiver whose queue cannot be read, messages go
// at the rate after the first burst, and the time waited is what the
// rate asks.
func TestPacerRate(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	p := c.install(newPacer(10000, 5000, 0, nil))
	var waited time.Duration
	for i := 0; i < 100; i++ {
		w, unpaced := p.take(1000)
		if unpaced {
			t.Fatal("unpaced without a wait bound")
		}
		waited += w
	}
	// 100,000 bytes, 5000 of them in the first burst, at 10,000 B/s.
	if want := 9500 * time.Millisecond; waited != want || c.t.Sub(time.Unix(1000, 0)) != want {
		t.Fatalf("waited %v (clock %v), want %v", waited, c.t.Sub(time.Unix(1000, 0)), want)
	}
	// Idle for a while, the bucket fills up to the burst, no more.
	c.sleep(time.Hour)
	for i := 0; i < 5; i++ {
		if w, _ := p.take(1000); w != 0 {
			t.Fatalf("message %d of a full bucket waited %v", i, w)
		}
	}
	if w, _ := p.take(1000); w != 100*time.Millisecond {
		t.Fatalf("message past the burst waited %v, want 100ms", w)
	}
}

// TestPacerMaxWait: with a wait bound (a live capture), pacing waits at
// most that long in any second and sends the rest unpaced, and
// unbound lifts it.
func TestPacerMaxWait(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	p := c.install(newPacer(10000, 1000, 250*time.Millisecond, nil))
	var waited time.Duration
	unpaced := 0
	// A burst of 20 messages of 1000 bytes: 1.9 s of pace, 0.25 s
	// allowed.
	for i := 0; i < 20; i++ {
		w, u := p.take(1000)
		waited += w
		if u {
			unpaced++
		}
	}
	// The first message is the burst, the next two wait 100 ms each;
	// the third wait would pass 250 ms.
	if waited != 200*time.Millisecond || unpaced != 17 {
		t.Fatalf("waited %v with %d unpaced, want 200ms and 17", waited, unpaced)
	}
	// A new second, a new budget.
	c.sleep(time.Second)
	if w, u := p.take(1000); w != 0 || u {
		t.Fatalf("after a second: waited %v unpaced %v", w, u)
	}
	p.unbound()
	waited, unpaced = 0, 0
	for i := 0; i < 20; i++ {
		w, u := p.take(1000)
		waited += w
		if u {
			unpaced++
		}
	}
	if waited != 2*time.Second || unpaced != 0 {
		t.Fatalf("unbound: waited %v with %d unpaced, want 2s and 0", waited, unpaced)
	}
}

// TestPacerQueue: to a collector on this host that drains slowly, a
// burst of messages waits on its receive queue: nothing is dropped,
// the queue stays under its buffer, the rate is not applied on top
// (the collector drains faster than DefaultUDPRate here) and the queue
// is not read for every message.
func TestPacerQueue(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	r := &fakeReceiver{clock: c, rate: 50e6, size: 212992}
	p := c.install(newPacer(0, DefaultUDPBurst, 0, r))
	const msgs, size = 30000, 1400
	for i := 0; i < msgs; i++ {
		if _, u := p.take(size); u {
			t.Fatal("unpaced without a wait bound")
		}
		r.deliver(size)
	}
	if r.drops != 0 || r.maxQueued > float64(r.size) {
		t.Fatalf("receiver dropped %d datagrams (queue up to %.0f of %d)", r.drops, r.maxQueued, r.size)
	}
	// 30,000 datagrams charged 2300 bytes each at 50 MB/s: 1.38 s,
	// much faster than DefaultUDPRate's 5.25 s.
	el := c.t.Sub(time.Unix(1000, 0))
	if el < 1300*time.Millisecond || el > 1600*time.Millisecond {
		t.Fatalf("the burst took %v, want about 1.38 s (the receiver's pace)", el)
	}
	// Read while waiting (every peerPoll) and after each resume, when
	// the room read is spent (about 14 messages charged 3824 bytes in a
	// quarter of the buffer).
	if r.reads > msgs/3 {
		t.Fatalf("the queue was read %d times for %d messages", r.reads, msgs)
	}

	// Without the pacer the same burst overflows the buffer.
	c2 := &fakeClock{t: time.Unix(1000, 0)}
	r2 := &fakeReceiver{clock: c2, rate: 50e6, size: 212992}
	for i := 0; i < msgs; i++ {
		c2.sleep(5 * time.Microsecond) // a send
		r2.deliver(size)
	}
	if r2.drops == 0 {
		t.Fatal("the unpaced burst dropped nothing: the test shows nothing")
	}
}

// TestPacerNoLocalReceiver: when no socket on this host receives (a
// remote collector) the rate paces, and the receiver is looked for again
// once a second, not for every message; an unreadable queue is given
// up.
func TestPacerNoLocalReceiver(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	r := &fakeReceiver{clock: c, rate: 1e9, size: 212992, missing: true}
	p := c.install(newPacer(0, 1400, 0, r))
	for i := 0; i < 2*DefaultUDPRate/1400; i++ {
		p.take(1400)
	}
	// Two seconds at DefaultUDPRate, less the first burst.
	if el := c.t.Sub(time.Unix(1000, 0)); el < 1990*time.Millisecond || el > 2*time.Second {
		t.Fatalf("took %v at DefaultUDPRate, want 2s", el)
	}
	if r.missingRead < 2 || r.missingRead > 3 {
		t.Fatalf("looked for a local receiver %d times in 2 s, want 2 or 3", r.missingRead)
	}
	// It appears: paced by its queue from the next look on, as fast as
	// it drains.
	r.missing = false
	c.sleep(time.Second)
	start := c.t
	for i := 0; i < 1000; i++ {
		p.take(1400)
		r.deliver(1400)
	}
	// 2.3 MB at 1 GB/s, read every peerPoll while waiting; at
	// DefaultUDPRate 175 ms.
	if el := c.t.Sub(start); el > 50*time.Millisecond {
		t.Fatalf("1000 messages to a fast local receiver took %v", el)
	}
	// Unreadable: the rate again, and no more reads.
	r.unreadable = true
	p.credit = -1
	p.take(1400)
	reads := r.reads
	for i := 0; i < 1000; i++ {
		p.take(1400)
	}
	if p.peer != nil || r.reads != reads {
		t.Fatalf("unreadable queue still read (%d reads after giving up)", r.reads-reads)
	}
}

// TestPacerConfiguredRate: a configured rate applies to a local
// receiver too.
func TestPacerConfiguredRate(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	r := &fakeReceiver{clock: c, rate: 1e9, size: 212992}
	p := c.install(newPacer(100000, 1000, 0, r))
	for i := 0; i < 101; i++ {
		p.take(1000)
		r.deliver(1000)
	}
	if el := c.t.Sub(time.Unix(1000, 0)); el != time.Second {
		t.Fatalf("101 messages of 1000 bytes at 100 kB/s (1000 burst) took %v, want 1s", el)
	}
}

// TestPacerStuckReceiver: a local receiver that stops reading holds a
// message peerStall at most, then the rate paces until it is looked at
// again.
func TestPacerStuckReceiver(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	r := &fakeReceiver{clock: c, rate: 0, size: 212992}
	p := c.install(newPacer(0, 1400, 0, r))
	start := c.t
	stuck := 0
	for i := 0; i < 200; i++ {
		if _, u := p.take(1400); u {
			stuck++
		}
		r.deliver(1400)
	}
	// Half the buffer fills (about 46 datagrams), one message waits
	// 2 s, then 8 MB/s for the rest; then it is read again once a
	// second (and found full).
	if stuck < 1 || stuck > 2 {
		t.Fatalf("%d messages sent for a stuck receiver, want 1 or 2", stuck)
	}
	if el := c.t.Sub(start); el < peerStall || el > peerStall+peerRecheck+100*time.Millisecond {
		t.Fatalf("200 messages to a stuck receiver took %v", el)
	}
}
