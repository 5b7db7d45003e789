package exporter

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/endpoint"
	"github.com/mira-project/mira/ipfix"
)

// Config configures an Exporter. The zero value means defaults.
type Config struct {
	// PEN is the enterprise number of MIRA's elements (ipfix.DefaultPEN).
	PEN uint32
	// TLS configures tls:// targets (nil: the system's roots, no client
	// certificate).
	TLS *tls.Config
	// MTU bounds UDP messages (payload bytes; zero:
	// DefaultUDPMessageSize). They never exceed the path MTU the kernel
	// knows for the collector's route either (IP_MTU on the connected
	// socket, less the IP and UDP headers), so they are not fragmented
	// (RFC 7011 §10.3.3).
	MTU int
	// UDPRate paces UDP export, in bytes of IPFIX messages a second,
	// letting UDPBurst bytes go back to back (zero: DefaultUDPBurst): a
	// burst of records (a file replay, a big table ending) would
	// otherwise overflow the collector's socket buffer, and its kernel
	// drops what does not fit. Zero paces a collector on this host (in
	// this network namespace; Linux) by its socket's receive queue,
	// read through NETLINK_SOCK_DIAG: a message goes while the queue is
	// under half the buffer, as fast as the collector reads; and one
	// elsewhere at DefaultUDPRate. A positive rate applies to both;
	// negative: unpaced. UDP only: streams have flow control.
	UDPRate, UDPBurst int
	// PaceMaxWait bounds how long pacing holds the caller in any one
	// second (zero: as long as the pace needs, as a file replay wants);
	// past it messages go out unpaced (Stats.Unpaced). A live probe sets
	// LivePaceWait: its capture waits on its export.
	PaceMaxWait time.Duration
	// ConnectWait bounds how long a message start waits for a TCP or
	// TLS connection being made: past it the message fails (its records
	// dropped and counted) while the attempt goes on in the background,
	// and a later message takes the connection once it is made. Zero
	// waits for the whole attempt (up to the 5 s dial timeout), as a
	// file replay wants: nothing is lost to a collector that is slow to
	// accept. A live probe sets it (so that an unreachable collector,
	// whose SYNs go unanswered, does not stall its capture).
	ConnectWait time.Duration
	// StreamMessageSize bounds messages on TCP, files and writers
	// (default 16384, at most 65535).
	StreamMessageSize int
	// TemplateRefresh resends templates over UDP after this long
	// (default 60s); TemplateRefreshMessages after this many messages
	// of a domain (default 20).
	TemplateRefresh         time.Duration
	TemplateRefreshMessages int
	// FileRotate starts a new file:// file this often (default 5m).
	FileRotate time.Duration
	// ExporterMetadata sends an options template and record (scope
	// observationDomainId; exportingProcessId, exportedFlowRecordTotalCount)
	// with the templates. Off by default: nfdump 1.7.1 leaves options
	// records out of its sequence check, unlike RFC 7011 and libfixbuf, so
	// over UDP nfcapd counts a sequence error after each template refresh
	// (not after the first: see sendOptions).
	ExporterMetadata bool
	// ExportingProcessID is sent in the exporter options record
	// (default: the process id).
	ExportingProcessID uint32
	// RetryMin and RetryMax bound the reconnect backoff of TCP (default
	// 50ms, 2s): a message whose send fails reconnects once, at once;
	// if that fails too, the messages that follow fail at once (their
	// records dropped and counted) for RetryMin, doubling up to RetryMax
	// while the collector stays down, and the next one reconnects once.
	// No message waits: the probe's flow export, and with it its
	// capture, is never held up by a collector that is away.
	RetryMin, RetryMax time.Duration
	// Sampling, when set, is announced per observation domain in a
	// sampling options record (SamplingOptionsTemplate) sent with the
	// templates, so resent on the template timer over UDP. nfdump scales
	// its counts by it. Like ExporterMetadata it upsets nfcapd 1.7.1's
	// sequence check once per template refresh (see sendOptions).
	Sampling *ipfix.Sampling
	// AggregateNames, when not empty, are sent as aggregate id -> name
	// options records (AggregateOptionsTemplate) with the templates.
	AggregateNames map[uint32]string
	// SymptomNames and CategoryNames, when not empty, are sent as symptom
	// id -> name and fast-class category id -> name options records
	// (ipfix.SymptomOptionsTemplate, ipfix.CategoryOptionsTemplate) with
	// the templates. They must fit one message with the other options.
	SymptomNames  map[uint16]string
	CategoryNames map[uint16]string
	// ElementTypes sends RFC 5610 information element type records
	// (ipfix.ElementTypesTemplate) for MIRA's enterprise elements with
	// the templates, so other collectors can name and decode them.
	ElementTypes bool
	// Ledger, when set, returns the probe's loss ledger up to the
	// exporters (the exporter fills in the export and spool stages with
	// its own counts: what this target did not get); it is sent per
	// domain in a ledger options record (ipfix.LedgerOptionsTemplate,
	// with this exporter's message and record totals) with the other
	// options, every LedgerInterval on stream transports (default 60s;
	// over UDP with the template refresh), and once more at Close after
	// the last data. Like the other options, each one sent between data
	// messages costs nfcapd 1.7.1 one sequence error (see sendOptions);
	// the first and the last cost none.
	Ledger         func() flow.Loss
	LedgerInterval time.Duration
	// RegulationChanges, when set, returns how many times the probe's
	// self-regulation changed state or rate; the ledger record carries
	// it (a rate announcement cannot say that scanning was shed).
	RegulationChanges func() uint64
	// QueueLossScaled, when set, returns the probe's queue losses as
	// packets of the wire (ipfix.Ledger.QueueScaled).
	QueueLossScaled func() uint64
	// Spool, when set, keeps tcp:// and tls:// exports on disk until
	// their delivery is known and replays them after reconnects and
	// restarts (see Spool). Its PEN and Now default to the Config's.
	Spool *SpoolConfig
	// Now returns the time (time.Now); tests set it.
	Now func() time.Time
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.PEN == 0 {
		d.PEN = ipfix.DefaultPEN
	}
	if d.MTU < 0 {
		d.MTU = 0
	}
	if d.StreamMessageSize <= 0 {
		d.StreamMessageSize = 16384
	}
	d.StreamMessageSize = min(d.StreamMessageSize, ipfix.MaxMessageLen)
	d.MTU = min(d.MTU, ipfix.MaxMessageLen)
	if d.TemplateRefresh <= 0 {
		d.TemplateRefresh = 60 * time.Second
	}
	if d.TemplateRefreshMessages <= 0 {
		d.TemplateRefreshMessages = 20
	}
	if d.FileRotate <= 0 {
		d.FileRotate = 5 * time.Minute
	}
	if d.LedgerInterval <= 0 {
		d.LedgerInterval = 60 * time.Second
	}
	if d.ExportingProcessID == 0 {
		d.ExportingProcessID = uint32(os.Getpid())
	}
	if d.RetryMin <= 0 {
		d.RetryMin = 50 * time.Millisecond
	}
	if d.RetryMax <= 0 {
		d.RetryMax = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Stats are an Exporter's counters.
type Stats struct {
	Messages       uint64
	Records        uint64 // flow data records sent
	OptionsRecords uint64
	Templates      uint64 // template records sent
	Bytes          uint64
	Errors         uint64 // failed sends
	Dropped        uint64 // flow records lost to failed sends or oversize
	Reconnects     uint64
	// SpoolDropped counts flow records dropped from a full spool
	// (oldest first); Spooled is how many flow records the spool holds.
	SpoolDropped uint64
	Spooled      uint64
	// Spooling says the spool holds records and has no connection to
	// the collector (down, or not reached yet).
	Spooling bool
	// Unacknowledged counts flow records sent over TCP or TLS without a
	// spool on connections that ended without the collector confirming
	// it stored them (collector.StoredAck): a connection that broke (the
	// exporter reconnected), or one closed without the confirmation (a
	// collector that could not store them, or one that never confirms,
	// as any but mira-collector). The exporter cannot know whether they
	// were stored: over a broken connection they may be lost, which
	// the collector counts as a sequence gap once it sees the exporter
	// again. Acknowledged counts those the collector confirmed stored.
	Unacknowledged uint64
	Acknowledged   uint64
	// PaceWait is the time UDP pacing held the sender; Unpaced counts
	// the messages sent without their wait (Config.PaceMaxWait spent).
	PaceWait  time.Duration
	Unpaced   uint64
	LastError string
}

// Exporter is an IPFIX exporting process bound to one Transport.
type Exporter struct {
	mu      sync.Mutex
	cfg     Config
	t       Transport
	enc     *ipfix.FlowEncoder
	bi      [4]*ipfix.Template // biflow templates (v4, v6, then with selectorId), once used
	limit   int
	domains map[uint32]*domainState
	order   []*domainState // domains in order of first use
	session uint64
	begun   bool
	stats   Stats
	closed  bool
	spool   *Spool    // t, when it is a spool
	pace    *pacer    // nil: unpaced (streams, Config.UDPRate < 0)
	born    time.Time // systemInitTimeMilliseconds of the ledger
	// tcp is t when it is a TCP or TLS transport (not spooled), whose
	// sessions end confirmed or not (Stats.Unacknowledged); sessRecords
	// counts the flow records sent on its current connection.
	tcp         *tcpTransport
	sessRecords uint64
	// downUntil: a message exhausted its reconnects (the collector is
	// down); until then messages fail at once, after it one attempt is
	// made without backoff. Zero while the collector takes messages.
	downUntil time.Time
	downWait  time.Duration // the current backoff
	downErr   error         // why, returned by the messages failed meanwhile
	// sampled: sampling has been announced (Config.Sampling, SetSampling);
	// from then on every record's selector is announced (see selector),
	// an unsampled one's too.
	sampled bool
}

// domainState is one observation domain: its sequence number, the
// templates its collector has seen in this transport session, and the
// message being filled.
type domainState struct {
	id          uint32
	seq         uint32
	sent        [sentWords]uint64 // template ids 256.. sent in this transport session
	anySent     bool
	lastRefresh time.Time
	lastLedger  time.Time
	msgs        int
	flowRecords uint64

	msg      []byte
	open     bool
	msgSess  uint64 // transport session the message was begun in
	records  int    // flow data records in msg
	optRecs  int    // options data records in msg
	setStart int
	setID    uint16

	// selectors are the selectors (ipfix.SelectorID) the domain's records
	// named, most recently first named last (at most maxSelectors);
	// announced says which of them went out in this transport session.
	// lastSel caches the last record's intervals and selector.
	selectors []selector
	lastSel   selector
}

// selector is one selector of a domain: the records' intervals it stands
// for, and whether it was announced in the transport session.
type selector struct {
	pkt, flow uint32
	id        uint32
	announced bool
}

// maxSelectors bounds the selectors a domain remembers and announces
// with its options: a rate past them is announced again when a record
// names it.
const maxSelectors = 32

// sentWords covers the template ids MIRA uses, up to the last flow
// template with application metadata (ipfix.LastTemplateID).
const sentWords = (ipfix.LastTemplateID-ipfix.MinDataSetID)/64 + 1

func (d *domainState) isSent(id uint16) bool {
	i := int(id) - ipfix.MinDataSetID
	return d.sent[i/64]&(1<<(i%64)) != 0
}

func (d *domainState) markSent(id uint16) {
	i := int(id) - ipfix.MinDataSetID
	d.sent[i/64] |= 1 << (i % 64)
	d.anySent = true
}

func (d *domainState) clearSent() {
	d.sent = [sentWords]uint64{}
	d.anySent = false
	for i := range d.selectors {
		d.selectors[i].announced = false
	}
	d.lastSel = selector{}
}

// CheckURL checks an export target without opening it: udp://host:port,
// tcp://host:port, tls://host:port or file:///dir.
func CheckURL(rawURL string) error {
	_, err := endpoint.Target(rawURL)
	return err
}

// New returns an Exporter for udp://host:port, tcp://host:port,
// tls://host:port (Config.TLS) or file:///dir.
func New(rawURL string, cfg *Config) (*Exporter, error) {
	u, err := endpoint.Target(rawURL)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	c := cfg.withDefaults()
	var t Transport
	switch u.Scheme {
	case "udp":
		t, err = DialUDP(u.Host)
	case "tcp":
		t, err = NewTCP(u.Host)
	case "tls":
		t, err = NewTLS(u.Host, c.TLS)
	case "file":
		t, err = NewFile(u.Path, c.FileRotate, c.Now)
	}
	if err != nil {
		return nil, fmt.Errorf("exporter: %s: %w", rawURL, err)
	}
	if tt, ok := t.(*tcpTransport); ok {
		tt.wait = c.ConnectWait
	}
	if c.Spool != nil {
		sc := *c.Spool
		if sc.PEN == 0 {
			sc.PEN = c.PEN
		}
		if sc.Now == nil {
			sc.Now = c.Now
		}
		sp, err := OpenSpool(t, sc)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("exporter: %s: %w", rawURL, err)
		}
		t = sp
	}
	return NewTransport(t, &c), nil
}

// NewWriter returns an Exporter writing a byte stream (as over TCP, or an
// RFC 5655 file) to w. If w has a Flush() error method, Flush and Close
// call it.
func NewWriter(w io.Writer, cfg *Config) *Exporter {
	return NewTransport(&writerTransport{w: w}, cfg)
}

// NewTransport returns an Exporter sending over t.
func NewTransport(t Transport, cfg *Config) *Exporter {
	c := cfg.withDefaults()
	e := &Exporter{cfg: c, t: t, enc: ipfix.NewFlowEncoder(c.PEN), domains: map[uint32]*domainState{}}
	e.sampled = c.Sampling != nil
	e.spool, _ = t.(*Spool)
	e.tcp, _ = t.(*tcpTransport)
	e.born = c.Now()
	e.limit = c.StreamMessageSize
	if !t.Reliable() {
		e.limit = c.MTU
		if e.limit == 0 {
			e.limit = DefaultUDPMessageSize
		}
		if pm, ok := t.(pathMTUer); ok {
			if n, err := pm.PathMTU(); err == nil && n > 0 {
				e.limit = min(e.limit, n)
			}
		}
		if c.UDPRate >= 0 {
			burst := c.UDPBurst
			if burst <= 0 {
				burst = DefaultUDPBurst
			}
			var peer queueReader
			if rq, ok := t.(interface{ receiverQueue() queueReader }); ok {
				peer = rq.receiverQueue()
			}
			e.pace = newPacer(c.UDPRate, max(burst, e.limit), c.PaceMaxWait, peer)
		}
	}
	return e
}

// pathMTUer is a datagram transport that knows the largest payload its
// path carries unfragmented.
type pathMTUer interface {
	PathMTU() (int, error)
}

// MessageLimit is the largest message e sends: over UDP Config.MTU (or
// DefaultUDPMessageSize) within the path MTU's payload,
// Config.StreamMessageSize otherwise.
func (e *Exporter) MessageLimit() int { return e.limit }

// ErrClosed is returned by calls on a closed Exporter.
var ErrClosed = errors.New("exporter: closed")

// Export encodes recs, packs them into messages and sends them. It keeps
// going after a failed send and returns the first error.
func (e *Exporter) Export(recs []flow.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for i := range recs {
		keep(e.add(&recs[i]))
	}
	keep(e.flushAll())
	if e.spool != nil {
		keep(e.spool.Sync())
	}
	return first
}

// Flush sends any buffered message and flushes the transport.
func (e *Exporter) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err := e.flushAll(); err != nil {
		return err
	}
	return e.noteErr(e.t.Flush())
}

