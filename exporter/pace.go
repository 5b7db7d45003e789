package exporter

import (
	"errors"
	"time"
)

// DefaultUDPMessageSize caps UDP messages when Config.MTU is zero: the
// path MTU the kernel reports can be far larger than what collectors
// expect (65,536 on loopback; goflow2 reads datagrams into 9000-byte
// buffers, libfixbuf exports 1420-byte messages over UDP, softflowd
// 1428), and a receiver's socket buffer holds few 64 KiB datagrams.
const DefaultUDPMessageSize = 1400

// DefaultUDPRate is the pace of UDP export to a collector on another
// host when Config.UDPRate is zero, in bytes of IPFIX messages a
// second: about 64,000 flow records a second, so that the burst of a
// file replay, or of a live probe's table at shutdown, is not dropped
// by the collector's kernel. A collector on this host is paced by its
// socket's receive queue instead (see Config.UDPRate). Datagram
// transports only: TCP and TLS have flow control.
const DefaultUDPRate = 8_000_000

// DefaultUDPBurst is how many bytes may go back to back when the pace
// allows (Config.UDPBurst zero): 48 KiB, about 35 messages of
// DefaultUDPMessageSize, which a receive buffer of the kernel's default
// size (208 KiB, each datagram charged with its overhead) holds.
const DefaultUDPBurst = 48 << 10

// LivePaceWait is the Config.PaceMaxWait of a live probe: pacing holds
// its capture (the exporter is called by the flow-table workers) for at
// most this long in any second; past it messages go unpaced, counted
// in Stats.Unpaced. Replays (zero) wait as long as the pace needs.
const LivePaceWait = 250 * time.Millisecond

// queueReader reads the receive queue of the collector's socket (a
// collector on this host): the bytes queued as the kernel charges them,
// the buffer's size, and the datagrams it dropped. errNoPeer: no socket
// on this host receives the datagrams.
type queueReader interface {
	read() (queued, size, drops int, err error)
}

// errNoPeer: no socket on this host receives the datagrams.
var errNoPeer = errors.New("no local socket receives the datagrams")

// Receiver-queue pacing: a message goes while the collector's queue is
// under half its buffer; once over, the sender waits until it is under a
// quarter, reading it every peerPoll. Each message is charged twice its
// size and a kilobyte against the room last read (the kernel charges a
// datagram with its buffer's overhead: about 2.3 KB for 1400 bytes on
// loopback), and the queue is read again when the room is spent.
// A receiver whose queue does not shrink for peerStall is taken as
// stuck: the message goes, and the rate paces until it is read again
// peerRecheck later.
const (
	peerPoll     = 500 * time.Microsecond
	peerRecheck  = time.Second // how often to look for a local receiver again
	peerStall    = 2 * time.Second
	peerOverhead = 1024
)

// pacer spaces the messages of a datagram transport. To a collector on
// this host whose socket's queue it can read it sends while that queue
// has room; otherwise (and also there when a rate was configured) by a
// token bucket filled at rate bytes a second, holding at most burst
// bytes: a message takes its size in tokens, and when the bucket runs
// short the sender sleeps until it is paid. With maxWait set, it waits
// at most that long in any one-second window and sends the rest at
// once.
type pacer struct {
	rate    float64 // bytes a second
	rateSet bool    // configured: applies to a local receiver too
	burst   float64
	maxWait time.Duration // per window; 0: unbounded

	tokens float64
	last   time.Time
	win    time.Time     // start of the current window
	waited time.Duration // waited in the current window

	// peer reads the local receiver's queue (nil: none can be read);
	// local says the last read found it, and credit is the room left
	// from that read. Without it, next is when to look again.
	peer   queueReader
	local  bool
	credit int
	next   time.Time

	// now and sleep are the clock (time.Now, time.Sleep); tests set
	// them.
	now   func() time.Time
	sleep func(time.Duration)
}

// newPacer returns a pacer at rate bytes a second (zero: DefaultUDPRate,
// to a receiver whose queue peer cannot read).
func newPacer(rate, burst int, maxWait time.Duration, peer queueReader) *pacer {
	p := &pacer{rate: float64(rate), rateSet: rate > 0, burst: float64(burst), maxWait: maxWait, peer: peer, now: time.Now, sleep: time.Sleep}
	if !p.rateSet {
		p.rate = DefaultUDPRate
	}
	p.tokens = p.burst
	return p
}

// take waits, if the pace requires, before a message of n bytes goes
// out. It returns how long it waited, and unpaced when the message goes
// without the wait it needed (maxWait spent).
func (p *pacer) take(n int) (waited time.Duration, unpaced bool) {
	start := p.now()
	if p.peer != nil && (p.local || !start.Before(p.next)) {
		unpaced = p.byQueue(n)
	}
	if !p.local || p.rateSet {
		unpaced = p.byRate(n) || unpaced
	}
	return p.now().Sub(start), unpaced
}

// byQueue waits until the local receiver's queue has room for n bytes.
func (p *pacer) byQueue(n int) (unpaced bool) {
	p.credit -= 2*n + peerOverhead
	if p.local && p.credit >= 0 {
		return false
	}
	var last int
	var since time.Time // when the queue last shrank
	for waiting := false; ; waiting = true {
		q, size, _, err := p.peer.read()
		if err != nil {
			// No receiver here (a collector on another host, or
			// not started yet): the rate paces, and the receiver is
			// looked for again later. Any other error: the queue
			// cannot be read, so never again.
			p.local, p.credit = false, 0
			p.next = p.now().Add(peerRecheck)
			if !errors.Is(err, errNoPeer) {
				p.peer = nil
			}
			return false
		}
		p.local = true
		if q < size/2 && (!waiting || q <= size/4) {
			p.credit = size/2 - q - 2*n - peerOverhead
			return false
		}
		now := p.now()
		if !waiting || q < last {
			since = now
		}
		last = q
		if now.Sub(since) >= peerStall {
			// Stuck (or stopped without closing its socket): waiting
			// would hold the export for ever.
			p.local, p.credit, p.next = false, 0, now.Add(peerRecheck)
			return true
		}
		if !p.spend(peerPoll) {
			p.credit = 0
			return true
		}
		p.sleep(peerPoll)
	}
}

// byRate takes n bytes from the token bucket, sleeping until they are
// paid.
func (p *pacer) byRate(n int) (unpaced bool) {
	now := p.now()
	if !p.last.IsZero() {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	}
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return false
	}
	d := time.Duration(-p.tokens / p.rate * float64(time.Second))
	if !p.spend(d) {
		// The wait budget is spent: send now, owing nothing (a
		// debt would only hold the next window up).
		p.tokens = 0
		return true
	}
	p.sleep(d)
	// The bucket was paid by the sleep; the clock says by how much
	// more (a sleep overruns).
	after := p.now()
	p.tokens = min(p.burst, p.tokens+after.Sub(now).Seconds()*p.rate)
	p.last = after
	return false
}

// spend says whether d more of waiting fits this window's budget
// (maxWait), and counts it.
func (p *pacer) spend(d time.Duration) bool {
	if p.maxWait <= 0 {
		return true
	}
	now := p.now()
	if now.Sub(p.win) >= time.Second {
		p.win, p.waited = now, 0
	}
	if p.waited+d > p.maxWait {
		return false
	}
	p.waited += d
	return true
}

// unbound lifts maxWait (a live probe that stops: its capture no longer
// waits on the export).
func (p *pacer) unbound() { p.maxWait = 0 }
