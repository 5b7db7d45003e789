package exporter

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/ipfix"
)

// SpoolConfig configures a Spool. The zero value of every field but Dir
// means its default.
type SpoolConfig struct {
	// Dir holds the spool file (spool.db); it is created if missing.
	Dir string
	// MaxBytes bounds the messages kept (default 256 MiB); beyond it the
	// oldest go: those already sent are forgotten, those never sent are
	// dropped and counted (SpoolStats.Dropped).
	MaxBytes int64
	// Window is how long a message written to the collector stays
	// spooled (default 10s): IPFIX has no acknowledgement, so a message
	// is known delivered only when the collector has confirmed it stored
	// the stream (Close, collector.StoredAck) or when the connection
	// outlived it by Window after the collector's host acknowledged its
	// bytes (TCP, on Linux). Everything
	// still spooled is resent after a reconnect; the collector drops what
	// it has already stored (ipfix.SpoolOptionsTemplate).
	Window time.Duration
	// DrainTimeout bounds how long Close keeps trying to deliver what is
	// spooled (0: until delivered).
	DrainTimeout time.Duration
	// RetryMin and RetryMax bound the reconnect backoff (default 50ms, 2s).
	RetryMin, RetryMax time.Duration
	// PEN is the enterprise number of the spool-instance element.
	PEN uint32
	// Now returns the time (time.Now); tests set it.
	Now func() time.Time
}

// ErrUndelivered is returned (wrapped) by Close when records remain
// spooled after DrainTimeout.
var ErrUndelivered = errors.New("records remain spooled")

// Spool is a Transport that keeps every message on disk (bbolt) until its
// delivery is known, and replays what is not known delivered, in order,
// after each reconnect and after a restart of the process: the spool file
// also holds the templates seen, each domain's next sequence number and
// the spool's instance id, which a new Exporter over the same directory
// resumes. Only stream transports (TCP, TLS) can be spooled: they report
// failures, and a connection start is where templates and the replay go.
//
// A Spool is used by one Exporter, whose lock serialises the calls.
type Spool struct {
	cfg  SpoolConfig
	t    Transport
	rc   Reconnector
	db   *bolt.DB
	path string

	instance uint64
	seqs     map[uint32]uint32                   // next sequence number per domain
	tmpls    map[uint32]map[uint16]spoolTemplate // templates seen, per domain
	q        []*spoolMsg                         // spooled messages, oldest first
	bytes    int64
	nextKey  uint64

	unsaved   map[uint64][]byte // messages not yet in the file
	released  []uint64          // keys to delete from the file
	dirtyTmpl bool
	lastSave  time.Time

	connected bool
	announced map[uint32]bool // domains whose instance the connection carried
	retryAt   time.Time
	wait      time.Duration

	stopDrain atomic.Bool // StopDraining: Close gives up at once

	mu    sync.Mutex // guards st for Stats from other goroutines
	st    SpoolStats
	flows uint64 // flow records in q
	// sent are messages forgotten to make room after they were written
	// on the current connection: delivered once the connection outlives
	// them as release requires of spooled ones, lost (counted dropped)
	// if it fails first.
	sent []sentMsg
}

// sentMsg is what the spool remembers of a message it forgot to make
// room while the connection it was written on may still fail.
type sentMsg struct {
	flows uint32
	at    time.Time
	end   uint64
}

type spoolTemplate struct {
	set uint16 // ipfix.TemplateSetID or OptionsSetID
	rec []byte // the template record as sent
}

type spoolMsg struct {
	key     uint64
	domain  uint32
	seq     uint32
	flows   uint32
	size    int
	written bool
	at      time.Time // written on the current connection at
	end     uint64    // stream bytes written on the connection up to its end
}

// streamPoser is a transport that knows how much of the current
// connection's stream the collector's host has acknowledged.
type streamPoser interface {
	streamPos() (written, acked uint64, ok bool)
}

// SpoolStats are a Spool's counters.
type SpoolStats struct {
	Spooled       uint64 // flow records spooled now
	Messages      uint64 // messages spooled now
	Bytes         int64  // bytes spooled now
	Dropped       uint64 // flow records dropped, never sent, from a full spool
	Replayed      uint64 // messages sent again after a reconnect
	Connects      uint64 // connections made
	Saves         uint64 // file transactions
	LastError     string // latest connection or write error
	SavedMessages uint64 // messages written to the file
	Connected     bool   // a connection to the collector is up
}