// Close flushes and closes the transport.
func (e *Exporter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.closed = true
	err := e.flushAll()
	if e.cfg.Ledger != nil {
		// The final ledger, after the last data.
		now := e.cfg.Now()
		for _, d := range e.order {
			sess, berr := e.t.Begin()
			if berr != nil {
				break
			}
			e.newSession(sess)
			if lerr := e.sendLedger(d, now); err == nil {
				err = lerr
			}
		}
	}
	if ferr := e.t.Flush(); err == nil {
		err = ferr
	}
	// The transport's Close may take long (a spool drains to its
	// collector): Stats stays available meanwhile; every other call
	// returns ErrClosed.
	e.mu.Unlock()
	cerr := e.t.Close()
	e.mu.Lock()
	if e.tcp != nil {
		if e.tcp.acked {
			e.stats.Acknowledged += e.sessRecords
		} else {
			e.stats.Unacknowledged += e.sessRecords
		}
		e.sessRecords = 0
	}
	if err == nil {
		err = cerr
	}
	return err
}

// paced waits, when e paces its messages, until a message of n bytes
// may go.
func (e *Exporter) paced(n int) {
	if e.pace == nil {
		return
	}
	waited, unpaced := e.pace.take(n)
	e.stats.PaceWait += waited
	if unpaced {
		e.stats.Unpaced++
	}
}

