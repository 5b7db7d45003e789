package collector

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// Origin says where records came from.
type Origin struct {
	Exporter  netip.AddrPort
	Domain    uint32
	Transport string // "udp", "tcp", or what ServeStream's caller set
	// Sequence is the sequence number of the message the records came
	// in (that of its first data record); Instance is the domain's
	// spool instance when the exporter announced one
	// (ipfix.SpoolOptionsTemplate), else 0. Records of an announced
	// instance are identified by (Exporter address, Domain, Instance,
	// sequence number), which lets a consumer drop replayed duplicates.
	Sequence uint32
	Instance uint64
	// Next is the sequence number the message's domain expects after
	// it, when SeqKnown (false: the message could not be counted, the
	// session resynchronises); Lost is the records its session counted
	// lost (a sequence gap) just before it.
	Next     uint32
	SeqKnown bool
	Lost     uint32
	// Seeded: Lost was counted at the session's first message of the
	// domain against the position earlier sessions left
	// (SequenceConsumer): lost between transport sessions.
	Seeded bool
}

// SequenceConsumer is implemented by a Consumer that keeps exporters'
// sequence positions across transport sessions (TCP reconnects,
// collector restarts), so that records lost between two sessions are
// counted as sequence gaps within one are (ipfix.Session.Seed).
// NextSequence is asked when a session first meets an observation
// domain (o.Exporter and o.Domain set, o.Transport the session's);
// Sequenced gets the sequence accounting (o.Next, o.SeqKnown, o.Lost)
// of each message that handed no records over (Consume and ConsumeBatch
// carry it for the others).
type SequenceConsumer interface {
	NextSequence(o Origin) (next uint32, ok bool)
	Sequenced(o Origin)
}

// Consumer receives decoded flow records.
type Consumer interface {
	Consume(o Origin, recs []flow.Record)
}

// OptionsConsumer is implemented by a Consumer that wants each domain's
// options (sampling configuration, aggregate names) when they change.
// They are handed over before the records of the message that carried
// them.
type OptionsConsumer interface {
	ConsumeOptions(o Origin, opts ipfix.DomainOptions)
}

// StreamConsumer is implemented by a Consumer that wants to know when a
// TCP or TLS exporter's connection has ended (EOF, error or shutdown).
// StreamEnd is called after the last records of the connection were
// handed over and before the collector closes its end of the
// connection: an exporter that waits for the collector to close (as
// MIRA's does in Close) thus knows that StreamEnd has returned, so a
// consumer that commits its records there makes them durable by the
// time the exporter exits. When the stream ended cleanly (the exporter
// closed its side after whole messages) and StreamEnd returns nil, the
// collector writes one empty IPFIX message (StoredAck) back before it
// closes: MIRA's spooling exporter takes it as proof that its records are
// stored (a collector killed after reading everything would close the
// connection just the same way); other exporters never read it.
type StreamConsumer interface {
	StreamEnd(o Origin) error
}

// StoredAck is the message a collector writes back on a stream whose
// records its StreamConsumer stored: an IPFIX header without sets,
// domain 0, sequence 0.
func StoredAck(now time.Time) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(now.Unix())})
	ipfix.FinishMessage(b)
	return b
}

// Batch holds one message's records in a consumer's own form (a store's
// record encoding), filled while the message is decoded. Add must copy
// what it keeps of r: r, its Symptoms and its App strings are valid only
// during the call (ipfix.Session.DecodeEach).
type Batch interface {
	Add(r *flow.Record)
	Len() int
	Reset()
}