var (
	bucketMeta  = []byte("meta")
	bucketSeq   = []byte("seq")
	bucketTmpl  = []byte("templates")
	bucketMsgs  = []byte("messages")
	keyInstance = []byte("instance")
)

// saveEvery and saveBytes bound how long and how much the spool holds in
// memory before it writes the file: messages are sent only once saved.
const (
	saveEvery = 100 * time.Millisecond
	saveBytes = 1 << 20
)

// OpenSpool opens (or creates) the spool in cfg.Dir in front of t, which
// must be a stream transport that can reconnect (NewTCP, NewTLS).
func OpenSpool(t Transport, cfg SpoolConfig) (*Spool, error) {
	rc, ok := t.(Reconnector)
	if !ok || !t.Reliable() {
		return nil, errors.New("spool: needs a stream transport (tcp://, tls://)")
	}
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.Window <= 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 50 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 2 * time.Second
	}
	if cfg.PEN == 0 {
		cfg.PEN = ipfix.DefaultPEN
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	path := filepath.Join(cfg.Dir, "spool.db")
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	s := &Spool{cfg: cfg, t: t, rc: rc, db: db, path: path, seqs: map[uint32]uint32{},
		tmpls: map[uint32]map[uint16]spoolTemplate{}, unsaved: map[uint64][]byte{}, announced: map[uint32]bool{}, wait: cfg.RetryMin}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: %s: %w", path, err)
	}
	return s, nil
}

// load reads the instance, sequence numbers, templates and the index of
// spooled messages; a new file gets a random instance.
func (s *Spool) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketSeq, bucketTmpl, bucketMsgs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyInstance); len(v) == 8 {
			s.instance = binary.BigEndian.Uint64(v)
		} else {
			var b [8]byte
			for s.instance == 0 {
				if _, err := rand.Read(b[:]); err != nil {
					return err
				}
				s.instance = binary.BigEndian.Uint64(b[:])
			}
			if err := meta.Put(keyInstance, b[:]); err != nil {
				return err
			}
		}
		tx.Bucket(bucketSeq).ForEach(func(k, v []byte) error {
			if len(k) == 4 && len(v) == 4 {
				s.seqs[binary.BigEndian.Uint32(k)] = binary.BigEndian.Uint32(v)
			}
			return nil
		})
		tx.Bucket(bucketTmpl).ForEach(func(k, v []byte) error {
			if len(k) == 6 && len(v) > 2 {
				d := binary.BigEndian.Uint32(k)
				s.template(d, binary.BigEndian.Uint16(k[4:]), binary.BigEndian.Uint16(v), v[2:])
			}
			return nil
		})
		s.dirtyTmpl = false
		return tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 4+ipfix.HeaderLen {
				return nil
			}
			h, _ := ipfix.ParseHeader(v[4:])
			m := &spoolMsg{key: binary.BigEndian.Uint64(k), domain: h.Domain, seq: h.Sequence,
				flows: binary.BigEndian.Uint32(v), size: len(v) - 4}
			s.q = append(s.q, m)
			s.bytes += int64(m.size)
			s.flows += uint64(m.flows)
			s.nextKey = m.key + 1
			return nil
		})
	})
}

// Instance is the spool's instance id (ipfix.SpoolOptionsTemplate).
func (s *Spool) Instance() uint64 { return s.instance }

// NextSeq returns the sequence number that domain's next message takes,
// as the spool file remembers it.
func (s *Spool) NextSeq(domain uint32) (uint32, bool) {
	n, ok := s.seqs[domain]
	return n, ok
}

func (s *Spool) template(domain uint32, id, set uint16, rec []byte) {
	m := s.tmpls[domain]
	if m == nil {
		m = map[uint16]spoolTemplate{}
		s.tmpls[domain] = m
	}
	if old, ok := m[id]; ok && old.set == set && string(old.rec) == string(rec) {
		return
	}
	m[id] = spoolTemplate{set: set, rec: append([]byte(nil), rec...)}
	s.dirtyTmpl = true
}