// PaceFully lifts Config.PaceMaxWait: from now on UDP pacing holds the
// caller as long as the pace needs. A live probe calls it when it
// stops, so that the flush of its flow tables, which no capture waits
// on any more, does not overflow the collector.
func (e *Exporter) PaceFully() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pace != nil {
		e.pace.unbound()
	}
}

// StopDraining makes a Close under way give up delivering what its spool
// holds (Spool.StopDraining); without a spool it does nothing. Safe to
// call concurrently with Close.
func (e *Exporter) StopDraining() {
	if e.spool != nil {
		e.spool.StopDraining()
	}
}

// SetSampling changes the sampling configuration the exporter announces
// (Config.Sampling; nil: none) and announces it at once in every
// observation domain already in use, in an options message of its own;
// domains used later announce it with their first message. A probe's
// self-regulation calls it on every change of rate, so the collector
// learns when each rate took effect.
func (e *Exporter) SetSampling(s *ipfix.Sampling) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s != nil {
		c := *s
		s = &c
	}
	e.cfg.Sampling = s
	if s != nil {
		e.sampled = true
	}
	if e.closed {
		return
	}
	now := time.Now()
	for _, d := range e.order {
		e.sendOptions(d, now)
	}
}

// SetNames changes the aggregate, symptom and category names the
// exporter announces (Config.AggregateNames, SymptomNames,
// CategoryNames; a configuration reload) and announces them at once in
// every observation domain, after the records already handed to Export:
// a collector names the records that follow by them.
func (e *Exporter) SetNames(aggregates map[uint32]string, symptoms, categories map[uint16]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cfg.AggregateNames = maps.Clone(aggregates)
	e.cfg.SymptomNames = maps.Clone(symptoms)
	e.cfg.CategoryNames = maps.Clone(categories)
	if e.closed {
		return
	}
	now := time.Now()
	for _, d := range e.order {
		e.sendOptions(d, now)
	}
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	if e.spool != nil {
		ss := e.spool.Stats()
		st.SpoolDropped, st.Spooled = ss.Dropped, ss.Spooled
		st.Spooling = !ss.Connected && ss.Spooled > 0
		if ss.LastError != "" && st.LastError == "" {
			st.LastError = ss.LastError
		}
	}
	return st
}