// BatchConsumer is a Consumer that takes each message's records in a
// Batch of its own, filled as they are decoded, instead of as a slice of
// flow.Records: a consumer that only stores them never holds them
// decoded. NewBatch is called once per session; a nil Batch makes the
// session use Consume. ConsumeBatch gets the records of one message with
// the same Origin Consume would, in the same order; the collector empties
// the batch once it returns.
type BatchConsumer interface {
	Consumer
	NewBatch() Batch
	ConsumeBatch(o Origin, b Batch)
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(o Origin, recs []flow.Record)

// Consume calls f.
func (f ConsumerFunc) Consume(o Origin, recs []flow.Record) { f(o, recs) }

// Config configures a Collector; the zero value means defaults.
type Config struct {
	// PEN is MIRA's enterprise number (ipfix.DefaultPEN).
	PEN uint32
	// ReadBuffer is the UDP socket receive buffer (default 32 MiB). It
	// absorbs bursts while the decoder or the store is busy; beyond
	// net.core.rmem_max it needs CAP_NET_ADMIN (SO_RCVBUFFORCE).
	ReadBuffer int
	// UDPSessionTimeout forgets UDP exporters idle this long (default 30m).
	UDPSessionTimeout time.Duration
	// Now returns the time (time.Now).
	Now func() time.Time
	// Limits on the state kept for exporters (0: the default). A session
	// (one UDP exporter address:port, one TCP/TLS connection, one
	// stream) keeps at most MaxSessionTemplates templates (default 2048)
	// and the state of at most MaxSessionDomains observation domains
	// (default 64: sequence numbers, options, names), least recently
	// used evicted first. All sessions together keep at most
	// MaxTemplates templates (default 16384; a template of 60 fields
	// takes 2-3 KB of heap, twice that in resident memory): beyond it
	// the least recently active UDP exporters lose their least recently
	// used templates, or, with none, the session that learnt one. At most
	// MaxUDPSessions UDP exporters (default 1024) have state: a new one
	// evicts the least recently active. UDP templates not received again
	// within TemplateLifetime (default 30m, three times the usual
	// 10-minute refresh; RFC 7011 §8.4) expire. Every eviction is
	// counted (Stats).
	// MaxConnections bounds the TCP and TLS connections served at once
	// (default 512; each holds about 330 KB of buffers): more are closed
	// at once and counted (Stats.Malformed["too-many-connections"]).
	MaxConnections      int
	MaxSessionTemplates int
	MaxSessionDomains   int
	MaxTemplates        int
	MaxUDPSessions      int
	TemplateLifetime    time.Duration
	// Allow, when not empty, lists the exporters whose input is
	// accepted (by source address); messages and connections from any
	// other address are dropped and counted (Stats.Malformed
	// ["exporter-not-allowed"]).
	Allow []netip.Prefix
	// Logger receives a warning for every refused TLS handshake and
	// for input from exporters not in Allow, with the peer's address
	// (at most one a minute per address and reason; nil: no logging).
	Logger *slog.Logger
}

// Stats are the collector's counters, summed over live and past sessions.
type Stats struct {
	Messages       uint64
	Records        uint64 // flow records handed to the Consumer
	DataRecords    uint64 // data records decoded (options included)
	OptionsRecords uint64
	LostRecords    uint64 // sequence-number gaps, in records
	OutOfOrder     uint64
	// SeededLost is the part of LostRecords counted at the start of a
	// session against the position earlier sessions left
	// (SequenceConsumer); SeqRestarts counts sessions that started behind
	// it (a restarted exporter, a spool's replay).
	SeededLost  uint64
	SeqRestarts uint64
	// SharedDomains counts sessions that sent under an observation
	// domain another session from the same address was sending under at
	// the same time (TCP and TLS: both live; UDP: both sent since the
	// other did): two exporters configured with one domain, whose records
	// are taken as one probe's, summed rather than deduplicated, and
	// their sequence numbers mixed. Each is logged.
	SharedDomains uint64
	// ClockSkewed counts sessions whose exporter's clock, by the export
	// times of its messages, was more than MaxExporterSkew away from the
	// collector's (ahead, or behind in every message of a 10 s period):
	// its records' times are off by as much, and two probes whose clocks
	// differ by more than the consolidation's Skew (5 s) do not see each
	// other's duplicates of short connections. Each is logged.
	ClockSkewed        uint64
	TemplatesLearned   uint64
	TemplatesRedefined uint64
	TemplatesWithdrawn uint64
	Templates          int // templates currently known
	// TemplatesEvicted counts templates dropped to stay within the
	// limits (Config.MaxSessionTemplates, MaxTemplates, MaxUDPSessions),
	// TemplatesExpired UDP templates not refreshed within
	// Config.TemplateLifetime, DomainsEvicted domain states dropped
	// (Config.MaxSessionDomains), SessionsEvicted UDP exporters forgotten
	// (Config.MaxUDPSessions).
	TemplatesEvicted uint64
	TemplatesExpired uint64
	DomainsEvicted   uint64
	SessionsEvicted  uint64
	Sessions         int // live sessions
	SessionsTotal    uint64
	ReadErrors       uint64
	// SocketDrops counts datagrams the kernel dropped on the UDP sockets
	// because their receive buffers were full (Linux; 0 elsewhere).
	SocketDrops uint64
	// Malformed counts bad input by reason (ipfix.Reason names, plus
	// "stream-framing" for byte streams that lost message framing,
	// "tls-handshake" for TLS connections refused in the handshake,
	// "exporter-not-allowed" for input from exporters not in Config.Allow).
	Malformed map[string]uint64
}

type domainOptions struct {
	domain uint32
	opts   ipfix.DomainOptions
}

type session struct {
	mu     sync.Mutex
	s      *ipfix.Session
	recs   []flow.Record
	batch  Batch              // BatchConsumer's batch, nil: records go to Consume
	add    func(*flow.Record) // batch.Add, bound once
	opts   []domainOptions    // options changed by the message being decoded
	origin Origin
	last   time.Time
	// domains are the observation domains a TCP or TLS session sent
	// under (Collector.shared); the goroutine serving the stream changes
	// it, under c.mu.
	domains []uint32
	// The exporter's clock: lagMin is the least arrival less export time
	// (s) of the messages since lagFrom (lagN of them); skewed is set once
	// the session was counted as ClockSkewed.
	lagMin  int64
	lagFrom time.Time
	lagN    int
	skewed  bool
	// UDP: the domains the session sent under since udpChecked (ss.mu),
	// and when it last compared them with the other sessions' (udpSeen);
	// udpKnown are the domains it compared before (c.mu).
	udpDomains []uint32
	udpChecked time.Time
	udpKnown   []uint32
	udpShared  bool // counted in sharedDomains (c.mu)
}

// udpSender is the UDP session that last said it sent under an address
// and domain (Collector.udpSeen), and when.
type udpSender struct {
	ss *session
	at time.Time
}

// udpCheckEvery is how often a UDP session compares the domains it sent
// under with the other sessions of its address; udpMaxDomains bounds
// the domains per session compared (and the Collector.udpSeen entries a
// session makes: they go with the session, so a flood of exporters or
// domains keeps no more than the sessions the limits keep).
const (
	udpCheckEvery = time.Second
	udpMaxDomains = 16
)

// MaxExporterSkew is how far an exporter's clock may be from the
// collector's before the collector says so (Stats.ClockSkewed), the
// consolidation's default Skew.
const MaxExporterSkew = 5 * time.Second

// lagPeriod is how long the least lag of an exporter's messages is taken
// over: transit and queueing delays only add to it, so one message
// that arrived promptly in the period shows a clock that is not behind.
const lagPeriod = 10 * time.Second

// clockSkew notes the export time of a message of ss that arrived at now
// and returns the exporter's clock offset (s, positive: ahead) when it
// shows a clock off by more than MaxExporterSkew for the first time in
// the session; ss.mu held.
func (ss *session) clockSkew(export uint32, now time.Time) (int64, bool) {
	if ss.skewed || export == 0 {
		return 0, false
	}
	lag := now.Unix() - int64(export)
	limit := int64(MaxExporterSkew / time.Second)
	if lag < -limit { // ahead: no delay makes a message arrive before it was sent
		ss.skewed = true
		return -lag, true
	}
	if ss.lagN == 0 || lag < ss.lagMin {
		ss.lagMin = lag
	}
	if ss.lagN == 0 {
		ss.lagFrom = now
	}
	ss.lagN++
	if now.Sub(ss.lagFrom) < lagPeriod {
		return 0, false
	}
	least, n := ss.lagMin, ss.lagN
	ss.lagN = 0
	if n >= 3 && least > limit {
		ss.skewed = true
		return -least, true
	}
	return 0, false
}

// sharedKey is an exporter address and an observation domain.
type sharedKey struct {
	a      netip.Addr
	domain uint32
}

// Collector is an IPFIX collecting process.
type Collector struct {
	c   Consumer
	cfg Config

	mu       sync.Mutex
	udp      map[netip.AddrPort]*session
	streams  map[*session]struct{}
	retired  ipfix.SessionStats
	total    uint64
	readErrs uint64
	framing  uint64
	// handshakes counts TLS connections whose handshake failed.
	handshakes uint64
	// refused counts messages and connections from exporters not in
	// Config.Allow.
	refused   uint64
	lastSweep time.Time
	sockets   []*udpSocket
	// templates counts the templates of all sessions; evictedSessions
	// the UDP sessions forgotten for MaxUDPSessions, and droppedTemplates
	// the templates they held.
	templates        atomic.Int64
	conns            atomic.Int64 // TCP and TLS connections being served
	connsRefused     atomic.Uint64
	evictedSessions  uint64
	droppedTemplates uint64
	// logged rate-limits the refusal warnings (Config.Logger).
	logged refusalLog
	// shared holds, per address and observation domain, the TCP or TLS
	// session sending under it; sharedDomains counts the sessions that
	// found another there.
	shared        map[sharedKey]*session
	udpSeen       map[sharedKey]udpSender
	sharedDomains uint64
	clockSkewed   uint64

	// wg counts the goroutines of ListenUDP and ListenTCP (listeners,
	// decoders, connections).
	wg sync.WaitGroup
}

// New returns a Collector handing records to c.
func New(c Consumer, cfg *Config) *Collector {
	var d Config
	if cfg != nil {
		d = *cfg
	}
	if d.PEN == 0 {
		d.PEN = ipfix.DefaultPEN
	}
	if d.ReadBuffer <= 0 {
		d.ReadBuffer = 32 << 20
	}
	if d.UDPSessionTimeout <= 0 {
		d.UDPSessionTimeout = 30 * time.Minute
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MaxConnections <= 0 {
		d.MaxConnections = 512
	}
	if d.MaxSessionTemplates <= 0 {
		d.MaxSessionTemplates = 2048
	}
	if d.MaxSessionDomains <= 0 {
		d.MaxSessionDomains = 64
	}
	if d.MaxTemplates <= 0 {
		d.MaxTemplates = 16384
	}
	if d.MaxUDPSessions <= 0 {
		d.MaxUDPSessions = 1024
	}
	if d.TemplateLifetime <= 0 {
		d.TemplateLifetime = 30 * time.Minute
	}
	return &Collector{c: c, cfg: d, udp: map[netip.AddrPort]*session{}, streams: map[*session]struct{}{}, shared: map[sharedKey]*session{}, udpSeen: map[sharedKey]udpSender{}}
}

func (c *Collector) newSession(o Origin) *session {
	s := ipfix.NewSession(o.Transport + " " + o.Exporter.String())
	s.PEN = c.cfg.PEN
	s.UDP = o.Transport == "udp"
	s.MaxTemplates, s.MaxDomains, s.Now = c.cfg.MaxSessionTemplates, c.cfg.MaxSessionDomains, c.cfg.Now
	if s.UDP {
		s.TemplateLifetime = c.cfg.TemplateLifetime
	}
	c.total++
	ss := &session{s: s, origin: o}
	if bc, ok := c.c.(BatchConsumer); ok {
		if b := bc.NewBatch(); b != nil {
			ss.batch, ss.add = b, b.Add
		}
	}
	if sc, ok := c.c.(SequenceConsumer); ok {
		s.Seed = func(d uint32) (uint32, bool) {
			oo := o
			oo.Domain = d
			return sc.NextSequence(oo)
		}
	}
	if _, ok := c.c.(OptionsConsumer); ok {
		s.OnOptions = func(d uint32, opts ipfix.DomainOptions) {
			ss.opts = append(ss.opts, domainOptions{d, opts})
		}
	}
	return ss
}

// maxKeptRecords bounds the record buffer a session keeps between
// messages (a MIRA message holds at most about 1300 records).
const maxKeptRecords = 4096

// decode decodes one message of a session and hands its records over.
func (c *Collector) decode(ss *session, msg []byte) error {
	ss.mu.Lock()
	before := ss.s.Templates()
	var (
		recs  []flow.Record
		h     ipfix.Header
		err   error
		batch = ss.batch
	)
	if batch != nil {
		h, err = ss.s.DecodeEach(msg, ss.add)
	} else {
		recs, h, err = ss.s.Decode(msg, ss.recs[:0])
		ss.recs = recs
		if cap(recs) > maxKeptRecords {
			// A message of thousands of tiny records (hostile templates)
			// would keep its buffer for the session's life: let it go.
			ss.recs = nil
		}
	}
	grown := ss.s.Templates() - before
	o := ss.origin
	o.Domain = h.Domain
	stream := o.Transport == "tcp" || o.Transport == "tls"
	o.Sequence = h.Sequence
	o.Next, o.Lost, o.SeqKnown = ss.s.Sequence()
	o.Seeded = ss.s.SequenceSeeded()
	var offset int64
	skewed := false
	var udpCheck []uint32
	var now time.Time
	if o.Transport != "file" && h.Length != 0 {
		now = c.cfg.Now()
		offset, skewed = ss.clockSkew(h.ExportTime, now)
		if o.Transport == "udp" {
			if !slices.Contains(ss.udpDomains, h.Domain) {
				ss.udpDomains = append(ss.udpDomains, h.Domain)
			}
			if now.Sub(ss.udpChecked) >= udpCheckEvery {
				udpCheck = slices.Clone(ss.udpDomains)
				ss.udpDomains, ss.udpChecked = ss.udpDomains[:0], now
			}
		}
	}
	if do, ok := ss.s.DomainOptions(h.Domain); ok {
		o.Instance = do.SpoolInstance
	}
	var opts []domainOptions
	if len(ss.opts) > 0 {
		opts = append(opts, ss.opts...)
		ss.opts = ss.opts[:0]
	}
	ss.mu.Unlock()
	if stream && h.Length != 0 {
		c.noteDomain(ss, h.Domain)
	}
	if len(udpCheck) > 0 {
		c.checkUDPDomains(ss, udpCheck, now)
	}
	if skewed {
		c.mu.Lock()
		c.clockSkewed++
		n := c.clockSkewed
		log := c.logged.due(o.Exporter.Addr(), reasonClockSkew, c.cfg.Now())
		c.mu.Unlock()
		if log && c.cfg.Logger != nil {
			c.cfg.Logger.Warn("exporter clock off: its messages' export times are off the collector's clock, and its records' times as much; probes whose clocks differ by more than 5 s count the short connections they both see twice (set the probes' clocks by NTP)",
				"exporter", o.Exporter.String(), "transport", o.Transport, "domain", o.Domain, "offset_seconds", offset, "skewed_total", n)
		}
	}
	if grown != 0 && c.templates.Add(int64(grown)) > int64(c.cfg.MaxTemplates) {
		c.shed(ss)
	}
	if oc, ok := c.c.(OptionsConsumer); ok {
		for _, x := range opts {
			oo := o
			oo.Domain = x.domain
			oc.ConsumeOptions(oo, x.opts)
		}
	}
	handed := false
	if batch != nil {
		if n := batch.Len(); n > 0 {
			handed = true
			c.c.(BatchConsumer).ConsumeBatch(o, batch)
			batch.Reset()
			if n > maxKeptRecords {
				// As ss.recs above: a hostile message's batch is not
				// kept for the session's life.
				ss.mu.Lock()
				if nb := c.c.(BatchConsumer).NewBatch(); nb != nil {
					ss.batch, ss.add = nb, nb.Add
				}
				ss.mu.Unlock()
			}
		}
	} else if len(recs) > 0 {
		handed = true
		c.c.Consume(o, recs)
	}
	if sc, ok := c.c.(SequenceConsumer); ok && !handed && h.Length != 0 {
		// (A message whose header did not parse names no domain.)
		sc.Sequenced(o)
	}
	return err
}

// noteDomain notes that stream session ss sends under domain d, and
// counts and logs it when another live session from the same address
// does too.
func (c *Collector) noteDomain(ss *session, d uint32) {
	// Only the goroutine serving the stream changes ss.domains (here and
	// in forgetDomains as it ends): a message of a known domain, the
	// common case, reads them without the collector's lock.
	if slices.Contains(ss.domains, d) {
		return
	}
	c.mu.Lock()
	ss.domains = append(ss.domains, d)
	k := sharedKey{ss.origin.Exporter.Addr(), d}
	other, ok := c.shared[k]
	if !ok {
		c.shared[k] = ss
		c.mu.Unlock()
		return
	}
	c.sharedDomains++
	n := c.sharedDomains
	log := c.logged.due(k.a, reasonSharedDomain, c.cfg.Now())
	c.mu.Unlock()
	if log && c.cfg.Logger != nil {
		c.cfg.Logger.Warn("two exporters at one address send under the same observation domain at once: their records are taken as one probe's (summed, not deduplicated; sampling and sequence numbers mixed); give each its own domain (mira-probe --domain)",
			"exporter", k.a.String(), "domain", d, "ports", fmt.Sprintf("%d,%d", other.origin.Exporter.Port(), ss.origin.Exporter.Port()), "shared_total", n)
	}
}

// checkUDPDomains compares the domains UDP session ss sent under lately
// with the other sessions of its address: when another said it sent
// under one of them since ss last did, both send at once (an exporter
// restarted from another port stops sending first), which is counted
// and logged as for streams (noteDomain).
func (c *Collector) checkUDPDomains(ss *session, domains []uint32, now time.Time) {
	c.mu.Lock()
	var shared []sharedKey
	var port uint16
	for _, d := range domains {
		k := sharedKey{ss.origin.Exporter.Addr(), d}
		last, ok := c.udpSeen[k]
		if ok && last.ss != ss && slices.Contains(ss.udpKnown, d) && !last.ss.udpShared {
			shared = append(shared, k)
			port = last.ss.origin.Exporter.Port()
			last.ss.udpShared, ss.udpShared = true, true
		}
		if !slices.Contains(ss.udpKnown, d) {
			if len(ss.udpKnown) >= udpMaxDomains {
				continue // (a probe uses one domain or a few)
			}
			ss.udpKnown = append(ss.udpKnown, d)
		}
		c.udpSeen[k] = udpSender{ss, now}
	}
	c.sharedDomains += uint64(len(shared))
	n := c.sharedDomains
	log := len(shared) > 0 && c.logged.due(ss.origin.Exporter.Addr(), reasonSharedDomain, now)
	c.mu.Unlock()
	if log && c.cfg.Logger != nil {
		c.cfg.Logger.Warn("two exporters at one address send under the same observation domain at once: their records are taken as one probe's (summed, not deduplicated; sampling and sequence numbers mixed); give each its own domain (mira-probe --domain)",
			"exporter", shared[0].a.String(), "domain", shared[0].domain, "ports", fmt.Sprintf("%d,%d", port, ss.origin.Exporter.Port()), "transport", "udp", "shared_total", n)
	}
}

// forgetDomains releases the domains stream session ss held; c.mu held.
func (c *Collector) forgetDomains(ss *session) {
	for _, d := range ss.domains {
		k := sharedKey{ss.origin.Exporter.Addr(), d}
		if c.shared[k] == ss {
			delete(c.shared, k)
		}
	}
}

func (c *Collector) udpSession(from netip.AddrPort) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if now.Sub(c.lastSweep) > time.Minute {
		c.lastSweep = now
		for k, s := range c.udp {
			if now.Sub(s.last) > c.cfg.UDPSessionTimeout {
				c.retire(s)
				delete(c.udp, k)
				continue
			}
			s.mu.Lock()
			n := s.s.Expire(now)
			s.mu.Unlock()
			c.templates.Add(int64(-n))
		}
	}
	ss := c.udp[from]
	if ss == nil {
		if len(c.udp) >= c.cfg.MaxUDPSessions {
			c.evictUDPSession()
		}
		ss = c.newSession(Origin{Exporter: from, Transport: "udp"})
		c.udp[from] = ss
	}
	ss.last = now
	return ss
}

// retire folds a finished session's counters into the totals and
// forgets its templates; c.mu held.
func (c *Collector) retire(s *session) int {
	for _, d := range s.udpKnown {
		k := sharedKey{s.origin.Exporter.Addr(), d}
		if c.udpSeen[k].ss == s {
			delete(c.udpSeen, k)
		}
	}
	s.mu.Lock()
	st := s.s.Stats()
	n := s.s.Templates()
	s.mu.Unlock()
	c.retired.Add(&st)
	c.templates.Add(int64(-n))
	return n
}

// lruUDP returns the least recently active UDP session other than skip
// that keeps templates (with templates set) or any (templates unset);
// c.mu held.
func (c *Collector) lruUDP(skip *session, templates bool) (netip.AddrPort, *session) {
	var key netip.AddrPort
	var old *session
	for k, s := range c.udp {
		if s == skip || (old != nil && !s.last.Before(old.last)) {
			continue
		}
		if templates {
			s.mu.Lock()
			n := s.s.Templates()
			s.mu.Unlock()
			if n == 0 {
				continue
			}
		}
		key, old = k, s
	}
	return key, old
}

// evictUDPSession forgets the least recently active UDP exporter to make
// room for a new one; c.mu held.
func (c *Collector) evictUDPSession() {
	k, s := c.lruUDP(nil, false)
	if s == nil {
		return
	}
	c.droppedTemplates += uint64(c.retire(s))
	delete(c.udp, k)
	c.evictedSessions++
}

// shed evicts templates until all sessions together keep at most
// MaxTemplates: the least recently used ones of the least recently
// active UDP exporters other than cur, then cur's own.
func (c *Collector) shed(cur *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(c.templates.Load()) <= c.cfg.MaxTemplates {
		return
	}
	// Down to 15/16 of the bound, so that a flood sheds in batches
	// rather than scanning the exporters for every template.
	target := c.cfg.MaxTemplates - c.cfg.MaxTemplates/16
	for {
		excess := int(c.templates.Load()) - target
		if excess <= 0 {
			return
		}
		_, s := c.lruUDP(cur, true)
		if s == nil {
			s = cur
		}
		s.mu.Lock()
		n := s.s.Trim(s.s.Templates() - excess)
		s.mu.Unlock()
		c.templates.Add(int64(-n))
		if s == cur && n == 0 {
			return
		}
	}
}

// ListenTCP listens on addr and serves each connection as a session
// until ctx is done. It returns the bound address.
func (c *Collector) ListenTCP(ctx context.Context, addr string) (net.Addr, error) {
	return c.listenStream(ctx, addr, nil)
}

// ListenTLS is ListenTCP over TLS (RFC 7011 §10.4.2) with cfg, which
// holds the collector's certificate and, to require exporters'
// certificates, ClientCAs and ClientAuth. A connection whose handshake
// fails is closed and counted (Stats.Malformed["tls-handshake"]).
func (c *Collector) ListenTLS(ctx context.Context, addr string, cfg *tls.Config) (net.Addr, error) {
	if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil) {
		return nil, fmt.Errorf("collector: listen tls %s: no certificate", addr)
	}
	return c.listenStream(ctx, addr, cfg)
}

