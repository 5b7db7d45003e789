package exporter

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/exporter/ipfix"
)

// Config configures an Exporter. The zero value means defaults.
type Config struct {
	// PEN is the enterprise number of MIRA's elements (ipfix.DefaultPEN).
	PEN uint32
	// MTU bounds UDP messages (payload bytes, default 1400).
	MTU int
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
	// ExportingProcessID is sent in the exporter options record
	// (default: the process id).
	ExportingProcessID uint32
	// RetryMin and RetryMax bound the reconnect backoff of TCP; Retries
	// is how many reconnects one message may try (default 50ms, 2s, 5).
	RetryMin, RetryMax time.Duration
	Retries            int
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
	if d.MTU <= 0 {
		d.MTU = 1400
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
	if d.ExportingProcessID == 0 {
		d.ExportingProcessID = uint32(os.Getpid())
	}
	if d.RetryMin <= 0 {
		d.RetryMin = 50 * time.Millisecond
	}
	if d.RetryMax <= 0 {
		d.RetryMax = 2 * time.Second
	}
	if d.Retries <= 0 {
		d.Retries = 5
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
	LastError      string
}

// Exporter is an IPFIX exporting process bound to one Transport.
type Exporter struct {
	mu      sync.Mutex
	cfg     Config
	t       Transport
	enc     *ipfix.FlowEncoder
	limit   int
	domains map[uint32]*domainState
	session uint64
	begun   bool

	msg      []byte
	open     bool
	cur      *domainState
	records  int // flow data records in msg
	optRecs  int // options data records in msg
	setStart int
	setID    uint16
	stats    Stats
	closed   bool
}

type domainState struct {
	id          uint32
	seq         uint32
	sent        [3]uint64 // template ids 256.. sent in this transport session
	anySent     bool
	lastRefresh time.Time
	msgs        int
	flowRecords uint64
}

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
	d.sent = [3]uint64{}
	d.anySent = false
}

// New returns an Exporter for udp://host:port, tcp://host:port or
// file:///dir.
func New(rawURL string, cfg *Config) (*Exporter, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("exporter: parse %q: %w", rawURL, err)
	}
	c := cfg.withDefaults()
	var t Transport
	switch u.Scheme {
	case "udp":
		t, err = DialUDP(u.Host)
	case "tcp":
		t, err = NewTCP(u.Host)
	case "file":
		t, err = NewFile(u.Path, c.FileRotate, c.Now)
	default:
		return nil, fmt.Errorf("exporter: %q: unsupported scheme %q (udp, tcp, file)", rawURL, u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("exporter: %s: %w", rawURL, err)
	}
	return NewTransport(t, &c), nil
}

// NewWriter returns an Exporter writing a byte stream (as over TCP, or an
// RFC 5655 file) to w.
func NewWriter(w WriterFlusher, cfg *Config) *Exporter {
	return NewTransport(&writerTransport{w: w}, cfg)
}

// NewTransport returns an Exporter sending over t.
func NewTransport(t Transport, cfg *Config) *Exporter {
	c := cfg.withDefaults()
	e := &Exporter{cfg: c, t: t, enc: ipfix.NewFlowEncoder(c.PEN), domains: map[uint32]*domainState{}, setStart: -1}
	e.limit = c.StreamMessageSize
	if !t.Reliable() {
		e.limit = c.MTU
	}
	e.msg = make([]byte, 0, ipfix.MaxMessageLen)
	return e
}

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
	keep(e.flushMsg())
	return first
}

// Flush sends any buffered message and flushes the transport.
func (e *Exporter) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if err := e.flushMsg(); err != nil {
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
	err := e.flushMsg()
	if ferr := e.t.Flush(); err == nil {
		err = ferr
	}
	if cerr := e.t.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
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
		d = &domainState{id: id}
		e.domains[id] = d
	}
	return d
}

func (e *Exporter) closeSet() {
	if e.setStart >= 0 {
		e.msg = ipfix.FinishSet(e.msg, e.setStart, 0)
		e.setStart = -1
		e.setID = 0
	}
}

// start begins a message for domain d: it notices new transport sessions
// (templates must go again) and, over UDP, template refresh.
func (e *Exporter) start(d *domainState) error {
	s, err := e.t.Begin()
	if err != nil {
		return e.noteErr(err)
	}
	if !e.begun || s != e.session {
		e.begun, e.session = true, s
		for _, x := range e.domains {
			x.clearSent()
		}
	}
	now := e.cfg.Now()
	if !e.t.Reliable() && d.anySent &&
		(now.Sub(d.lastRefresh) >= e.cfg.TemplateRefresh || d.msgs >= e.cfg.TemplateRefreshMessages) {
		d.clearSent()
	}
	e.msg = ipfix.AppendHeader(e.msg[:0], ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: d.seq, Domain: d.id})
	e.open, e.cur, e.records, e.optRecs, e.setStart = true, d, 0, 0, -1
	if !d.anySent {
		e.appendMetadata(d)
		d.lastRefresh, d.msgs = now, 0
	}
	return nil
}