// noteTemplates records the template definitions msg carries.
func (s *Spool) noteTemplates(msg []byte) {
	h, ok := ipfix.ParseHeader(msg)
	if !ok || int(h.Length) > len(msg) {
		return
	}
	for off := ipfix.HeaderLen; off+ipfix.SetHeaderLen <= int(h.Length); {
		id := binary.BigEndian.Uint16(msg[off:])
		l := int(binary.BigEndian.Uint16(msg[off+2:]))
		if l < ipfix.SetHeaderLen || off+l > int(h.Length) {
			return
		}
		if id == ipfix.TemplateSetID || id == ipfix.OptionsSetID {
			body := msg[off+ipfix.SetHeaderLen : off+l]
			for len(body) >= 4 {
				n := templateLen(body, id == ipfix.OptionsSetID)
				if n <= 0 {
					break
				}
				tid := binary.BigEndian.Uint16(body)
				if binary.BigEndian.Uint16(body[2:]) > 0 { // not a withdrawal
					s.template(h.Domain, tid, id, body[:n])
				}
				body = body[n:]
			}
		}
		off += l
	}
}

// templateLen is the length of the template record at the start of b (0
// when it does not parse).
func templateLen(b []byte, options bool) int {
	count := int(binary.BigEndian.Uint16(b[2:]))
	off := 4
	if options && count > 0 {
		off = 6
	}
	if off > len(b) {
		return 0
	}
	for i := 0; i < count; i++ {
		if off+4 > len(b) {
			return 0
		}
		if b[off]&0x80 != 0 {
			off += 8
		} else {
			off += 4
		}
	}
	if off > len(b) {
		return 0
	}
	return off
}

// Begin implements Transport: the spool is one session for the Exporter,
// which therefore sends each template once; the spool sends them again at
// every connection.
func (s *Spool) Begin() (uint64, error) { return 1, nil }

// Reliable implements Transport.
func (s *Spool) Reliable() bool { return true }

// Write implements Transport for messages whose record counts are not
// known (none: the Exporter calls WriteRecords).
func (s *Spool) Write(msg []byte) error { return s.WriteRecords(msg, 0, 0) }

// WriteRecords spools msg, which holds dataRecords data records (its
// share of sequence numbers) of which flowRecords are flow records. It is
// saved and sent by the next Sync, Flush or Close.
func (s *Spool) WriteRecords(msg []byte, dataRecords, flowRecords int) error {
	h, ok := ipfix.ParseHeader(msg)
	if !ok {
		return errors.New("spool: not an IPFIX message")
	}
	s.noteTemplates(msg)
	s.seqs[h.Domain] = h.Sequence + uint32(dataRecords)
	m := &spoolMsg{key: s.nextKey, domain: h.Domain, seq: h.Sequence, flows: uint32(flowRecords), size: len(msg) + 4}
	s.nextKey++
	v := make([]byte, 4, 4+len(msg))
	binary.BigEndian.PutUint32(v, uint32(flowRecords))
	s.unsaved[m.key] = append(v, msg...)
	s.q = append(s.q, m)
	s.bytes += int64(m.size)
	s.flows += uint64(m.flows)
	s.makeRoom()
	return nil
}

// makeRoom keeps the spool within MaxBytes. A message already written on
// the live connection is on its way (in the kernel's socket buffer, or
// with the collector): the spool keeps it only to resend it should the
// connection fail unconfirmed, so it goes first, forgotten but
// remembered (sent) until the connection outlives it as release
// requires, and counted dropped only if the connection fails first.
// Before a message never written is dropped, a connected spool saves and
// sends what waits, so that a burst larger than the spool on a healthy
// connection is delivered, not dropped; what cannot be sent (no
// connection) is dropped, oldest first, and counted. Dropping a message
// never sent on a live connection would also lose the template
// definitions it may carry, making the collector refuse the records
// after it; a reconnect sends every template first.
func (s *Spool) makeRoom() {
	flushed := false
	for s.bytes > s.cfg.MaxBytes && len(s.q) > 1 {
		switch {
		case s.q[0].written && s.connected:
			m := s.q[0]
			s.sent = append(s.sent, sentMsg{flows: m.flows, at: m.at, end: m.end})
			s.forget()
		case s.connected && !flushed:
			flushed = true
			if err := s.save(); err == nil {
				s.pump(s.cfg.Now())
			}
		default:
			s.drop()
		}
	}
}