// allowed says input from exporter ap is accepted (Config.Allow),
// counting and logging it when not.
func (c *Collector) allowed(ap netip.AddrPort, transport string) bool {
	if len(c.cfg.Allow) == 0 {
		return true
	}
	a := ap.Addr().Unmap()
	for _, p := range c.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	c.mu.Lock()
	c.refused++
	n := c.refused
	log := c.logged.due(a, reasonNotAllowed, c.cfg.Now())
	c.mu.Unlock()
	if log && c.cfg.Logger != nil {
		c.cfg.Logger.Warn("exporter refused: not in the allow list", "exporter", ap.String(), "transport", transport, "refused_total", n)
	}
	return false
}

// handshakeFailed counts and logs a refused TLS handshake.
func (c *Collector) handshakeFailed(ap netip.AddrPort, err error) {
	c.mu.Lock()
	c.handshakes++
	n := c.handshakes
	log := c.logged.due(ap.Addr(), reasonHandshake, c.cfg.Now())
	c.mu.Unlock()
	if log && c.cfg.Logger != nil {
		c.cfg.Logger.Warn("tls handshake refused", "exporter", ap.String(), "err", err, "refused_total", n)
	}
}

const (
	reasonNotAllowed = iota
	reasonHandshake
	reasonSharedDomain
	reasonClockSkew
)