// appendMetadata appends the exporter options template and its record.
func (e *Exporter) appendMetadata(d *domainState) {
	t := e.optionsTemplate()
	var s int
	e.msg, s = ipfix.AppendSetHeader(e.msg, ipfix.OptionsSetID)
	e.msg = ipfix.AppendTemplate(e.msg, t)
	e.msg = ipfix.FinishSet(e.msg, s, 0)
	e.stats.Templates++
	e.msg, s = ipfix.AppendSetHeader(e.msg, t.ID)
	e.msg = be32(e.msg, d.id)
	e.msg = be32(e.msg, e.cfg.ExportingProcessID)
	e.msg = be64(e.msg, d.flowRecords)
	e.msg = ipfix.FinishSet(e.msg, s, 0)
	e.optRecs++
	d.markSent(t.ID)
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

// add appends one record, flushing the current message first when the
// record would not fit.
func (e *Exporter) add(r *flow.Record) error {
	d := e.domain(r.ObservationDomain)
	if e.open && e.cur != d {
		if err := e.flushMsg(); err != nil {
			e.stats.Dropped++
			return err
		}
	}
	t, _ := e.enc.Template(r)
	sym := e.enc.SymptomTemplate()
	for attempt := 0; attempt < 2; attempt++ {
		if !e.open {
			if err := e.start(d); err != nil {
				e.stats.Dropped++
				return err
			}
		}
		mark, markSet, markSetID := len(e.msg), e.setStart, e.setID
		needSym := len(r.Symptoms) > 0 && !d.isSent(sym.ID)
		needT := !d.isSent(t.ID)
		if needSym || needT {
			e.closeSet()
			var s int
			e.msg, s = ipfix.AppendSetHeader(e.msg, ipfix.TemplateSetID)
			if needSym {
				e.msg = ipfix.AppendTemplate(e.msg, sym)
			}
			if needT {
				e.msg = ipfix.AppendTemplate(e.msg, t)
			}
			e.msg = ipfix.FinishSet(e.msg, s, 0)
		}
		if e.setStart < 0 || e.setID != t.ID {
			e.closeSet()
			e.msg, e.setStart = ipfix.AppendSetHeader(e.msg, t.ID)
			e.setID = t.ID
		}
		e.msg = e.enc.AppendRecord(e.msg, r)
		fits := len(e.msg) <= e.limit || (attempt == 1 && len(e.msg) <= ipfix.MaxMessageLen)
		if fits {
			if needSym {
				d.markSent(sym.ID)
				e.stats.Templates++
			}
			if needT {
				d.markSent(t.ID)
				e.stats.Templates++
			}
			e.records++
			return nil
		}
		e.msg, e.setStart, e.setID = e.msg[:mark], markSet, markSetID
		if attempt == 0 {
			if err := e.flushMsg(); err != nil {
				e.stats.Dropped++
				return err
			}
		}
	}
	e.stats.Dropped++
	return e.noteErr(fmt.Errorf("exporter: record of %d symptoms does not fit in a message", len(r.Symptoms)))
}

// flushMsg finishes and sends the current message.
func (e *Exporter) flushMsg() error {
	if !e.open {
		return nil
	}
	e.open = false
	e.closeSet()
	d := e.cur
	if len(e.msg) == ipfix.HeaderLen {
		return nil
	}
	if err := ipfix.FinishMessage(e.msg); err != nil {
		return e.noteErr(err)
	}
	seq := d.seq
	err := e.t.Write(e.msg)
	if err != nil {
		err = e.retry(d, seq, err)
	}
	d.msgs++
	if err != nil {
		e.stats.Dropped += uint64(e.records)
		// The collector never sees these records: keep the sequence
		// number so that it does not report them lost twice.
		return e.noteErr(err)
	}
	n := e.records + e.optRecs
	d.seq += uint32(n)
	d.flowRecords += uint64(e.records)
	e.stats.Messages++
	e.stats.Records += uint64(e.records)
	e.stats.OptionsRecords += uint64(e.optRecs)
	e.stats.Bytes += uint64(len(e.msg))
	return nil
}

// retry reconnects a stream transport with backoff and resends the
// message, preceded by the templates the new session has not seen.
func (e *Exporter) retry(d *domainState, seq uint32, err error) error {
	rc, ok := e.t.(Reconnector)
	if !ok {
		return err
	}
	e.noteErr(err)
	wait := e.cfg.RetryMin
	for i := 0; i < e.cfg.Retries; i++ {
		time.Sleep(wait)
		wait = min(wait*2, e.cfg.RetryMax)
		s, rerr := rc.Reconnect()
		if rerr != nil {
			err = rerr
			e.noteErr(rerr)
			continue
		}
		e.stats.Reconnects++
		e.begun, e.session = true, s
		for _, x := range e.domains {
			x.clearSent()
		}
		tm := e.templateMessage(d, seq)
		if err = e.t.Write(tm); err != nil {
			e.noteErr(err)
			continue
		}
		e.stats.Messages++
		e.stats.Bytes += uint64(len(tm))
		if err = e.t.Write(e.msg); err == nil {
			return nil
		}
		e.noteErr(err)
	}
	return err
}

// templateMessage builds a message holding every template built so far,
// for a new transport session.
func (e *Exporter) templateMessage(d *domainState, seq uint32) []byte {
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
	b = ipfix.FinishSet(b, s, 0)
	b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
	b = ipfix.AppendTemplate(b, e.optionsTemplate())
	b = ipfix.FinishSet(b, s, 0)
	d.markSent(ipfix.ExporterOptionsTemplateID)
	e.stats.Templates += 2
	ipfix.FinishMessage(b)
	return b
}