// drop removes the oldest message, counting its records lost: never
// written, or written on a connection that failed since.
func (s *Spool) drop() {
	m := s.q[0]
	s.q[0] = nil
	s.q = s.q[1:]
	s.bytes -= int64(m.size)
	s.flows -= uint64(m.flows)
	s.mu.Lock()
	s.st.Dropped += uint64(m.flows)
	s.mu.Unlock()
	if _, ok := s.unsaved[m.key]; ok {
		delete(s.unsaved, m.key)
	} else {
		s.released = append(s.released, m.key)
	}
}

// save writes unsaved messages, released keys, sequence numbers and new
// templates to the file in one transaction.
func (s *Spool) save() error {
	if len(s.unsaved) == 0 && len(s.released) == 0 && !s.dirtyTmpl {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMsgs)
		var k [8]byte
		for _, key := range s.released {
			binary.BigEndian.PutUint64(k[:], key)
			if err := mb.Delete(k[:]); err != nil {
				return err
			}
		}
		for key, v := range s.unsaved {
			binary.BigEndian.PutUint64(k[:], key)
			if err := mb.Put(k[:], v); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bucketSeq)
		for d, n := range s.seqs {
			var dk, nv [4]byte
			binary.BigEndian.PutUint32(dk[:], d)
			binary.BigEndian.PutUint32(nv[:], n)
			if err := sb.Put(dk[:], nv[:]); err != nil {
				return err
			}
		}
		if s.dirtyTmpl {
			tb := tx.Bucket(bucketTmpl)
			for d, m := range s.tmpls {
				for id, t := range m {
					var tk [6]byte
					binary.BigEndian.PutUint32(tk[:], d)
					binary.BigEndian.PutUint16(tk[4:], id)
					v := binary.BigEndian.AppendUint16(nil, t.set)
					if err := tb.Put(tk[:], append(v, t.rec...)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: save %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.st.Saves++
	s.st.SavedMessages += uint64(len(s.unsaved))
	s.mu.Unlock()
	clear(s.unsaved)
	s.released = s.released[:0]
	s.dirtyTmpl = false
	s.lastSave = s.cfg.Now()
	return nil
}

// Sync saves what is due and sends what is saved: it connects (with
// backoff) when not connected, and after every connection sends the
// templates and replays everything spooled. A failing collector is not
// an error here: the messages stay spooled.
func (s *Spool) Sync() error {
	return s.sync(false)
}

func (s *Spool) sync(force bool) error {
	now := s.cfg.Now()
	pending := 0
	for _, v := range s.unsaved {
		pending += len(v)
	}
	if force || pending >= saveBytes || now.Sub(s.lastSave) >= saveEvery {
		if err := s.save(); err != nil {
			return err
		}
	}
	s.pump(now)
	s.release(now)
	s.publish()
	return nil
}

// pump connects if needed and writes every saved message not yet written
// on the current connection.
func (s *Spool) pump(now time.Time) {
	if !s.connected {
		if now.Before(s.retryAt) {
			return
		}
		if _, err := s.rc.Reconnect(); err != nil {
			s.fail(now, err)
			return
		}
		// The backoff is not reset here but when the collector takes
		// messages (release): a collector that accepts connections and
		// closes them without confirming it stored the stream (its disk
		// full) would otherwise get the whole spool again every RetryMin.
		s.connected = true
		s.mu.Lock()
		s.st.Connects++
		s.st.Connected = true
		s.mu.Unlock()
		for _, m := range s.q {
			m.written = false
		}
		if err := s.writeTemplates(now); err != nil {
			s.fail(now, err)
			return
		}
	}
	var tx *bolt.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	for _, m := range s.q {
		if m.written {
			continue
		}
		if _, ok := s.unsaved[m.key]; ok {
			// Not saved yet: it goes with a later Sync.
			return
		}
		if tx == nil {
			var err error
			if tx, err = s.db.Begin(false); err != nil {
				s.fail(now, err)
				return
			}
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], m.key)
		v := tx.Bucket(bucketMsgs).Get(k[:])
		if len(v) < 4 {
			continue
		}
		if !s.announced[m.domain] {
			// A domain first met after the connection was made (the
			// connection came before any record, or a new domain):
			// its instance goes before its first message.
			if err := s.writeDomainTemplates(now, m.domain, m.seq); err != nil {
				s.fail(now, err)
				return
			}
		}
		if err := s.t.Write(v[4:]); err != nil {
			s.fail(now, err)
			return
		}
		if m.at != (time.Time{}) {
			s.mu.Lock()
			s.st.Replayed++
			s.mu.Unlock()
		}
		m.written, m.at = true, now
		if sp, ok := s.t.(streamPoser); ok {
			m.end, _, _ = sp.streamPos()
		}
	}
}

// fail notes a connection failure: everything spooled goes again on the
// next connection, which is tried after the backoff.
func (s *Spool) fail(now time.Time, err error) {
	s.connected = false
	s.dropSent()
	s.retryAt = now.Add(s.wait)
	s.wait = min(s.wait*2, s.cfg.RetryMax)
	s.mu.Lock()
	s.st.LastError = err.Error()
	s.st.Connected = false
	s.mu.Unlock()
}

// writeTemplates sends, per domain, the templates the spool knows and the
// spool-instance record, ahead of the replay. The message takes the
// sequence number before the domain's first spooled message, so that the
// replay follows it without a gap (its one options record reuses a
// number already counted, which only a collector of this session could
// notice, and it starts counting here).
func (s *Spool) writeTemplates(now time.Time) error {
	clear(s.announced)
	first := map[uint32]uint32{}
	for _, m := range s.q {
		if _, ok := first[m.domain]; !ok {
			first[m.domain] = m.seq
		}
	}
	for d := range s.seqs {
		seq, ok := first[d]
		if !ok {
			seq = s.seqs[d]
		}
		if err := s.writeDomainTemplates(now, d, seq); err != nil {
			return err
		}
	}
	return nil
}

// writeDomainTemplates sends domain d's templates and the spool-instance
// record on the current connection, under sequence number seq-1 (before
// the message numbered seq that follows), and notes d announced: a
// collector identifies (and drops when replayed) the records of a
// spooling exporter only once it knows its instance.
func (s *Spool) writeDomainTemplates(now time.Time, d, seq uint32) error {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(now.Unix()), Sequence: seq - 1, Domain: d})
	for _, set := range []uint16{ipfix.TemplateSetID, ipfix.OptionsSetID} {
		var st int
		b, st = ipfix.AppendSetHeader(b, set)
		n := 0
		for id, t := range s.tmpls[d] {
			if t.set == set && id != ipfix.SpoolOptionsTemplateID {
				b = append(b, t.rec...)
				n++
			}
		}
		if set == ipfix.OptionsSetID {
			b = ipfix.AppendTemplate(b, ipfix.SpoolOptionsTemplate(s.cfg.PEN))
			n++
		}
		if n == 0 {
			b = b[:st]
			continue
		}
		b = ipfix.FinishSet(b, st, 0)
	}
	var st int
	b, st = ipfix.AppendSetHeader(b, ipfix.SpoolOptionsTemplateID)
	b = ipfix.AppendSpoolRecord(b, d, s.instance)
	b = ipfix.FinishSet(b, st, 0)
	if err := ipfix.FinishMessage(b); err != nil {
		return err
	}
	if err := s.t.Write(b); err != nil {
		return err
	}
	s.announced[d] = true
	return nil
}

// release forgets messages the connection has outlived by Window and,
// where the kernel says (Linux), whose bytes the collector's host has
// acknowledged: a collector that falls behind keeps its backlog in the
// spool.
func (s *Spool) release(now time.Time) {
	if !s.connected {
		return
	}
	var acked uint64
	known := false
	if sp, ok := s.t.(streamPoser); ok {
		_, acked, known = sp.streamPos()
	}
	for len(s.sent) > 0 {
		m := s.sent[0]
		if now.Sub(m.at) < s.cfg.Window || (known && acked < m.end) {
			break
		}
		s.sent = s.sent[1:]
	}
	for len(s.q) > 0 {
		m := s.q[0]
		if !m.written || now.Sub(m.at) < s.cfg.Window || (known && acked < m.end) {
			return
		}
		s.forget()
		s.wait = s.cfg.RetryMin // the collector is taking messages
	}
}

// forget removes the oldest message as delivered.
func (s *Spool) forget() {
	m := s.q[0]
	s.q[0] = nil
	s.q = s.q[1:]
	s.bytes -= int64(m.size)
	s.flows -= uint64(m.flows)
	s.released = append(s.released, m.key)
}

// dropSent counts the records of the messages forgotten to make room
// on a connection that failed before it outlived them: the collector may
// not have stored them, and as the spool no longer has them to replay
// (and a collector counts no sequence gap at a spool's replay: the spool
// accounts for what it dropped), they are counted dropped.
func (s *Spool) dropSent() {
	var n uint64
	for _, m := range s.sent {
		n += uint64(m.flows)
	}
	s.sent = s.sent[:0]
	if n > 0 {
		s.mu.Lock()
		s.st.Dropped += n
		s.mu.Unlock()
	}
}

func (s *Spool) publish() {
	s.mu.Lock()
	s.st.Spooled, s.st.Messages, s.st.Bytes = s.flows, uint64(len(s.q)), s.bytes
	s.mu.Unlock()
}

// Stats returns the spool's counters; safe to call concurrently.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Flush implements Transport: it saves everything and sends what it can.
func (s *Spool) Flush() error { return s.sync(true) }

// Close implements Transport: it delivers everything spooled, reconnecting
// as needed, and waits for the collector to consume the stream; after
// DrainTimeout it gives up, leaves the rest in the file for the next
// start and returns an error wrapping ErrUndelivered that says how many
// records remain.
func (s *Spool) Close() error {
	defer s.db.Close()
	var deadline time.Time
	if s.cfg.DrainTimeout > 0 {
		deadline = s.cfg.Now().Add(s.cfg.DrainTimeout)
	}
	for {
		if err := s.sync(true); err != nil {
			return err
		}
		now := s.cfg.Now()
		if s.connected && (len(s.q) == 0 || s.q[len(s.q)-1].written) {
			consumed, err := closeConfirmed(s.t)
			if consumed {
				for len(s.q) > 0 {
					s.forget()
				}
				s.sent = nil
				s.publish()
				return s.save()
			}
			if err == nil {
				err = errors.New("collector did not confirm it consumed the stream")
			}
			s.fail(now, err)
		}
		if len(s.q) == 0 && !s.connected {
			// Nothing to deliver and no collector to tell.
			return s.save()
		}
		if (!deadline.IsZero() && !now.Before(deadline)) || s.stopDrain.Load() {
			n := s.flows
			s.publish()
			if err := s.save(); err != nil {
				return err
			}
			return fmt.Errorf("spool %s: %d %w (collector: %s)", s.cfg.Dir, n, ErrUndelivered, s.Stats().LastError)
		}
		if wait := s.retryAt.Sub(now); wait > 0 {
			if !deadline.IsZero() {
				wait = min(wait, deadline.Sub(now))
			}
			time.Sleep(min(wait, stopCheck)) // the reconnect backoff
		}
	}
}

// stopCheck bounds how long Close sleeps before it looks at StopDraining
// again.
const stopCheck = 100 * time.Millisecond

// StopDraining makes a Close under way (or the next one) give up
// delivering what is spooled as if its DrainTimeout had passed: what
// remains stays in the file for the next start. Safe to call from any
// goroutine; a probe stopped by a signal while it drains calls it.
func (s *Spool) StopDraining() { s.stopDrain.Store(true) }

// closeConfirmed ends the stream and says whether the collector confirmed
// it consumed everything (closed its side after reading to the end).
func closeConfirmed(t Transport) (bool, error) {
	if c, ok := t.(interface{ closeConfirm() (bool, error) }); ok {
		return c.closeConfirm()
	}
	return false, t.Close()
}