// refusalLog remembers when a refusal was last logged per address and
// reason, so that a flood from one exporter logs once a minute (the
// counters count every refusal). It holds at most refusalLogMax entries;
// when full, entries older than a minute are forgotten, and a new
// address is not logged until there is room.
type refusalLog map[refusalKey]time.Time

type refusalKey struct {
	a      netip.Addr
	reason int
}

const refusalLogMax = 4096

// due says a refusal of a for reason should be logged now, and notes it.
func (l *refusalLog) due(a netip.Addr, reason int, now time.Time) bool {
	if *l == nil {
		*l = refusalLog{}
	}
	k := refusalKey{a, reason}
	if last, ok := (*l)[k]; ok && now.Sub(last) < time.Minute {
		return false
	}
	if len(*l) >= refusalLogMax {
		for k, t := range *l {
			if now.Sub(t) >= time.Minute {
				delete(*l, k)
			}
		}
		if len(*l) >= refusalLogMax {
			return false
		}
	}
	(*l)[k] = now
	return true
}

// handshakeTimeout bounds a TLS handshake, so a connection that never
// completes one does not hold a goroutine.
const handshakeTimeout = 10 * time.Second

func (c *Collector) listenStream(ctx context.Context, addr string, tcfg *tls.Config) (net.Addr, error) {
	network := "tcp"
	if tcfg != nil {
		network = "tls"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("collector: listen %s %s: %w", network, addr, err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				c.mu.Lock()
				c.readErrs++
				c.mu.Unlock()
				continue
			}
			if c.conns.Add(1) > int64(c.cfg.MaxConnections) {
				c.conns.Add(-1)
				c.connsRefused.Add(1)
				conn.Close()
				continue
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer c.conns.Add(-1)
				defer conn.Close()
				cstop := context.AfterFunc(ctx, func() { conn.Close() })
				defer cstop()
				ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
				if !c.allowed(ap, network) {
					return
				}
				var r io.Reader = conn
				if tcfg != nil {
					tc := tls.Server(conn, tcfg)
					hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
					err := tc.HandshakeContext(hctx)
					cancel()
					if err != nil {
						c.handshakeFailed(ap, err)
						return
					}
					defer tc.Close() // close_notify, before the deferred conn.Close
					r = tc
				}
				o := Origin{Exporter: ap, Transport: network}
				err := c.ServeStream(ctx, r, o)
				if sc, ok := c.c.(StreamConsumer); ok {
					if sc.StreamEnd(o) == nil && err == nil {
						if w, ok := r.(io.Writer); ok {
							conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
							w.Write(StoredAck(c.cfg.Now()))
						}
					}
				}
			}()
		}
	}()
	return ln.Addr(), nil
}