// write sends one message holding dataRecords data records, flowRecords
// of them flow records.
func (e *Exporter) write(msg []byte, dataRecords, flowRecords int) error {
	e.paced(len(msg))
	if e.spool != nil {
		return e.spool.WriteRecords(msg, dataRecords, flowRecords)
	}
	return e.t.Write(msg)
}

func (e *Exporter) noteErr(err error) error {
	if err != nil {
		e.stats.Errors++
		e.stats.LastError = err.Error()
	}
	return err
}

func (e *Exporter) domain(id uint32) *domainState {
	d := e.domains[id]
	if d == nil {
		d = &domainState{id: id, setStart: -1, msg: make([]byte, 0, e.limit+512)}
		if e.spool != nil {
			// Sequence numbers go on from where the spool's previous
			// process left them: the collector identifies spooled records
			// by them.
			d.seq, _ = e.spool.NextSeq(id)
		}
		e.domains[id] = d
		e.order = append(e.order, d)
	}
	return d
}

// flushAll sends every domain's open message, in order of first use.
func (e *Exporter) flushAll() error {
	var first error
	for _, d := range e.order {
		if err := e.flushMsg(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (d *domainState) closeSet() {
	if d.setStart >= 0 {
		d.msg = ipfix.FinishSet(d.msg, d.setStart, 0)
		d.setStart = -1
		d.setID = 0
	}
}

// newSession notes the transport's session number; a new session has
// seen no templates.
func (e *Exporter) newSession(s uint64) {
	if !e.begun || s != e.session {
		// The previous connection ended unconfirmed.
		e.stats.Unacknowledged += e.sessRecords
		e.sessRecords = 0
		e.begun, e.session = true, s
		for _, x := range e.order {
			x.clearSent()
		}
	}
}

// start begins a message for domain d, noticing new transport sessions
// (templates must go again) and, over UDP, template refresh.
func (e *Exporter) start(d *domainState) error {
	if !e.downUntil.IsZero() && e.cfg.Now().Before(e.downUntil) {
		// The collector is down (goDown): no connection attempt.
		return e.noteErr(e.downErr)
	}
	s, err := e.t.Begin()
	if err != nil {
		if _, ok := e.t.(Reconnector); ok {
			e.goDown(err)
		}
		return e.noteErr(err)
	}
	e.newSession(s)
	now := e.cfg.Now()
	if !e.t.Reliable() && d.anySent &&
		(now.Sub(d.lastRefresh) >= e.cfg.TemplateRefresh || d.msgs >= e.cfg.TemplateRefreshMessages) {
		d.clearSent()
	}
	if !d.anySent {
		e.sendOptions(d, now)
		d.lastRefresh, d.msgs = now, 0
	} else if e.cfg.Ledger != nil && e.t.Reliable() && now.Sub(d.lastLedger) >= e.cfg.LedgerInterval {
		e.sendLedger(d, now)
	}
	d.msg = ipfix.AppendHeader(d.msg[:0], ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
	d.open, d.msgSess, d.records, d.optRecs, d.setStart = true, s, 0, 0, -1
	return nil
}

// sendOptions sends d's options templates and records (exporter
// metadata, sampling, names) in a message of their own, ahead of the
// data. RFC 7011 counts options data records in the sequence number, and
// so does MIRA; nfcapd 1.7.1 does not (Process_ipfix_data alone advances
// its expected number), so a message mixing options and flow records
// costs one "sequence error" there. An options message sent before any
// flow record of a domain costs none: nfcapd resynchronises without
// complaint until it has seen a data set. Over UDP each template refresh
// still costs one. If the send fails, the options go again with the next
// message.
func (e *Exporter) sendOptions(d *domainState, now time.Time) {
	d.msg = ipfix.AppendHeader(d.msg[:0], ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
	d.optRecs = 0
	if e.cfg.ExporterMetadata {
		e.appendMetadata(d)
	}
	d.msg, d.optRecs = e.appendOptions(d, d.msg, d.optRecs)
	n := d.optRecs
	d.optRecs = 0
	if len(d.msg) == ipfix.HeaderLen {
		return
	}
	if !e.t.Reliable() && len(d.msg) > e.limit {
		// Over UDP a message stays within the path MTU: the options
		// (names and RFC 5610 type records run long) go in several.
		if bodies, recs, ok := splitOptions(d.msg, e.limit); ok {
			for i, body := range bodies {
				m := ipfix.AppendHeader(make([]byte, 0, ipfix.HeaderLen+len(body)), ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
				m = append(m, body...)
				err := ipfix.FinishMessage(m)
				if err == nil {
					err = e.write(m, recs[i], 0)
				}
				if err != nil {
					e.noteErr(err)
					d.clearSent()
					return
				}
				d.seq += uint32(recs[i])
				e.stats.Messages++
				e.stats.OptionsRecords += uint64(recs[i])
				e.stats.Bytes += uint64(len(m))
			}
			return
		}
	}
	err := ipfix.FinishMessage(d.msg)
	if err == nil {
		err = e.write(d.msg, n, 0)
	}
	if err != nil {
		e.noteErr(err)
		d.clearSent()
		return
	}
	d.seq += uint32(n)
	e.stats.Messages++
	e.stats.OptionsRecords += uint64(n)
	e.stats.Bytes += uint64(len(d.msg))
}

// appendMetadata appends the exporter options template and its record.
func (e *Exporter) appendMetadata(d *domainState) {
	t := e.optionsTemplate()
	var s int
	d.msg, s = ipfix.AppendSetHeader(d.msg, ipfix.OptionsSetID)
	d.msg = ipfix.AppendTemplate(d.msg, t)
	d.msg = ipfix.FinishSet(d.msg, s, 0)
	e.stats.Templates++
	d.msg, s = ipfix.AppendSetHeader(d.msg, t.ID)
	d.msg = be32(d.msg, d.id)
	d.msg = be32(d.msg, e.cfg.ExportingProcessID)
	d.msg = be64(d.msg, d.flowRecords)
	d.msg = ipfix.FinishSet(d.msg, s, 0)
	d.optRecs++
	d.markSent(t.ID)
}

// appendOptions appends the sampling and aggregate-name options
// templates and their records to b, marks them sent for d and returns b
// and optRecs plus the records added.
func (e *Exporter) appendOptions(d *domainState, b []byte, optRecs int) ([]byte, int) {
	var ts []*ipfix.Template
	if e.cfg.Sampling != nil {
		// Order matters to nfdump 1.7.1: IE 34 first (see
		// ipfix.SamplingOptionsTemplate), and before any other options
		// (after the type records, it left its counts unscaled).
		ts = append(ts, ipfix.SamplingOptionsTemplate(), ipfix.PSAMPTemplate(e.cfg.PEN, *e.cfg.Sampling))
	}
	// Then the RFC 5610 type records: a collector that learns MIRA's
	// elements from them (ipfixDump --rfc5610) can decode the options
	// records after them (aggregate, symptom and category names,
	// ledger), which it read as raw octets when they came last.
	if e.cfg.ElementTypes {
		ts = append(ts, ipfix.ElementTypesTemplate())
	}
	if len(e.cfg.AggregateNames) > 0 {
		ts = append(ts, ipfix.AggregateOptionsTemplate(e.cfg.PEN))
	}
	ts = append(ts, e.nameTemplates()...)
	if e.cfg.Ledger != nil {
		ts = append(ts, ipfix.LedgerOptionsTemplate(e.cfg.PEN))
	}
	if len(ts) == 0 {
		// Selectors without the domain's sampling: a collector's
		// re-export of sampled biflows (ExportSampledBiflows). Before,
		// the options ended here and the first message's records went
		// before their selector: nfdump left them unscaled.
		return e.appendSelectors(d, b, optRecs, true)
	}
	var s int
	b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
	for _, t := range ts {
		b = ipfix.AppendTemplate(b, t)
		d.markSent(t.ID)
		e.stats.Templates++
	}
	b = ipfix.FinishSet(b, s, 0)
	if e.cfg.Sampling != nil {
		b, s = ipfix.AppendSetHeader(b, ipfix.SamplingOptionsTemplateID)
		b = ipfix.AppendSamplingRecord(b, d.id, *e.cfg.Sampling)
		b = ipfix.FinishSet(b, s, 0)
		b, s = ipfix.AppendSetHeader(b, ipfix.PSAMPTemplate(e.cfg.PEN, *e.cfg.Sampling).ID)
		b = ipfix.AppendPSAMPRecord(b, d.id, *e.cfg.Sampling)
		b = ipfix.FinishSet(b, s, 0)
		optRecs += 2
	}
	// The selectors the domain's records named (see selector), after
	// the domain's sampling: nfdump scales a record by its selector's
	// rate, and by the domain's only when it knows none.
	b, optRecs = e.appendSelectors(d, b, optRecs, true)
	if e.cfg.ElementTypes {
		var n int
		b, s = ipfix.AppendSetHeader(b, ipfix.ElementTypesTemplateID)
		b, n = ipfix.AppendElementTypeRecords(b, e.cfg.PEN)
		b = ipfix.FinishSet(b, s, 0)
		optRecs += n
	}
	if len(e.cfg.AggregateNames) > 0 {
		ids := make([]uint32, 0, len(e.cfg.AggregateNames))
		for id := range e.cfg.AggregateNames {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		b, s = ipfix.AppendSetHeader(b, ipfix.AggregateOptionsTemplateID)
		for _, id := range ids {
			b = ipfix.AppendAggregateRecord(b, id, e.cfg.AggregateNames[id])
			optRecs++
		}
		b = ipfix.FinishSet(b, s, 0)
	}
	b, optRecs = e.appendNames(b, optRecs)
	if e.cfg.Ledger != nil {
		b, optRecs = e.appendLedger(d, b), optRecs+1
	}
	return b, optRecs
}

// selector makes sure the selector r names (ipfix.SelectorID of its
// intervals) has been announced in its domain before r goes (nfdump looks
// the selector up as a record arrives): a selector not yet announced in
// the transport session closes the domain's message and goes in an
// options message of its own, or with the options the next message
// starts with. An exporter that never announced sampling announces no
// selector either (its records name theirs all the same): a collector
// that counted on the domain's sampling had none to apply, and a new
// selector mid-stream costs nfcapd 1.7.1 a sequence error (options
// records are not in its count; see sendOptions), as a change of the
// domain's sampling does.
func (e *Exporter) selector(d *domainState, r *flow.Record) error {
	if !e.sampled {
		return nil
	}
	return e.announce(d, r.SamplingPacketInterval, r.SamplingFlowInterval)
}

// announce makes sure the selector of intervals pkt and fl has been
// announced in d (selector).
func (e *Exporter) announce(d *domainState, pkt, fl uint32) error {
	if l := &d.lastSel; l.announced && l.pkt == pkt && l.flow == fl {
		return nil
	}
	id := ipfix.SelectorID(pkt, fl)
	i := slices.IndexFunc(d.selectors, func(s selector) bool { return s.id == id })
	if i >= 0 && d.selectors[i].announced {
		d.lastSel = d.selectors[i]
		d.lastSel.pkt, d.lastSel.flow = pkt, fl
		return nil
	}
	if i < 0 {
		if len(d.selectors) >= maxSelectors {
			d.selectors = slices.Delete(d.selectors, 0, 1)
		}
		d.selectors = append(d.selectors, selector{pkt: max(pkt, 1), flow: max(fl, 1), id: id})
	}
	if err := e.flushMsg(d); err != nil {
		return err
	}
	if !d.anySent {
		// The next message starts with the options, this selector among
		// them (start, sendOptions).
		return nil
	}
	return e.sendSelectors(d, e.cfg.Now())
}

// appendSelectors appends the selector options template (unless sent
// in the session) and a record for each of d's selectors not announced
// (all of them when all is set), each in a set of its own (nfdump reads
// the first template of a template set and the first record of a data
// set), and marks them announced.
func (e *Exporter) appendSelectors(d *domainState, b []byte, optRecs int, all bool) ([]byte, int) {
	if len(d.selectors) == 0 {
		return b, optRecs
	}
	var s int
	if t := ipfix.SelectorOptionsTemplate(); all || !d.isSent(t.ID) {
		b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
		b = ipfix.AppendTemplate(b, t)
		b = ipfix.FinishSet(b, s, 0)
		d.markSent(t.ID)
		e.stats.Templates++
	}
	for i := range d.selectors {
		x := &d.selectors[i]
		if x.announced && !all {
			continue
		}
		b, s = ipfix.AppendSetHeader(b, ipfix.SelectorOptionsTemplateID)
		b = ipfix.AppendSelectorRecord(b, d.id, x.id, ipfix.SelectorInterval(x.pkt, x.flow))
		b = ipfix.FinishSet(b, s, 0)
		x.announced = true
		optRecs++
	}
	return b, optRecs
}

// sendSelectors sends d's selectors not yet announced in an options
// message of its own (as sendOptions). Over UDP, the records of a new
// selector go in several messages when they do not fit one.
func (e *Exporter) sendSelectors(d *domainState, now time.Time) error {
	d.msg = ipfix.AppendHeader(d.msg[:0], ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
	var n int
	d.msg, n = e.appendSelectors(d, d.msg, 0, false)
	if n == 0 {
		return nil
	}
	err := ipfix.FinishMessage(d.msg)
	if err == nil {
		err = e.write(d.msg, n, 0)
	}
	if err != nil {
		d.clearSent()
		return e.noteErr(err)
	}
	d.seq += uint32(n)
	e.stats.Messages++
	e.stats.OptionsRecords += uint64(n)
	e.stats.Bytes += uint64(len(d.msg))
	return nil
}

// appendLedger appends d's ledger record (its template must have been
// sent) and notes when.
func (e *Exporter) appendLedger(d *domainState, b []byte) []byte {
	l := ipfix.Ledger{SystemInit: e.born.UnixMilli(), Messages: e.stats.Messages, Records: e.stats.Records, Loss: e.cfg.Ledger()}
	if e.cfg.RegulationChanges != nil {
		l.RegulationChanges = e.cfg.RegulationChanges()
	}
	if e.cfg.QueueLossScaled != nil {
		l.QueueScaled = e.cfg.QueueLossScaled()
	}
	// The export stages are this target's: records it did not get.
	l.Loss.Export = e.stats.Dropped
	if e.spool != nil {
		l.Loss.Spool = e.spool.Stats().Dropped
	}
	var s int
	b, s = ipfix.AppendSetHeader(b, ipfix.LedgerOptionsTemplateID)
	b = ipfix.AppendLedgerRecord(b, d.id, &l)
	d.lastLedger = e.cfg.Now()
	return ipfix.FinishSet(b, s, 0)
}

// sendLedger sends d's ledger record in a message of its own.
func (e *Exporter) sendLedger(d *domainState, now time.Time) error {
	d.msg = ipfix.AppendHeader(d.msg[:0], ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
	if t := ipfix.LedgerOptionsTemplate(e.cfg.PEN); !d.isSent(t.ID) {
		var s int
		d.msg, s = ipfix.AppendSetHeader(d.msg, ipfix.OptionsSetID)
		d.msg = ipfix.AppendTemplate(d.msg, t)
		d.msg = ipfix.FinishSet(d.msg, s, 0)
		d.markSent(t.ID)
		e.stats.Templates++
	}
	d.msg = e.appendLedger(d, d.msg)
	err := ipfix.FinishMessage(d.msg)
	if err == nil {
		err = e.write(d.msg, 1, 0)
	}
	if err != nil {
		return e.noteErr(err)
	}
	d.seq++
	e.stats.Messages++
	e.stats.OptionsRecords++
	e.stats.Bytes += uint64(len(d.msg))
	return nil
}

func (e *Exporter) optionsTemplate() *ipfix.Template {
	return &ipfix.Template{ID: ipfix.ExporterOptionsTemplateID, ScopeCount: 1, Fields: []ipfix.Field{
		{ID: ipfix.IEObservationDomainID, Length: 4},
		{ID: ipfix.IEExportingProcessID, Length: 4},
		{ID: ipfix.IEExportedFlowRecordTotalCount, Length: 8},
	}}
}

func be32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func be64(b []byte, v uint64) []byte {
	return be32(be32(b, uint32(v>>32)), uint32(v))
}

// ExportBiflows encodes biflows with ipfix.BiflowTemplate (reverse
// counters under RFC 5103) in observation domain domain, packs them into
// messages and sends them: ExportSampledBiflows of unsampled biflows.
func (e *Exporter) ExportBiflows(domain uint32, bs []flow.Biflow) error {
	sb := make([]flow.SampledBiflow, len(bs))
	for i := range bs {
		sb[i].Biflow = bs[i]
	}
	return e.ExportSampledBiflows(domain, sb)
}

// ExportSampledBiflows is ExportBiflows for biflows that state their
// sampling: a sampled one (flow.SampledBiflow.Sampled) goes with
// ipfix.BiflowSelectorTemplate, naming the selector of its intervals,
// which the domain reports (ipfix.SelectorOptionsTemplate, announced
// before the first record naming it) so that nfdump scales its counters
// by its own rate; an unsampled one goes as ExportBiflows sends it.
func (e *Exporter) ExportSampledBiflows(domain uint32, bs []flow.SampledBiflow) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	var first error
	for i := range bs {
		b := &bs[i]
		smp := b.Sampled()
		t := e.biflowTemplate(ipfix.IsV6(&b.Key), smp)
		r := flow.Record{Key: b.Key, ObservationDomain: domain}
		d := e.domain(domain)
		var serr error
		if smp {
			// A failed announcement goes again with the options the
			// next message starts with (as add's).
			serr = e.announce(d, max(b.PacketInterval, 1), max(b.FlowInterval, 1))
		}
		err := e.addWith(d, &r, t, false, func(m []byte) []byte {
			if smp {
				return ipfix.AppendBiflowSelectorRecord(m, b)
			}
			return ipfix.AppendBiflowRecord(m, &b.Biflow)
		})
		if err == nil {
			err = serr
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if err := e.flushAll(); err != nil && first == nil {
		first = err
	}
	return first
}

// biflowTemplate is the biflow template of v6 records, with selectorId
// when sel is set.
func (e *Exporter) biflowTemplate(v6, sel bool) *ipfix.Template {
	i := 0
	if v6 {
		i = 1
	}
	if sel {
		i += 2
	}
	if e.bi[i] == nil {
		if sel {
			e.bi[i] = ipfix.BiflowSelectorTemplate(v6)
		} else {
			e.bi[i] = ipfix.BiflowTemplate(v6)
		}
	}
	return e.bi[i]
}

// add appends one record to its domain's message, sending that message
// first when the record would not fit.
func (e *Exporter) add(r *flow.Record) error {
	t, _ := e.enc.Template(r)
	// A failed announcement is noted and goes again with the options
	// the next message starts with; the record goes on.
	d := e.domain(r.ObservationDomain)
	serr := e.selector(d, r)
	err := e.addWith(d, r, t, len(r.Symptoms) > 0, func(m []byte) []byte { return e.enc.AppendRecord(m, r) })
	if err == nil {
		err = serr
	}
	return err
}

// addWith appends one data record of template t, encoded by enc, to the
// message of d, r's domain.
func (e *Exporter) addWith(d *domainState, r *flow.Record, t *ipfix.Template, syms bool, enc func([]byte) []byte) error {
	sym := e.enc.SymptomTemplate()
	for attempt := 0; attempt < 2; attempt++ {
		if !d.open {
			if err := e.start(d); err != nil {
				e.stats.Dropped++
				return err
			}
		}
		mark, markSet, markSetID := len(d.msg), d.setStart, d.setID
		needSym := syms && !d.isSent(sym.ID)
		needT := !d.isSent(t.ID)
		if needSym || needT {
			d.closeSet()
			var s int
			d.msg, s = ipfix.AppendSetHeader(d.msg, ipfix.TemplateSetID)
			if needSym {
				d.msg = ipfix.AppendTemplate(d.msg, sym)
			}
			if needT {
				d.msg = ipfix.AppendTemplate(d.msg, t)
			}
			d.msg = ipfix.FinishSet(d.msg, s, 0)
		}
		if d.setStart < 0 || d.setID != t.ID {
			d.closeSet()
			d.msg, d.setStart = ipfix.AppendSetHeader(d.msg, t.ID)
			d.setID = t.ID
		}
		d.msg = enc(d.msg)
		fits := len(d.msg) <= e.limit || (attempt == 1 && len(d.msg) <= ipfix.MaxMessageLen)
		if fits {
			if needSym {
				d.markSent(sym.ID)
				e.stats.Templates++
			}
			if needT {
				d.markSent(t.ID)
				e.stats.Templates++
			}
			d.records++
			return nil
		}
		d.msg, d.setStart, d.setID = d.msg[:mark], markSet, markSetID
		if attempt == 0 {
			if err := e.flushMsg(d); err != nil {
				e.stats.Dropped++
				return err
			}
		}
	}
	e.stats.Dropped++
	return e.noteErr(fmt.Errorf("exporter: record of %d symptoms does not fit in a message", len(r.Symptoms)))
}

// flushMsg finishes and sends d's open message. If the transport started
// a new session since the message was begun (a file rotated, a
// connection was re-made), the templates go first.
func (e *Exporter) flushMsg(d *domainState) error {
	if !d.open {
		return nil
	}
	d.open = false
	d.closeSet()
	if len(d.msg) == ipfix.HeaderLen {
		return nil
	}
	if err := ipfix.FinishMessage(d.msg); err != nil {
		return e.noteErr(err)
	}
	var err error
	now := e.cfg.Now()
	down := !e.downUntil.IsZero()
	switch {
	case down && now.Before(e.downUntil):
		// The collector is down: the message fails at once instead of
		// holding the probe (its flow export, hence its capture) up for
		// the backoff of every message.
		err = e.downErr
	case down:
		err = e.reconnectOnce(d)
	default:
		var s uint64
		s, err = e.t.Begin()
		if err == nil {
			e.newSession(s)
			if s != d.msgSess {
				err = e.writeTemplates(d)
			}
		}
		if err == nil {
			err = e.write(d.msg, d.records+d.optRecs, d.records)
		}
		if err != nil {
			err = e.retry(d, err)
		}
	}
	d.msgs++
	if err != nil {
		e.stats.Dropped += uint64(d.records)
		// The collector never sees these records: keep the sequence
		// number so that it does not report them lost.
		return e.noteErr(err)
	}
	d.seq += uint32(d.records + d.optRecs)
	d.flowRecords += uint64(d.records)
	if e.tcp != nil {
		e.sessRecords += uint64(d.records)
	}
	e.stats.Messages++
	e.stats.Records += uint64(d.records)
	e.stats.OptionsRecords += uint64(d.optRecs)
	e.stats.Bytes += uint64(len(d.msg))
	return nil
}

// writeTemplates sends the templates (and options records) a new
// transport session needs before d's message, whose sequence number is
// moved past the options records the template message carries.
func (e *Exporter) writeTemplates(d *domainState) error {
	tm, n := e.templateMessage(d, d.seq)
	e.paced(len(tm))
	if err := e.t.Write(tm); err != nil {
		return err
	}
	e.stats.Messages++
	e.stats.Bytes += uint64(len(tm))
	e.stats.OptionsRecords += uint64(n)
	d.seq += uint32(n)
	if len(d.msg) >= ipfix.HeaderLen {
		binary.BigEndian.PutUint32(d.msg[8:], d.seq)
	}
	return nil
}

// retry reconnects a stream transport once, at once, and resends the
// message, preceded by the templates the new session has not seen; if
// that fails the collector is taken as down (goDown).
func (e *Exporter) retry(d *domainState, err error) error {
	if _, ok := e.t.(Reconnector); !ok {
		return err
	}
	e.noteErr(err)
	return e.reconnectOnce(d)
}

// reconnectOnce is the one attempt a message makes after a failed send
// or once the collector's backoff has passed: a new connection, no wait.
func (e *Exporter) reconnectOnce(d *domainState) error {
	rc, ok := e.t.(Reconnector)
	if !ok {
		return e.downErr
	}
	s, err := rc.Reconnect()
	if err == nil {
		e.stats.Reconnects++
		e.newSession(s)
		if err = e.writeTemplates(d); err == nil {
			err = e.t.Write(d.msg)
		}
	}
	if err != nil {
		e.goDown(err)
		return err
	}
	e.downUntil, e.downWait = time.Time{}, 0
	return nil
}

// goDown notes that a message could not reach the collector (err):
// messages fail at once for the backoff, RetryMin doubling up to
// RetryMax while it stays down.
func (e *Exporter) goDown(err error) {
	e.downWait = min(max(e.downWait*2, e.cfg.RetryMin), e.cfg.RetryMax)
	e.downUntil = e.cfg.Now().Add(e.downWait)
	e.downErr = fmt.Errorf("collector down, next attempt in %v: %w", e.downWait, err)
}

// templateMessage builds a message holding every template built so far,
// for a new transport session.
func (e *Exporter) templateMessage(d *domainState, seq uint32) ([]byte, int) {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(e.cfg.Now().Unix()), Sequence: seq, Domain: d.id})
	var s int
	b, s = ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
	b = ipfix.AppendTemplate(b, e.enc.SymptomTemplate())
	d.markSent(ipfix.SymptomTemplateID)
	for _, t := range e.enc.Templates() {
		b = ipfix.AppendTemplate(b, t)
		d.markSent(t.ID)
		e.stats.Templates++
	}
	for _, t := range e.bi {
		if t != nil {
			b = ipfix.AppendTemplate(b, t)
			d.markSent(t.ID)
			e.stats.Templates++
		}
	}
	b = ipfix.FinishSet(b, s, 0)
	e.stats.Templates++
	if e.cfg.ExporterMetadata {
		b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
		b = ipfix.AppendTemplate(b, e.optionsTemplate())
		b = ipfix.FinishSet(b, s, 0)
		d.markSent(ipfix.ExporterOptionsTemplateID)
		e.stats.Templates++
	}
	b, n := e.appendOptions(d, b, 0)
	ipfix.FinishMessage(b)
	return b, n
}