// Wait blocks until every goroutine that ListenUDP and ListenTCP started
// has returned, which happens once their contexts are done. After Wait,
// the Consumer is not called again from those listeners, so a caller can
// cancel the listeners, Wait, and then commit what it received knowing
// nothing arrives after the commit.
func (c *Collector) Wait() { c.wg.Wait() }

// ErrFraming is returned (wrapped) when a byte stream stops looking like
// IPFIX messages; the stream cannot be resynchronised.
var ErrFraming = errors.New("ipfix stream lost message framing")

// ServeStream reads IPFIX messages from r (a TCP connection or an RFC 5655
// file) as one session until EOF or ctx is done. Malformed messages are
// counted and skipped; a broken frame (bad version or length) ends the
// stream with an error.
func (c *Collector) ServeStream(ctx context.Context, r io.Reader, o Origin) error {
	c.mu.Lock()
	ss := c.newSession(o)
	c.streams[ss] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.retire(ss)
		delete(c.streams, ss)
		c.forgetDomains(ss)
		c.mu.Unlock()
	}()
	br := bufio.NewReaderSize(r, 256<<10)
	buf := make([]byte, ipfix.MaxMessageLen)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := io.ReadFull(br, buf[:ipfix.HeaderLen]); err != nil {
			if err == io.EOF {
				return nil
			}
			return c.frameErr(o, off, fmt.Errorf("truncated message header: %w", err))
		}
		v := binary.BigEndian.Uint16(buf)
		l := int(binary.BigEndian.Uint16(buf[2:]))
		if v != ipfix.Version {
			return c.frameErr(o, off, fmt.Errorf("version %d, want 10: %w", v, ErrFraming))
		}
		if l < ipfix.HeaderLen {
			return c.frameErr(o, off, fmt.Errorf("message length %d: %w", l, ErrFraming))
		}
		if _, err := io.ReadFull(br, buf[ipfix.HeaderLen:l]); err != nil {
			return c.frameErr(o, off, fmt.Errorf("truncated message of %d bytes: %w", l, err))
		}
		// A malformed message is counted by the session; keep reading.
		c.decode(ss, buf[:l])
		off += int64(l)
	}
}

func (c *Collector) frameErr(o Origin, off int64, err error) error {
	c.mu.Lock()
	c.framing++
	c.mu.Unlock()
	return fmt.Errorf("collector: %s %s: stream offset %d: %w", o.Transport, o.Exporter, off, err)
}

// Stats returns the collector's counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := c.retired
	templates := 0
	add := func(s *session) {
		s.mu.Lock()
		st := s.s.Stats()
		templates += s.s.Templates()
		s.mu.Unlock()
		sum.Add(&st)
	}
	for _, s := range c.udp {
		add(s)
	}
	for s := range c.streams {
		add(s)
	}
	var drops uint64
	for _, us := range c.sockets {
		us.refreshDrops()
		drops += us.drops
	}
	out := Stats{
		TemplatesEvicted: sum.TemplatesEvicted + c.droppedTemplates, TemplatesExpired: sum.TemplatesExpired,
		DomainsEvicted: sum.DomainsEvicted, SessionsEvicted: c.evictedSessions,
		Messages: sum.Messages, Records: sum.FlowRecords, DataRecords: sum.DataRecords,
		OptionsRecords: sum.OptionsRecords, LostRecords: sum.LostRecords, OutOfOrder: sum.OutOfOrder,
		SeededLost: sum.SeededLost, SeqRestarts: sum.SeqRestarts, SharedDomains: c.sharedDomains, ClockSkewed: c.clockSkewed,
		TemplatesLearned: sum.TemplatesLearned, TemplatesRedefined: sum.TemplatesRedefined,
		TemplatesWithdrawn: sum.TemplatesWithdrawn, Templates: templates,
		Sessions: len(c.udp) + len(c.streams), SessionsTotal: c.total, ReadErrors: c.readErrs,
		SocketDrops: drops, Malformed: map[string]uint64{},
	}
	for r := ipfix.Reason(0); r < ipfix.NumReasons; r++ {
		if n := sum.Malformed[r]; n > 0 {
			out.Malformed[r.String()] = n
		}
	}
	if c.framing > 0 {
		out.Malformed["stream-framing"] = c.framing
	}
	if c.handshakes > 0 {
		out.Malformed["tls-handshake"] = c.handshakes
	}
	if n := c.connsRefused.Load(); n > 0 {
		out.Malformed["too-many-connections"] = n
	}
	if c.refused > 0 {
		out.Malformed["exporter-not-allowed"] = c.refused
	}
	return out
}
