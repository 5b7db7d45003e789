package ipfix

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/mira-project/mira/flow"
)

// Reason classifies malformed or undecodable input.
type Reason uint8

// Reasons input is counted as malformed.
const (
	ReasonBadVersion          Reason = iota // version field is not 10
	ReasonBadMessageLength                  // length field < 16 or past the input
	ReasonShortSet                          // set length shorter than a set header
	ReasonBadSetLength                      // set runs past the message
	ReasonReservedSetID                     // set id 0, 1 or 4..255
	ReasonBadTemplateID                     // template id below 256
	ReasonZeroFieldTemplate                 // zero-field template where no withdrawal may be
	ReasonFieldCount                        // field count runs past the set
	ReasonBadScopeCount                     // options scope count 0 or above field count
	ReasonZeroLengthRecord                  // template whose records would be 0 bytes long
	ReasonTruncatedRecord                   // record cut short by the end of its set
	ReasonBadVarLen                         // variable-length prefix runs past the record
	ReasonDataWithoutTemplate               // data set for a template not (yet) known
	ReasonBadSubTemplateList                // malformed or unknown subTemplateList
	ReasonImplausibleCount                  // packets beyond MaxRecordPackets (or octets beyond 65535 × that)
	ReasonImplausibleOctets                 // more octets than packets × 65535
	ReasonImplausibleTime                   // start after end, or times outside the export time's window
	ReasonImplausibleLedger                 // loss-ledger options no exporting process can send (see plausibleLedger)
	NumReasons
)

// Bounds of a plausible flow record (see Session.Decode). Records beyond
// them are dropped and counted by reason; they are well-formed IPFIX
// whose values would wreck the sums and time windows of reports
// (bit-flipped or hostile input).
const (
	// MaxRecordPackets bounds one record's packet count: 2^40 is three
	// hours at 100 million packets per second, far beyond any active
	// timeout.
	MaxRecordPackets = 1 << 40
	// MaxPacketOctets bounds the octets per packet: an IPv4 or IPv6
	// packet (jumbograms aside) is at most 65535 bytes.
	MaxPacketOctets = 65535
	// MaxClockSkew is how long after its message's export time a record
	// may end (the exporter's clock and the metering clock may differ).
	MaxClockSkew = time.Hour
)

var reasonNames = [NumReasons]string{
	"bad-version", "bad-message-length", "short-set", "bad-set-length",
	"reserved-set-id", "bad-template-id", "zero-field-template", "field-count",
	"bad-scope-count", "zero-length-record", "truncated-record", "bad-varlen",
	"data-without-template", "bad-subtemplatelist",
	"implausible-count", "implausible-octets", "implausible-time",
	"implausible-ledger",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// DecodeError says what was wrong with a message and where: Offset is
// relative to the start of the message.
type DecodeError struct {
	Input      string
	Offset     int
	SetID      uint16
	TemplateID uint16
	Reason     Reason
}

func (e *DecodeError) Error() string {
	in := e.Input
	if in == "" {
		in = "message"
	}
	return fmt.Sprintf("ipfix: %s: %s at message offset %d (set %d, template %d)",
		in, e.Reason, e.Offset, e.SetID, e.TemplateID)
}

// SessionStats are a Session's counters.
type SessionStats struct {
	Messages       uint64
	DataRecords    uint64 // all data records, options records included
	OptionsRecords uint64
	FlowRecords    uint64 // flow.Records produced (biflow records give two)
	// LostRecords is the sum of sequence-number gaps (in records);
	// OutOfOrder counts messages whose sequence number was behind.
	LostRecords uint64
	OutOfOrder  uint64
	// SeededLost is the part of LostRecords counted at the first message
	// of a domain seeded from earlier transport sessions (Session.Seed);
	// SeqRestarts counts seeded domains whose first message was behind
	// the seed (a restarted exporter, or a spool's replay): re-seeded,
	// not counted lost.
	SeededLost         uint64
	SeqRestarts        uint64
	TemplatesLearned   uint64
	TemplatesRedefined uint64
	TemplatesWithdrawn uint64
	// TemplatesEvicted counts templates dropped to stay within
	// MaxTemplates (least recently used first, or by the caller's Trim);
	// TemplatesExpired UDP templates not refreshed within
	// TemplateLifetime; DomainsEvicted observation domains whose state
	// (sequence numbers, options, names) was dropped to stay within
	// MaxDomains.
	TemplatesEvicted uint64
	TemplatesExpired uint64
	DomainsEvicted   uint64
	// BadAppNames counts application names (HTTP host, server name,
	// ALPN list, DNS name) dropped for a byte outside printable ASCII.
	BadAppNames uint64
	// SelectorReports counts the selector reports received (options
	// records with a selectorId: SelectorOptionsTemplate).
	SelectorReports uint64
	Malformed       [NumReasons]uint64
}

// Add adds o's counters to s.
func (s *SessionStats) Add(o *SessionStats) {
	s.Messages += o.Messages
	s.DataRecords += o.DataRecords
	s.OptionsRecords += o.OptionsRecords
	s.FlowRecords += o.FlowRecords
	s.LostRecords += o.LostRecords
	s.OutOfOrder += o.OutOfOrder
	s.SeededLost += o.SeededLost
	s.SeqRestarts += o.SeqRestarts
	s.TemplatesLearned += o.TemplatesLearned
	s.TemplatesRedefined += o.TemplatesRedefined
	s.TemplatesWithdrawn += o.TemplatesWithdrawn
	s.TemplatesEvicted += o.TemplatesEvicted
	s.TemplatesExpired += o.TemplatesExpired
	s.DomainsEvicted += o.DomainsEvicted
	s.BadAppNames += o.BadAppNames
	s.SelectorReports += o.SelectorReports
	for i := range s.Malformed {
		s.Malformed[i] += o.Malformed[i]
	}
}

type tkey struct {
	domain uint32
	id     uint16
}

type decTemplate struct {
	Template
	raw    []byte // the template record as received
	ops    []op
	minLen int
	fixed  bool // no variable-length field: records are minLen bytes
	// plan is ops and field lengths side by side, for the record loops;
	// the first prefix fields are of fixed length and end at prefixLen.
	plan      []fieldOp
	prefix    int
	prefixLen int
	// fast is the flow record loop's compiled plan for the fixed-length
	// prefix: its fields that mean something (opSkip left out), each
	// with its offset in the record, so a record reads them without
	// walking the fields between.
	fast []fastOp
	// lead: fast starts with MIRA's lead, the addresses (IPv4 or IPv6),
	// runCore or runICMP, runMIRA, which flowRecord decodes without a
	// step of its loop each.
	lead bool
	// symPair: the template is MIRA's symptom record (symptomId of 2
	// bytes, symptomOccurrences of 4, nothing else that means something).
	symPair bool
	// key, the time the template was last received (for
	// TemplateLifetime) and its place in the session's use order.
	key        tkey
	seen       time.Time
	prev, next *decTemplate
	// used is the message (Session.msgs) a data set or subTemplateList
	// last used the template in: it moves to the front of the use order
	// once per message, not at every set (MIRA's records alternate
	// between templates, a set or two each).
	used uint64
}

type domainState struct {
	seqKnown     bool
	seeded       bool // expected came from Seed; not yet compared
	expected     uint32
	sysInit      int64 // systemInitTimeMilliseconds, ms since epoch
	sampling     uint32
	flowSampling uint32
	// selectors are the selector reports received (options records with
	// a selectorId: ipfix.SelectorOptionsTemplate), by selectorId: the
	// sampling of the records that name them (at most maxSelectors).
	selectors map[uint64]Sampling
	opts      DomainOptions
	used      uint64 // Session.msgs when last used
	// shared: opts' maps were handed to OnOptions and are copied before
	// the next change; pending: opts changed in the message being
	// decoded.
	shared, pending bool
}

// own makes ds's option maps its own to change (copy on write).
func (ds *domainState) own() {
	if !ds.shared {
		return
	}
	ds.opts.Symptoms = maps.Clone(ds.opts.Symptoms)
	ds.opts.Categories = maps.Clone(ds.opts.Categories)
	ds.opts.Aggregates = maps.Clone(ds.opts.Aggregates)
	ds.shared = false
}

func setName[K comparable](ds *domainState, m *map[K]string, id K, name []byte) bool {
	if len(name) > maxName {
		name = name[:maxName] // as exporters cut them; bounds what a domain keeps
	}
	if old, ok := (*m)[id]; ok && old == string(name) {
		return false
	}
	ds.own()
	if *m == nil {
		*m = map[K]string{}
	}
	(*m)[id] = string(name)
	return true
}

// Session holds the decoding state of one transport session (one UDP
// exporter address:port, one TCP connection, one file): templates per
// (observation domain, template id) and sequence numbers per domain.
type Session struct {
	// Input names the session in errors (e.g. "udp 192.0.2.1:4739").
	Input string
	// PEN is MIRA's enterprise number (DefaultPEN if 0).
	PEN uint32
	// UDP makes template withdrawals invalid (RFC 7011 §8.4): they are
	// counted as ReasonZeroFieldTemplate and ignored.
	UDP bool

	// MaxTemplates bounds the templates kept (0: no bound): learning one
	// more evicts the least recently used (received or used by a data
	// set). MaxDomains bounds the observation domains whose state is
	// kept (0: no bound); a new one evicts the least recently active.
	MaxTemplates int
	MaxDomains   int
	// TemplateLifetime, when positive, is how long a template lives
	// without being received again (RFC 7011 §8.4: over UDP, templates
	// the exporter stops refreshing expire); Expire applies it.
	TemplateLifetime time.Duration
	// Now returns the time templates are received at (time.Now).
	Now func() time.Time

	// Seed, when set, is asked for the sequence number expected next in
	// a domain when the session first meets it: what earlier transport
	// sessions of the same exporter delivered (a TCP reconnect, a
	// collector restart). The domain's first message is then compared
	// with it: ahead, the gap counts as lost records (SeededLost, in
	// LostRecords); behind, the exporter restarted or replays its
	// spool, and the domain is re-seeded from the message without
	// counting anything (SeqRestarts). A domain that announced a spool
	// instance (ipfix.SpoolOptionsTemplate) counts no gap at its first
	// message either: its spool accounts for what it dropped.
	Seed func(domain uint32) (next uint32, ok bool)

	// OnOptions, when set, is called at the end of Decode for each domain
	// whose options (sampling, names) the message changed. o is the
	// domain's whole state; its maps must not be changed (the session
	// copies them before changing them again).
	OnOptions func(domain uint32, o DomainOptions)

	templates map[tkey]*decTemplate
	domains   map[uint32]*domainState
	// stl caches the sub-template of the last subTemplateList decoded
	// (every record of a flow template names the same one); any change
	// to templates clears it.
	stlKey tkey
	stl    *decTemplate
	// tcache holds recently used templates by id (template): MIRA's
	// exporter starts a set at nearly every record (its records alternate
	// between template variants), so a map lookup per set costs as much
	// as decoding a few fields. drop removes a template from it.
	tcache [tcacheSize]*decTemplate
	// lru lists the templates, most recently used first.
	lruHead, lruTail *decTemplate
	msgs             uint64
	changed          []uint32 // domains whose options the message changed
	syms             []flow.SymptomCount
	stats            SessionStats
	// exportTime is the export time of the message being decoded (s).
	exportTime uint32
	// seqNext, seqGap and seqOK are the sequence accounting of the last
	// message decoded (Sequence).
	seqNext, seqGap  uint32
	seqOK, seqSeeded bool
	// names interns application names (they repeat: a server's name in
	// all its flows), so decoding them allocates only for new ones.
	names map[string]string
	// each, set during DecodeEach, takes every flow record as it is
	// decoded into rec (and rev, a biflow's reverse direction); the
	// records' application names then alias the message (no interning).
	each     func(r *flow.Record)
	rec, rev flow.Record
	// plain makes the record loops walk every field, without the
	// compiled plans (tests compare the two).
	plain bool
}

// NewSession returns an empty Session.
func NewSession(input string) *Session {
	return &Session{Input: input, templates: map[tkey]*decTemplate{}, domains: map[uint32]*domainState{}}
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats { return s.stats }

// Templates returns the number of templates currently known.
func (s *Session) Templates() int { return len(s.templates) }

func (s *Session) pen() uint32 {
	if s.PEN == 0 {
		return DefaultPEN
	}
	return s.PEN
}

func (s *Session) fail(off int, set, tid uint16, r Reason) error {
	s.stats.Malformed[r]++
	return &DecodeError{Input: s.Input, Offset: off, SetID: set, TemplateID: tid, Reason: r}
}

func (s *Session) domain(d uint32) *domainState {
	ds := s.domains[d]
	if ds == nil {
		if s.MaxDomains > 0 && len(s.domains) >= s.MaxDomains {
			s.evictDomain()
		}
		ds = &domainState{}
		if s.Seed != nil {
			if next, ok := s.Seed(d); ok {
				ds.seqKnown, ds.seeded, ds.expected = true, true, next
			}
		}
		s.domains[d] = ds
	}
	ds.used = s.msgs
	return ds
}

// evictDomain drops the state of the least recently active domain.
func (s *Session) evictDomain() {
	var victim uint32
	var oldest *domainState
	for d, ds := range s.domains {
		if oldest == nil || ds.used < oldest.used {
			victim, oldest = d, ds
		}
	}
	if oldest != nil {
		delete(s.domains, victim)
		s.stats.DomainsEvicted++
	}
}

func (s *Session) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// touch makes t the most recently used template.
func (s *Session) touch(t *decTemplate) {
	if s.lruHead == t {
		return
	}
	s.unlink(t)
	t.next = s.lruHead
	if s.lruHead != nil {
		s.lruHead.prev = t
	}
	s.lruHead = t
	if s.lruTail == nil {
		s.lruTail = t
	}
}

// use makes t, used by the message being decoded, the most recently
// used template, once per message: the templates a message uses are
// ahead of all others in the use order, in the order it first used them.
func (s *Session) use(t *decTemplate) {
	if t.used != s.msgs {
		t.used = s.msgs
		s.touch(t)
	}
}

func (s *Session) unlink(t *decTemplate) {
	if t.prev != nil {
		t.prev.next = t.next
	} else if s.lruHead == t {
		s.lruHead = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else if s.lruTail == t {
		s.lruTail = t.prev
	}
	t.prev, t.next = nil, nil
}

// drop forgets template t.
func (s *Session) drop(t *decTemplate) {
	s.unlink(t)
	delete(s.templates, t.key)
	s.stl = nil
	h := tcacheSlot(t.key.id)
	for _, c := range [...]**decTemplate{&s.tcache[h], &s.tcache[h^1]} {
		if *c == t {
			*c = nil
		}
	}
}

// template returns the template of domain and id, or nil.
func (s *Session) template(domain uint32, id uint16) *decTemplate {
	k := tkey{domain, id}
	h := tcacheSlot(id)
	c := &s.tcache[h]
	if t := *c; t != nil && t.key == k {
		return t
	}
	// The second way: a template whose slot another took keeps its
	// place beside it, the most recently used first.
	c2 := &s.tcache[h^1]
	if t := *c2; t != nil && t.key == k {
		*c, *c2 = t, *c
		return t
	}
	t := s.templates[k]
	if t != nil {
		*c, *c2 = t, *c
	}
	return t
}

// Trim evicts least recently used templates until at most n remain, and
// returns how many it evicted (counted in TemplatesEvicted).
func (s *Session) Trim(n int) int {
	evicted := 0
	for len(s.templates) > max(n, 0) && s.lruTail != nil {
		s.drop(s.lruTail)
		evicted++
	}
	s.stats.TemplatesEvicted += uint64(evicted)
	return evicted
}

// Expire drops the templates last received before now less
// TemplateLifetime (counted in TemplatesExpired) and returns how many.
func (s *Session) Expire(now time.Time) int {
	if s.TemplateLifetime <= 0 {
		return 0
	}
	cut := now.Add(-s.TemplateLifetime)
	n := 0
	for _, t := range s.templates {
		if t.seen.Before(cut) {
			s.drop(t)
			n++
		}
	}
	s.stats.TemplatesExpired += uint64(n)
	return n
}

// Decode decodes one IPFIX message and appends its flow records to out.
// Records decoded before a malformed set are returned with the error; the
// rest of that message is dropped. The Symptoms slices of the returned
// records are valid until the next call to Decode.
func (s *Session) Decode(msg []byte, out []flow.Record) ([]flow.Record, Header, error) {
	return s.decode(msg, out)
}

// DecodeEach decodes one IPFIX message as Decode does (the same checks,
// counters, options and sequence accounting) but hands each flow record
// to fn as soon as it is decoded, in the order Decode returns them,
// instead of collecting them: a caller that only re-encodes the records
// (a store) thus never holds a message's worth of flow.Records. The
// record fn gets, its Symptoms and the strings of its App alias the
// session's buffers and msg: they are valid only during the call, and fn
// must copy what it keeps. fn must not call the Session.
func (s *Session) DecodeEach(msg []byte, fn func(r *flow.Record)) (Header, error) {
	s.each = fn
	_, h, err := s.decode(msg, nil)
	s.each = nil
	return h, err
}

func (s *Session) decode(msg []byte, out []flow.Record) ([]flow.Record, Header, error) {
	s.syms = s.syms[:0]
	s.seqOK, s.seqGap, s.seqSeeded = false, 0, false
	if len(msg) < HeaderLen {
		return out, Header{}, s.fail(0, 0, 0, ReasonBadMessageLength)
	}
	if v := binary.BigEndian.Uint16(msg); v != Version {
		return out, Header{}, s.fail(0, 0, 0, ReasonBadVersion)
	}
	h, _ := ParseHeader(msg)
	if int(h.Length) < HeaderLen || int(h.Length) > len(msg) {
		return out, h, s.fail(2, 0, 0, ReasonBadMessageLength)
	}
	msg = msg[:h.Length]
	s.stats.Messages++
	s.msgs++
	s.exportTime = h.ExportTime
	ds := s.domain(h.Domain)
	records := 0
	seqOK := true
	var err, soft error
	off := HeaderLen
	for off < len(msg) {
		if len(msg)-off < SetHeaderLen {
			err = s.fail(off, 0, 0, ReasonShortSet)
			break
		}
		id := binary.BigEndian.Uint16(msg[off:])
		l := int(binary.BigEndian.Uint16(msg[off+2:]))
		if l < SetHeaderLen {
			err = s.fail(off, id, 0, ReasonShortSet)
			break
		}
		if off+l > len(msg) {
			err = s.fail(off, id, 0, ReasonBadSetLength)
			break
		}
		body := msg[off+SetHeaderLen : off+l]
		switch {
		case id == TemplateSetID || id == OptionsSetID:
			var e error
			e, err = s.templateSet(h.Domain, id, body, off)
			soft = cmpErr(soft, e)
		case id >= MinDataSetID:
			var n int
			n, out, err = s.dataSet(h.Domain, ds, id, body, off, out)
			records += n
			if err != nil && err.(*DecodeError).Reason == ReasonDataWithoutTemplate {
				// Dropped and counted; the other sets still decode.
				seqOK = false
				soft = cmpErr(soft, err)
				err = nil
			}
		default:
			soft = cmpErr(soft, s.fail(off, id, 0, ReasonReservedSetID))
		}
		if err != nil {
			break
		}
		off += l
	}
	if err != nil {
		seqOK = false
	} else {
		err = soft
	}
	s.sequence(ds, h.Sequence, uint32(records), seqOK)
	s.handOptions()
	return out, h, err
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// sequence accounts the message's sequence number: a gap ahead of the
// expected number is lost records; a number behind it is a late message,
// counted as out of order. The first message of a seeded domain (Seed)
// behind its seed re-seeds it instead.
// Wrap-around is handled by modular arithmetic.
func (s *Session) sequence(ds *domainState, seq, n uint32, ok bool) {
	s.seqGap, s.seqSeeded = 0, false
	seeded := ds.seeded
	ds.seeded = false
	if !ok {
		// A set could not be counted: resynchronise on the next message.
		ds.seqKnown = false
		s.seqOK = false
		return
	}
	if ds.seqKnown && seq != ds.expected {
		gap := seq - ds.expected
		switch {
		case seeded && (gap >= 1<<31 || ds.opts.SpoolInstance != 0):
			// Behind the seed: a restarted exporter counting from its
			// start again, or a spool replaying what it kept (its
			// duplicates are the consumer's to drop). A spooling
			// exporter's gap ahead is what its full spool dropped, which
			// its own ledger counts.
			s.stats.SeqRestarts++
		case gap < 1<<31:
			s.stats.LostRecords += uint64(gap)
			s.seqGap, s.seqSeeded = gap, seeded
			if seeded {
				s.stats.SeededLost += uint64(gap)
			}
		default:
			// Behind: a late (reordered) or replayed message. Its records
			// may have been counted lost already; like libfixbuf we do not
			// guess, and keep expecting the higher number.
			s.stats.OutOfOrder++
			s.seqNext, s.seqOK = ds.expected, true
			return
		}
	}
	ds.seqKnown = true
	ds.expected = seq + n
	s.seqNext, s.seqOK = ds.expected, true
}

// Sequence returns the sequence accounting of the last message decoded:
// the number its domain expects next (ok false when the message could
// not be counted, so the domain resynchronises on its next message) and
// the records the session counted lost just before it (its gap).
func (s *Session) Sequence() (next, gap uint32, ok bool) {
	return s.seqNext, s.seqGap, s.seqOK
}

// SequenceSeeded says the gap Sequence reports was counted at the
// domain's first message against its seed (Seed): records lost between
// transport sessions.
func (s *Session) SequenceSeeded() bool { return s.seqSeeded }

func (s *Session) templateSet(domain uint32, setID uint16, body []byte, base int) (soft, err error) {
	off := 0
	for len(body)-off >= templateHeaderLen {
		at := base + SetHeaderLen + off
		tid := binary.BigEndian.Uint16(body[off:])
		count := int(binary.BigEndian.Uint16(body[off+2:]))
		off += templateHeaderLen
		if count == 0 {
			if s.UDP {
				// Withdrawals are not allowed over UDP (RFC 7011 §8.4):
				// counted and ignored.
				soft = cmpErr(soft, s.fail(at, setID, tid, ReasonZeroFieldTemplate))
				continue
			}
			if err := s.withdraw(domain, setID, tid, at); err != nil {
				return soft, err
			}
			continue
		}
		if tid < MinDataSetID {
			return soft, s.fail(at, setID, tid, ReasonBadTemplateID)
		}
		scope := 0
		if setID == OptionsSetID {
			if len(body)-off < 2 {
				return soft, s.fail(at, setID, tid, ReasonFieldCount)
			}
			scope = int(binary.BigEndian.Uint16(body[off:]))
			off += 2
			if scope == 0 || scope > count {
				return soft, s.fail(at, setID, tid, ReasonBadScopeCount)
			}
		}
		if count*4 > len(body)-off {
			return soft, s.fail(at, setID, tid, ReasonFieldCount)
		}
		// Find the record's end first: a refresh of a known template
		// (the common case over UDP) is recognised by its bytes and costs
		// no allocation.
		end := off
		for i := 0; i < count; i++ {
			if len(body)-end < 4 {
				return soft, s.fail(at, setID, tid, ReasonFieldCount)
			}
			e := binary.BigEndian.Uint16(body[end:])&enterpriseBit != 0
			end += 4
			if e {
				end += 4
			}
		}
		if end > len(body) {
			return soft, s.fail(at, setID, tid, ReasonFieldCount)
		}
		raw := body[at-base-SetHeaderLen : end]
		k := tkey{domain, tid}
		if old, ok := s.templates[k]; ok && string(old.raw) == string(raw) {
			old.seen = s.now()
			s.touch(old)
			off = end
			continue
		}
		t := &decTemplate{raw: append([]byte(nil), raw...)}
		t.ID = tid
		t.ScopeCount = uint16(scope)
		t.Fields = make([]Field, count)
		t.ops = make([]op, count)
		t.fixed = true
		for i := 0; i < count; i++ {
			if len(body)-off < 4 {
				return soft, s.fail(at, setID, tid, ReasonFieldCount)
			}
			f := Field{ID: binary.BigEndian.Uint16(body[off:]), Length: binary.BigEndian.Uint16(body[off+2:])}
			off += 4
			if f.ID&enterpriseBit != 0 {
				if len(body)-off < 4 {
					return soft, s.fail(at, setID, tid, ReasonFieldCount)
				}
				f.ID &^= enterpriseBit
				f.Enterprise = binary.BigEndian.Uint32(body[off:])
				off += 4
			}
			t.Fields[i] = f
			t.ops[i] = s.opFor(f)
			if f.Length == VarLen {
				t.fixed = false
				t.minLen++
			} else {
				t.minLen += int(f.Length)
			}
		}
		if t.minLen == 0 {
			return soft, s.fail(at, setID, tid, ReasonZeroLengthRecord)
		}
		t.plan = make([]fieldOp, count)
		t.prefix = -1
		for i, f := range t.Fields {
			t.plan[i] = fieldOp{op: t.ops[i], length: f.Length}
			if f.Length == VarLen && t.prefix < 0 {
				t.prefix = i
			}
			if t.prefix < 0 {
				t.prefixLen += int(f.Length)
			}
		}
		if t.prefix < 0 {
			t.prefix = count
		}
		t.fast = compileFast(t.plan[:t.prefix])
		t.lead = hasLead(t.fast)
		t.symPair = t.fixed && t.minLen == 6 && slices.Equal(t.fast, []fastOp{{opSymptomID, 0, 2}, {opSymptomCount, 2, 4}})
		if old, ok := s.templates[k]; ok {
			if !sameTemplate(&old.Template, &t.Template) {
				s.stats.TemplatesRedefined++
			}
			s.drop(old)
		} else {
			s.stats.TemplatesLearned++
			if s.MaxTemplates > 0 && len(s.templates) >= s.MaxTemplates {
				s.Trim(s.MaxTemplates - 1)
			}
		}
		t.key, t.seen = k, s.now()
		s.templates[k] = t
		s.touch(t)
		s.stl = nil
	}
	// Fewer than 4 bytes left: set padding.
	return soft, nil
}

func sameTemplate(a, b *Template) bool {
	if a.ScopeCount != b.ScopeCount || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if a.Fields[i] != b.Fields[i] {
			return false
		}
	}
	return true
}

func (s *Session) withdraw(domain uint32, setID, tid uint16, at int) error {
	if tid == setID {
		// All templates (set 2) or all options templates (set 3).
		for k, t := range s.templates {
			if k.domain == domain && (t.ScopeCount > 0) == (setID == OptionsSetID) {
				s.drop(t)
				s.stats.TemplatesWithdrawn++
			}
		}
		return nil
	}
	if tid < MinDataSetID {
		return s.fail(at, setID, tid, ReasonBadTemplateID)
	}
	if t, ok := s.templates[tkey{domain, tid}]; ok {
		s.drop(t)
		s.stats.TemplatesWithdrawn++
	}
	return nil
}

func (s *Session) opFor(f Field) op {
	switch f.Enterprise {
	case 0:
		return ianaOp(f)
	case ReversePEN:
		switch f.ID {
		case IEPacketDeltaCount, IEPacketTotalCount:
			return opRevPackets
		case IEOctetDeltaCount, IEOctetTotalCount:
			return opRevOctets
		case IETCPControlBits:
			return opRevFlags
		}
	case s.pen():
		return miraOp(f)
	}
	return opSkip
}

func ianaOp(f Field) op {
	l := f.Length
	num := l >= 1 && l <= 8
	switch f.ID {
	case IEHTTPRequestHost:
		return opHTTPHost
	case IESourceIPv4Address:
		return lenOp(l == 4, opSrc4)
	case IEDestinationIPv4Address:
		return lenOp(l == 4, opDst4)
	case IESourceIPv6Address:
		return lenOp(l == 16, opSrc6)
	case IEDestinationIPv6Address:
		return lenOp(l == 16, opDst6)
	case IESourceTransportPort:
		return lenOp(num, opSport)
	case IEDestinationTransportPort:
		return lenOp(num, opDport)
	case IEICMPTypeCodeIPv4, IEICMPTypeCodeIPv6:
		return lenOp(num, opICMP)
	case IEProtocolIdentifier:
		return lenOp(num, opProto)
	case IETCPControlBits:
		return lenOp(num, opTCPFlags)
	case IEPacketDeltaCount, IEPacketTotalCount:
		return lenOp(num, opPackets)
	case IEOctetDeltaCount, IEOctetTotalCount:
		return lenOp(num, opOctets)
	case IEPostPacketDeltaCount:
		// nfdump shows post counts as the reverse direction ("out").
		return lenOp(num, opRevPackets)
	case IEPostOctetDeltaCount:
		return lenOp(num, opRevOctets)
	case IEFlowStartMilliseconds:
		return lenOp(num, opStartMs)
	case IEFlowEndMilliseconds:
		return lenOp(num, opEndMs)
	case IEFlowStartSeconds:
		return lenOp(num, opStartSec)
	case IEFlowEndSeconds:
		return lenOp(num, opEndSec)
	case IEFlowStartMicroseconds:
		return lenOp(l == 8, opStartUs)
	case IEFlowEndMicroseconds:
		return lenOp(l == 8, opEndUs)
	case IEFlowStartNanoseconds:
		return lenOp(l == 8, opStartNs)
	case IEFlowEndNanoseconds:
		return lenOp(l == 8, opEndNs)
	case IEFlowStartSysUpTime:
		return lenOp(num, opStartUptime)
	case IEFlowEndSysUpTime:
		return lenOp(num, opEndUptime)
	case IEVlanID:
		return lenOp(num, opVLAN)
	case IEIngressInterface:
		return lenOp(num, opIngress)
	case IEFlowEndReason:
		return lenOp(num, opEndReason)
	case IEIPVersion:
		return lenOp(num, opIPVersion)
	case IESourceMacAddress:
		return lenOp(l == 6, opSrcMAC)
	case IEDestinationMacAddress:
		return lenOp(l == 6, opDstMAC)
	case IEFlowDirection:
		return lenOp(num, opDirection)
	case IESubTemplateList:
		return opSymptoms
	case IESystemInitTimeMilliseconds:
		return lenOp(num, opSysInit)
	case IESamplingInterval:
		return lenOp(num, opDomainSampling)
	case IESelectorID:
		return lenOp(num, opSelectorID)
	case IESamplingPacketInterval:
		return lenOp(num, opPacketInterval)
	case IESamplingPacketSpace:
		return lenOp(num, opPacketSpace)
	case IESelectorAlgorithm:
		return lenOp(num, opSelectorAlg)
	case IESamplingAlgorithm:
		return lenOp(num, opLegacyAlg)
	case IESamplingProbability:
		return lenOp(l == 8 || l == 4, opProbability)
	case IEHashOutputRangeMin:
		return lenOp(num, opHashOutMin)
	case IEHashOutputRangeMax:
		return lenOp(num, opHashOutMax)
	case IEHashSelectedRangeMin:
		return lenOp(num, opHashSelMin)
	case IEHashSelectedRangeMax:
		return lenOp(num, opHashSelMax)
	case IEHashInitialiserValue:
		return lenOp(num, opHashInit)
	case IEExportedMessageTotalCount:
		return lenOp(num, opExportedMessages)
	case IEExportedFlowRecordTotalCount:
		return lenOp(num, opExportedRecords)
	}
	return opSkip
}

func miraOp(f Field) op {
	l := f.Length
	num := l >= 1 && l <= 8
	switch f.ID {
	case MIRAInnerOctetDeltaCount:
		return lenOp(num, opInnerOctets)
	case MIRATunnelType:
		return lenOp(num, opTunnelType)
	case MIRATunnelSourceIPv4:
		return lenOp(l == 4, opTunSrc4)
	case MIRATunnelDestinationIPv4:
		return lenOp(l == 4, opTunDst4)
	case MIRATunnelSourceIPv6:
		return lenOp(l == 16, opTunSrc6)
	case MIRATunnelDestinationIPv6:
		return lenOp(l == 16, opTunDst6)
	case MIRAAggregateID:
		return lenOp(num, opAggregate)
	case MIRACategoryID:
		return lenOp(num, opCategory)
	case MIRAAtmVPI:
		return lenOp(num, opVPI)
	case MIRAAtmVCI:
		return lenOp(num, opVCI)
	case MIRASymptomID:
		return lenOp(num, opSymptomID)
	case MIRASymptomOccurrences:
		return lenOp(num, opSymptomCount)
	case MIRASamplingPacketInterval:
		return lenOp(num, opSampling)
	case MIRASamplingFlowInterval:
		return lenOp(num, opFlowSampling)
	case MIRAAggregateName:
		return opAggregateName
	case MIRASymptomName:
		return opSymptomName
	case MIRACategoryName:
		return opCategoryName
	case MIRASpoolInstance:
		return lenOp(num, opSpoolInstance)
	case MIRALossRing, MIRALossQueue, MIRALossRegulation, MIRALossEviction, MIRALossExport, MIRALossSpool:
		return lenOp(num, opLoss)
	case MIRARegulationChanges:
		return lenOp(num, opRegChanges)
	case MIRALossQueueScaled:
		return lenOp(num, opQueueScaled)
	case MIRAServerName:
		return opServerName
	case MIRAALPNList:
		return opALPN
	case MIRADNSQueryName:
		return opDNSName
	case MIRADNSResponseCode:
		return lenOp(num, opDNSRcode)
	case MIRAFTPDataPorts:
		return opFTPData
	case MIRAScannedOctets:
		return lenOp(num, opScanned)
	}
	return opSkip
}

// lenOp returns o when the field's length suits it; values of other
// lengths are skipped rather than misread.
func lenOp(ok bool, o op) op {
	if ok {
		return o
	}
	return opSkip
}

func uintN(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// ntpToUnixNanos converts an RFC 7011 §6.1.9/10 NTP-format timestamp.
func ntpToUnixNanos(v uint64) int64 {
	const ntpEpochOffset = 2208988800
	sec := int64(v>>32) - ntpEpochOffset
	frac := (v & 0xffffffff) * 1e9 >> 32
	return sec*1e9 + int64(frac)
}

func (s *Session) dataSet(domain uint32, ds *domainState, id uint16, body []byte, base int, out []flow.Record) (int, []flow.Record, error) {
	t := s.template(domain, id)
	if t == nil {
		return 0, out, s.fail(base, id, id, ReasonDataWithoutTemplate)
	}
	s.use(t)
	n := 0
	off := 0
	for len(body)-off >= t.minLen {
		at := base + SetHeaderLen + off
		var rec []byte
		if t.fixed {
			rec = body[off : off+t.minLen]
		} else {
			l, r := recordLen(t, body[off:])
			if r != 0 {
				return n, out, s.fail(at, id, id, r)
			}
			rec = body[off : off+l]
		}
		off += len(rec)
		n++
		s.stats.DataRecords++
		if t.ScopeCount > 0 {
			s.stats.OptionsRecords++
			s.options(domain, t, rec, ds)
			continue
		}
		out = s.flowRecord(domain, ds, t, rec, out)
	}
	// What is left is padding; it must be zero, anything else is a
	// record cut short.
	for _, c := range body[off:] {
		if c != 0 {
			return n, out, s.fail(base+SetHeaderLen+off, id, id, ReasonTruncatedRecord)
		}
	}
	return n, out, nil
}

// fieldOp is what a record loop needs of one template field.
type fieldOp struct {
	op     op
	length uint16
}

// Runs of fields decoded as one (compileFast): MIRA's exporter writes
// them in this order in every flow template, and so they cost one step
// of the record loop instead of one each.
var (
	runCore = []fieldOp{{opSport, 2}, {opDport, 2}, {opProto, 1}, {opTCPFlags, 2}, {opPackets, 8}, {opOctets, 8},
		{opStartMs, 8}, {opEndMs, 8}, {opVLAN, 2}, {opIngress, 4}, {opEndReason, 1}, {opIPVersion, 1},
		{opSrcMAC, 6}, {opDstMAC, 6}}
	runMIRA = []fieldOp{{opInnerOctets, 8}, {opAggregate, 4}, {opCategory, 2}, {opSampling, 4}, {opFlowSampling, 4}}
	// runMIRASel is runMIRA followed by the selectorId MIRA's exporter
	// sends since it announces selectors (ipfix.SelectorID): the record's
	// own intervals say what it names, so the run reads them alone.
	runMIRASel = append(runMIRA[:len(runMIRA):len(runMIRA)], fieldOp{opSelectorID, 4})
	// runICMP is runCore of ICMP records: the type and code in place of
	// the ports.
	runICMP = append([]fieldOp{{opICMP, 2}}, runCore[2:]...)
)

// Lengths of the runs.
const (
	runCoreLen    = 59
	runICMPLen    = runCoreLen - 2
	runMIRALen    = 22
	runMIRASelLen = runMIRALen + 4
)

// compileFast compiles a template's fixed-length prefix: the fields that
// mean something (opSkip left out) by offset, and the runs above as one
// op each (opRunCore, opRunICMP, opRunMIRA) wherever they appear whole.
func compileFast(plan []fieldOp) []fastOp {
	var fast []fastOp
	pos := 0
	for i := 0; i < len(plan); {
		if hasRun(plan[i:], runCore) {
			fast = append(fast, fastOp{op: opRunCore, pos: uint16(pos), length: runCoreLen})
			pos += runCoreLen
			i += len(runCore)
			continue
		}
		if hasRun(plan[i:], runICMP) {
			fast = append(fast, fastOp{op: opRunICMP, pos: uint16(pos), length: runICMPLen})
			pos += runICMPLen
			i += len(runICMP)
			continue
		}
		if hasRun(plan[i:], runMIRASel) {
			fast = append(fast, fastOp{op: opRunMIRA, pos: uint16(pos), length: runMIRASelLen})
			pos += runMIRASelLen
			i += len(runMIRASel)
			continue
		}
		if hasRun(plan[i:], runMIRA) {
			fast = append(fast, fastOp{op: opRunMIRA, pos: uint16(pos), length: runMIRALen})
			pos += runMIRALen
			i += len(runMIRA)
			continue
		}
		f := plan[i]
		if f.op != opSkip {
			fast = append(fast, fastOp{op: f.op, pos: uint16(pos), length: f.length})
		}
		pos += int(f.length)
		i++
	}
	return fast
}

// hasLead says whether fast starts with MIRA's lead (decTemplate.lead).
func hasLead(fast []fastOp) bool {
	return len(fast) >= 4 &&
		(fast[0].op == opSrc4 || fast[0].op == opSrc6) &&
		(fast[1].op == opDst4 || fast[1].op == opDst6) &&
		(fast[2].op == opRunCore || fast[2].op == opRunICMP) &&
		fast[3].op == opRunMIRA
}

func hasRun(plan, run []fieldOp) bool {
	if len(plan) < len(run) {
		return false
	}
	for i, f := range run {
		if plan[i] != f {
			return false
		}
	}
	return true
}

// tcacheSize is the number of entries of Session.tcache.
const tcacheSize = 256

// tcacheSlot is the first entry of Session.tcache for template id
// (Fibonacci hashing: MIRA's flow template ids, 256-383 and 512-2431,
// differ in variant bits that a plain modulus folds onto each other); a
// template is in that entry or the next one (slot^1).
func tcacheSlot(id uint16) int { return int(uint16(id*40503)>>8) % tcacheSize }

// fastOp is a field of a template's fixed-length prefix: its op, offset
// in the record and length.
type fastOp struct {
	op     op
	pos    uint16
	length uint16
}

// recordLen walks one variable-length record; b holds at least minLen
// bytes, so the fixed-length fields ahead of the first variable-length
// one need no walk.
func recordLen(t *decTemplate, b []byte) (int, Reason) {
	off := t.prefixLen
	for _, f := range t.Fields[t.prefix:] {
		if f.Length == VarLen {
			_, n, ok := ReadVarLen(b[off:])
			if !ok {
				return 0, ReasonBadVarLen
			}
			off += n
			continue
		}
		off += int(f.Length)
		if off > len(b) {
			return 0, ReasonTruncatedRecord
		}
	}
	return off, 0
}

// fieldValue returns the value of field f at rec[off:] and the offset
// after it; rec has been checked by recordLen (or is of fixed length).
func fieldValue(f Field, rec []byte, off int) ([]byte, int) {
	if f.Length == VarLen {
		v, n, _ := ReadVarLen(rec[off:])
		return v, off + n
	}
	return rec[off : off+int(f.Length)], off + int(f.Length)
}

// DomainOptions returns what domain's options records have said so far.
func (s *Session) DomainOptions(domain uint32) (DomainOptions, bool) {
	ds := s.domains[domain]
	if ds == nil {
		return DomainOptions{}, false
	}
	return ds.opts, true
}

func (s *Session) options(domain uint32, t *decTemplate, rec []byte, ds *domainState) {
	off := 0
	var v []byte
	var sf samplingFields
	var selID uint64
	haveSelID := false
	var aggID uint32
	var aggName []byte
	haveAggID, haveAggName := false, false
	var nameID uint16
	var symName, catName []byte
	haveNameID, haveSymName, haveCatName := false, false, false
	changed := false
	var led Ledger
	haveLedger, haveMessages := false, false
	for i, f := range t.Fields {
		v, off = fieldValue(f, rec, off)
		switch t.ops[i] {
		case opSysInit:
			ds.sysInit = int64(uintN(v))
			led.SystemInit = ds.sysInit
		case opSpoolInstance:
			if in := uintN(v); in != ds.opts.SpoolInstance {
				ds.opts.SpoolInstance = in
				changed = true
			}
		case opExportedMessages:
			led.Messages, haveLedger, haveMessages = uintN(v), true, true
		case opExportedRecords:
			led.Records, haveLedger = uintN(v), true
		case opLoss:
			*led.Loss.Counter(int(f.ID - MIRALossRing)) = uintN(v)
			haveLedger = true
		case opRegChanges:
			led.RegulationChanges, haveLedger = uintN(v), true
		case opQueueScaled:
			led.QueueScaled, haveLedger = uintN(v), true
		case opDomainSampling:
			sf.legacyInterval, sf.haveLegacy = uint32(uintN(v)), true
		case opSelectorID:
			selID, haveSelID = uintN(v), true
		case opPacketInterval:
			sf.pktInterval, sf.havePkt = uint32(uintN(v)), true
		case opPacketSpace:
			sf.pktSpace, sf.haveSpace = uint32(uintN(v)), true
		case opSelectorAlg:
			sf.selector, sf.haveSel = uint16(uintN(v)), true
		case opLegacyAlg:
			sf.legacyAlg, sf.haveLegacyAlg = uint8(uintN(v)), true
		case opProbability:
			if len(v) == 8 {
				sf.prob = math.Float64frombits(binary.BigEndian.Uint64(v))
			} else {
				sf.prob = float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
			}
			sf.haveProb = true
		case opFlowSampling:
			sf.flowInterval, sf.haveFlow = uint32(uintN(v)), true
		case opHashOutMin:
			sf.hash.OutputMin, sf.haveHash = uintN(v), sf.haveHash|1
		case opHashOutMax:
			sf.hash.OutputMax, sf.haveHash = uintN(v), sf.haveHash|2
		case opHashSelMin:
			sf.hash.SelectedMin, sf.haveHash = uintN(v), sf.haveHash|4
		case opHashSelMax:
			sf.hash.SelectedMax, sf.haveHash = uintN(v), sf.haveHash|8
		case opHashInit:
			sf.hash.Initialiser, sf.haveHash = uintN(v), sf.haveHash|16
		case opAggregate:
			aggID, haveAggID = uint32(uintN(v)), true
		case opAggregateName:
			aggName, haveAggName = v, true
		case opSymptomID, opCategory:
			nameID, haveNameID = uint16(uintN(v)), true
		case opSymptomName:
			symName, haveSymName = v, true
		case opCategoryName:
			catName, haveCatName = v, true
		}
	}
	if haveNameID && haveSymName && setName(ds, &ds.opts.Symptoms, nameID, symName) {
		changed = true
	}
	if haveNameID && haveCatName && setName(ds, &ds.opts.Categories, nameID, catName) {
		changed = true
	}
	if haveSelID {
		// A selector report (RFC 5476 §6.5.2): the sampling of the
		// records that name the selector, not the domain's.
		if sf.any() {
			s.noteSelector(ds, selID, sf.resolve())
		}
		sf = samplingFields{}
	}
	onlyInterval := sf.haveLegacy && !sf.havePkt && !sf.haveSel && !sf.haveProb && !sf.haveFlow
	if sf.any() && onlyInterval && ds.opts.HaveSampling && ds.opts.Sampling.Interval == max(sf.legacyInterval, 1) {
		// A bare samplingInterval (as MIRA sends for nfdump, ahead of its
		// PSAMP record) agreeing with what is known adds nothing.
		sf = samplingFields{}
	}
	if sf.any() {
		smp := sf.resolve()
		if !ds.opts.HaveSampling || ds.opts.Sampling != smp {
			changed = true
		}
		ds.opts.HaveSampling, ds.opts.Sampling = true, smp
		ds.sampling, ds.flowSampling = smp.Interval, 0
		if smp.Flow {
			ds.sampling, ds.flowSampling = 0, smp.Interval
		}
		if smp.Interval <= 1 {
			ds.sampling, ds.flowSampling = 0, 0
		}
	}
	if haveAggID && haveAggName {
		if setName(ds, &ds.opts.Aggregates, aggID, aggName) {
			changed = true
		}
	}
	if haveLedger && !s.plausibleLedger(&led, haveMessages) {
		s.stats.Malformed[ReasonImplausibleLedger]++
		haveLedger = false
	}
	if haveLedger && (!ds.opts.HaveLedger || ds.opts.Ledger != led) {
		ds.opts.HaveLedger, ds.opts.Ledger = true, led
		changed = true
	}
	if changed && !ds.pending {
		ds.pending = true
		s.changed = append(s.changed, domain)
	}
}

// maxSelectors bounds the selector reports a domain keeps: past it, a
// report of a new selector replaces an arbitrary one.
const maxSelectors = 256

// noteSelector keeps a selector report of ds.
func (s *Session) noteSelector(ds *domainState, id uint64, smp Sampling) {
	if ds.selectors == nil {
		ds.selectors = map[uint64]Sampling{}
	}
	if _, ok := ds.selectors[id]; !ok && len(ds.selectors) >= maxSelectors {
		for k := range ds.selectors {
			delete(ds.selectors, k)
			break
		}
	}
	ds.selectors[id] = smp
	s.stats.SelectorReports++
}

// handOptions hands the options the message changed to OnOptions, once
// per domain.
func (s *Session) handOptions() {
	for _, d := range s.changed {
		ds := s.domains[d]
		if ds == nil || !ds.pending {
			continue // evicted meanwhile
		}
		ds.pending = false
		if s.OnOptions != nil {
			ds.shared = true
			s.OnOptions(d, ds.opts)
		}
	}
	s.changed = s.changed[:0]
}

func (s *Session) flowRecord(domain uint32, ds *domainState, t *decTemplate, rec []byte, out []flow.Record) []flow.Record {
	// Decode in place: a flow.Record is large, and copying it in costs
	// as much as decoding a few fields.
	var r *flow.Record
	if s.each != nil {
		r = &s.rec
		*r = flow.Record{}
	} else {
		out = append(out, flow.Record{})
		r = &out[len(out)-1]
	}
	r.Direction = 255
	r.ObservationDomain = domain
	r.SamplingPacketInterval = ds.sampling
	r.SamplingFlowInterval = ds.flowSampling
	var (
		first, last          int64
		haveFirst, haveLast  bool
		upFirst, upLast      uint64
		haveUpFirst, haveUpL bool
		revPkts, revOcts     uint64
		revFlags             uint8
		haveRev, haveRevFl   bool
		haveInner            bool
		havePkts, haveOcts   bool
		badTime              bool
		sel                  uint64
		haveSel, ownInterval bool
	)
	// The fixed-length prefix by the compiled plan (offsets, no skipped
	// fields), then the rest field by field.
	fast, rest := t.fast, t.plan[t.prefix:]
	off := t.prefixLen
	if s.plain {
		fast, rest, off = nil, t.plan, 0
	}
	i := 0
	if t.lead && !s.plain {
		// MIRA's lead (t.lead) without a step of the loop each.
		f := fast[:4]
		if v := rec[f[0].pos:]; f[0].length == 4 {
			r.Src = netip.AddrFrom4([4]byte(v))
		} else {
			r.Src = netip.AddrFrom16([16]byte(v))
		}
		if v := rec[f[1].pos:]; f[1].length == 4 {
			r.Dst = netip.AddrFrom4([4]byte(v))
		} else {
			r.Dst = netip.AddrFrom16([16]byte(v))
		}
		if v := rec[f[2].pos:]; f[2].op == opRunCore {
			r.Sport = binary.BigEndian.Uint16(v)
			r.Dport = binary.BigEndian.Uint16(v[2:])
			first, last = coreRun(r, v[4:runCoreLen], &badTime)
		} else {
			r.Dport = binary.BigEndian.Uint16(v)
			first, last = coreRun(r, v[2:runICMPLen], &badTime)
		}
		havePkts, haveOcts, haveFirst, haveLast = true, true, true, true
		miraRun(r, rec[f[3].pos:])
		haveInner = true
		i = len(f)
	}
	var v []byte
	for ; ; i++ {
		var o op
		if i < len(fast) {
			f := &fast[i]
			o, v = f.op, rec[f.pos:int(f.pos)+int(f.length)]
		} else {
			j := i - len(fast)
			if j >= len(rest) {
				break
			}
			f := rest[j]
			if f.length != VarLen {
				n := int(f.length)
				v = rec[off : off+n]
				off += n
			} else {
				var n int
				v, n, _ = ReadVarLen(rec[off:])
				off += n
			}
			o = f.op
		}
		switch o {
		case opSkip:
		case opRunCore:
			// runCore's fields, as their own cases below decode them.
			r.Sport = binary.BigEndian.Uint16(v)
			r.Dport = binary.BigEndian.Uint16(v[2:])
			first, last = coreRun(r, v[4:runCoreLen], &badTime)
			havePkts, haveOcts, haveFirst, haveLast = true, true, true, true
		case opRunICMP:
			r.Dport = binary.BigEndian.Uint16(v)
			first, last = coreRun(r, v[2:runICMPLen], &badTime)
			havePkts, haveOcts, haveFirst, haveLast = true, true, true, true
		case opRunMIRA:
			miraRun(r, v)
			haveInner = true
		case opSrc4:
			r.Src = netip.AddrFrom4([4]byte(v))
		case opDst4:
			r.Dst = netip.AddrFrom4([4]byte(v))
		case opSrc6:
			r.Src = netip.AddrFrom16([16]byte(v))
		case opDst6:
			r.Dst = netip.AddrFrom16([16]byte(v))
		case opSport:
			r.Sport = uint16(uintN(v))
		case opDport, opICMP:
			r.Dport = uint16(uintN(v))
		case opProto:
			r.Proto = uint8(uintN(v))
		case opTCPFlags:
			r.TCPFlags = uint8(uintN(v))
		case opPackets:
			r.Packets, havePkts = uintN(v), true
		case opOctets:
			r.Octets, haveOcts = uintN(v), true
		case opStartMs:
			first, haveFirst = scaleTime(uintN(v), 1e6, &badTime), true
		case opEndMs:
			last, haveLast = scaleTime(uintN(v), 1e6, &badTime), true
		case opStartSec:
			first, haveFirst = scaleTime(uintN(v), 1e9, &badTime), true
		case opEndSec:
			last, haveLast = scaleTime(uintN(v), 1e9, &badTime), true
		case opStartUs, opStartNs:
			first, haveFirst = ntpToUnixNanos(uintN(v)), true
		case opEndUs, opEndNs:
			last, haveLast = ntpToUnixNanos(uintN(v)), true
		case opStartUptime:
			upFirst, haveUpFirst = uintN(v), true
		case opEndUptime:
			upLast, haveUpL = uintN(v), true
		case opVLAN:
			r.VLAN = uint16(uintN(v)) & 0x0fff
		case opIngress:
			r.Ingress = uint32(uintN(v))
		case opEndReason:
			r.EndReason = flow.EndReason(uintN(v))
		case opIPVersion:
			r.IPVersion = uint8(uintN(v))
		case opSrcMAC:
			r.SrcMAC = [6]byte(v)
		case opDstMAC:
			r.DstMAC = [6]byte(v)
		case opDirection:
			r.Direction = uint8(uintN(v))
		case opInnerOctets:
			r.InnerOctets, haveInner = uintN(v), true
		case opTunnelType:
			r.Tunnel = flow.TunnelType(uintN(v))
		case opTunSrc4:
			r.TunnelSrc = netip.AddrFrom4([4]byte(v))
		case opTunDst4:
			r.TunnelDst = netip.AddrFrom4([4]byte(v))
		case opTunSrc6:
			r.TunnelSrc = netip.AddrFrom16([16]byte(v))
		case opTunDst6:
			r.TunnelDst = netip.AddrFrom16([16]byte(v))
		case opAggregate:
			r.Aggregate = uint32(uintN(v))
		case opCategory:
			r.Category = uint16(uintN(v))
		case opVPI:
			r.VPI = uint16(uintN(v))
		case opVCI:
			r.VCI = uint16(uintN(v))
		case opSampling:
			// 0 states nothing: the domain's sampling options stand.
			if n := uint32(uintN(v)); n != 0 {
				r.SamplingPacketInterval = n
			}
			ownInterval = true
		case opFlowSampling:
			if n := uint32(uintN(v)); n != 0 {
				r.SamplingFlowInterval = n
			}
			ownInterval = true
		case opSelectorID:
			sel, haveSel = uintN(v), true
		case opRevPackets:
			revPkts, haveRev = uintN(v), true
		case opRevOctets:
			revOcts, haveRev = uintN(v), true
		case opRevFlags:
			revFlags, haveRevFl = uint8(uintN(v)), true
		case opSymptoms:
			// A bad list loses the symptoms, not the flow: it is counted
			// and the record kept.
			r.Symptoms = s.symptoms(domain, v)
		case opHTTPHost:
			r.App.HTTPHost = s.appName(v)
		case opServerName:
			r.App.ServerName = s.appName(v)
		case opALPN:
			r.App.ALPN = s.appName(v)
		case opDNSName:
			r.App.DNSName = s.appName(v)
		case opDNSRcode:
			r.App.DNSResponse, r.App.DNSRcode = true, uint8(uintN(v))
		case opFTPData:
			r.App.FTPData = s.ftpData(v)
		case opScanned:
			r.ScannedOctets = uintN(v)
		}
	}
	if haveSel && !ownInterval && !haveInner {
		// A record naming a selector, without MIRA's intervals (which
		// state what MIRA's records name): its selector's sampling, when
		// reported, in place of the domain's.
		if smp, ok := ds.selectors[sel]; ok {
			r.SamplingPacketInterval, r.SamplingFlowInterval = smp.Interval, 0
			if smp.Flow {
				r.SamplingPacketInterval, r.SamplingFlowInterval = 0, smp.Interval
			}
		}
	}
	if !haveFirst && haveUpFirst {
		first, haveFirst = scaleTime(uint64(ds.sysInit)+upFirst, 1e6, &badTime), true
	}
	if !haveLast && haveUpL {
		last, haveLast = scaleTime(uint64(ds.sysInit)+upLast, 1e6, &badTime), true
	}
	if !haveFirst && !haveLast {
		// No times at all: the flow was seen by the time it was exported.
		first, last = int64(s.exportTime)*1e9, int64(s.exportTime)*1e9
	}
	if !haveLast {
		last = first
	}
	if !haveFirst {
		first = last
	}
	r.First, r.Last = first, last
	if reason := s.implausible(r, havePkts, haveOcts, badTime); reason != 0 {
		s.stats.Malformed[reason]++
		return s.unappend(out)
	}
	if haveRev && (revPkts != 0 || revOcts != 0) {
		if reason := plausibleCounts(revPkts, revOcts, havePkts, haveOcts); reason != 0 {
			s.stats.Malformed[reason]++
			return s.unappend(out)
		}
	}
	if r.IPVersion == 0 {
		switch {
		case r.Src.Is4():
			r.IPVersion = 4
		case r.Src.Is6():
			r.IPVersion = 6
		}
	}
	if !haveInner {
		r.InnerOctets = r.Octets
	}
	s.stats.FlowRecords++
	if s.each != nil {
		s.each(r)
	}
	if haveRev && (revPkts != 0 || revOcts != 0) {
		// An RFC 5103 biflow: the reverse direction as its own record.
		rv := &s.rev
		*rv = *r
		rv.Src, rv.Dst = r.Dst, r.Src
		if r.Proto != 1 && r.Proto != 58 {
			rv.Sport, rv.Dport = r.Dport, r.Sport
		}
		rv.SrcMAC, rv.DstMAC = r.DstMAC, r.SrcMAC
		rv.Packets, rv.Octets, rv.InnerOctets = revPkts, revOcts, revOcts
		if haveRevFl {
			rv.TCPFlags = revFlags
		}
		rv.Symptoms = nil
		if r.Direction <= 1 {
			rv.Direction = 1 - r.Direction
		}
		s.stats.FlowRecords++
		if s.each != nil {
			s.each(rv)
		} else {
			out = append(out, *rv)
		}
	}
	return out
}

// coreRun decodes runCore's fields after the ports (runICMP's after the
// type and code) into r, as their own cases in flowRecord do, and
// returns the start and end times.
func coreRun(r *flow.Record, b []byte, bad *bool) (first, last int64) {
	b = b[:runCoreLen-4]
	r.Proto = b[0]
	r.TCPFlags = b[2]
	r.Packets = binary.BigEndian.Uint64(b[3:])
	r.Octets = binary.BigEndian.Uint64(b[11:])
	first = scaleTime(binary.BigEndian.Uint64(b[19:]), 1e6, bad)
	last = scaleTime(binary.BigEndian.Uint64(b[27:]), 1e6, bad)
	r.VLAN = binary.BigEndian.Uint16(b[35:]) & 0x0fff
	r.Ingress = binary.BigEndian.Uint32(b[37:])
	r.EndReason = flow.EndReason(b[41])
	r.IPVersion = b[42]
	r.SrcMAC = [6]byte(b[43:49])
	r.DstMAC = [6]byte(b[49:55])
	return first, last
}

// miraRun decodes runMIRA's fields into r.
func miraRun(r *flow.Record, b []byte) {
	b = b[:runMIRALen]
	r.InnerOctets = binary.BigEndian.Uint64(b[0:])
	r.Aggregate = binary.BigEndian.Uint32(b[8:])
	r.Category = binary.BigEndian.Uint16(b[12:])
	if n := binary.BigEndian.Uint32(b[14:]); n != 0 {
		r.SamplingPacketInterval = n
	}
	if n := binary.BigEndian.Uint32(b[18:]); n != 0 {
		r.SamplingFlowInterval = n
	}
}

// unappend drops the record flowRecord was decoding.
func (s *Session) unappend(out []flow.Record) []flow.Record {
	if s.each != nil {
		return out
	}
	return out[:len(out)-1]
}

// symptoms decodes a subTemplateList whose sub-template carries MIRA's
// symptomId/symptomOccurrences. Lists of other sub-templates give nil.
// appName returns an application name field's value when it is printable
// ASCII of at most maxName bytes; otherwise the field is dropped (the
// flow kept) and counted.
func (s *Session) appName(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(v) > maxName || !printable(v) {
		s.stats.BadAppNames++
		return ""
	}
	if s.each != nil {
		// Valid during the DecodeEach callback, as documented there.
		return unsafe.String(&v[0], len(v))
	}
	if n, ok := s.names[string(v)]; ok {
		return n
	}
	if s.names == nil || len(s.names) >= maxInterned {
		s.names = make(map[string]string)
	}
	n := string(v)
	s.names[n] = n
	return n
}

// printable says whether every byte of v is printable ASCII other than
// space (0x21-0x7e), eight bytes at a time: per byte, adding 1 to its low
// seven bits carries into bit 7 when they are 0x7f, and adding 0x5f
// when they are 0x21 or more; neither carries into the next byte.
func printable(v []byte) bool {
	const lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	for len(v) >= 8 {
		w := binary.LittleEndian.Uint64(v)
		if (w|(w&lo7+0x0101010101010101)|^(w&lo7+0x5f5f5f5f5f5f5f5f))&hi != 0 {
			return false
		}
		v = v[8:]
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// ftpData reads an FTP data port list: decimal ports joined by commas
// (flow.App.FTPData); anything else is dropped and counted as a bad
// application name. Lists are interned as names are.
func (s *Session) ftpData(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	ok := len(v) <= flow.MaxFTPData && v[0] != ',' && v[len(v)-1] != ','
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= '0' && c <= '9' || (c == ',' && v[i-1] != ',')
	}
	if !ok {
		s.stats.BadAppNames++
		return ""
	}
	return s.appName(v)
}

// maxInterned bounds the application names a session keeps interned.
const maxInterned = 4096

func (s *Session) symptoms(domain uint32, v []byte) []flow.SymptomCount {
	bad := func() []flow.SymptomCount {
		s.stats.Malformed[ReasonBadSubTemplateList]++
		return nil
	}
	if len(v) < stlHeaderLen {
		return bad()
	}
	tid := binary.BigEndian.Uint16(v[1:])
	st := s.stl
	if k := (tkey{domain, tid}); st == nil || s.stlKey != k {
		st = s.templates[k]
		s.stl, s.stlKey = st, k
	}
	if st == nil || st.ScopeCount > 0 {
		return bad()
	}
	s.use(st) // in use while its flow template is
	body := v[stlHeaderLen:]
	start := len(s.syms)
	if st.symPair && !s.plain {
		// MIRA's symptom template: (id, occurrences) of 2 and 4 bytes.
		if len(body)%6 != 0 {
			return bad()
		}
		for ; len(body) >= 6; body = body[6:] {
			s.syms = append(s.syms, flow.SymptomCount{ID: binary.BigEndian.Uint16(body), Count: binary.BigEndian.Uint32(body[2:])})
		}
		if len(s.syms) == start {
			return nil
		}
		return s.syms[start:len(s.syms):len(s.syms)]
	}
	off := 0
	for off < len(body) {
		var rec []byte
		if st.fixed {
			if len(body)-off < st.minLen {
				s.syms = s.syms[:start]
				return bad()
			}
			rec = body[off : off+st.minLen]
		} else {
			l, r := recordLen(st, body[off:])
			if r != 0 {
				s.syms = s.syms[:start]
				return bad()
			}
			rec = body[off : off+l]
		}
		off += len(rec)
		var sc flow.SymptomCount
		found := false
		if st.fixed && !s.plain {
			// The compiled plan: the fields that mean something, by offset.
			for _, f := range st.fast {
				fv := rec[f.pos : int(f.pos)+int(f.length)]
				switch f.op {
				case opSymptomID:
					sc.ID, found = uint16(uintN(fv)), true
				case opSymptomCount:
					sc.Count = uint32(uintN(fv))
				}
			}
		} else {
			fo := 0
			var fv []byte
			for i, f := range st.Fields {
				fv, fo = fieldValue(f, rec, fo)
				switch st.ops[i] {
				case opSymptomID:
					sc.ID, found = uint16(uintN(fv)), true
				case opSymptomCount:
					sc.Count = uint32(uintN(fv))
				}
			}
		}
		if found {
			s.syms = append(s.syms, sc)
		}
	}
	if len(s.syms) == start {
		return nil
	}
	return s.syms[start:len(s.syms):len(s.syms)]
}

// scaleTime converts v units of unit ns to ns since the epoch, setting
// *bad when that is beyond int64.
func scaleTime(v uint64, unit int64, bad *bool) int64 {
	if v > uint64(math.MaxInt64/unit) || int64(v) < 0 {
		*bad = true
		return 0
	}
	return int64(v) * unit
}

// plausibleCounts returns the reason a direction's counters are
// implausible, or 0: more packets than MaxRecordPackets, more octets than
// packets × MaxPacketOctets (when the record has both).
func plausibleCounts(pkts, octs uint64, havePkts, haveOcts bool) Reason {
	if pkts > MaxRecordPackets || octs > MaxRecordPackets*MaxPacketOctets {
		return ReasonImplausibleCount
	}
	if havePkts && haveOcts && octs > pkts*MaxPacketOctets {
		return ReasonImplausibleOctets
	}
	return 0
}

// MaxLedgerCount bounds each total of a loss ledger (ipfix.Ledger): 2^56
// is 22 years at 100 million packets per second. Random bytes exceed it
// 255 times in 256.
const MaxLedgerCount = 1 << 56

// maxRecordsPerMessage is the most data records a message can hold (4
// bytes each at least, in 65535 bytes).
const maxRecordsPerMessage = (65535 - HeaderLen) / 4

// plausibleLedger says whether l, decoded from a message with export
// time s.exportTime, can be an exporting process's statistics: no total
// beyond MaxLedgerCount, no more records than the messages counted can
// carry (when the message count is given: other exporters send the
// record count alone), a process start (when given) not after the
// export time (plus MaxClockSkew). Garbage ledgers would otherwise inflate every report's
// loss figures.
func (s *Session) plausibleLedger(l *Ledger, haveMessages bool) bool {
	counts := l.Loss.Counts()
	for _, v := range append(counts[:], l.Messages, l.Records, l.RegulationChanges, l.QueueScaled) {
		if v > MaxLedgerCount {
			return false
		}
	}
	if haveMessages && l.Records > l.Messages*maxRecordsPerMessage {
		return false
	}
	if l.SystemInit < 0 {
		return false
	}
	if s.exportTime != 0 && l.SystemInit > int64(s.exportTime)*1000+MaxClockSkew.Milliseconds() {
		return false
	}
	return true
}

// implausible returns the reason record r, decoded from a message with
// export time s.exportTime, is implausible, or 0. Times: representable
// in int64 ns, not before the Unix epoch (IPFIX times are unsigned), start
// not after end, end at most MaxClockSkew after the export time. There is
// no lower bound relative to the export time: replays of old captures,
// some with unset clocks (1970), export records of any age. An export
// time of 0 (not set) allows any end up to the latest export time a
// message can carry (2106).
func (s *Session) implausible(r *flow.Record, havePkts, haveOcts, badTime bool) Reason {
	if reason := plausibleCounts(r.Packets, r.Octets, havePkts, haveOcts); reason != 0 {
		return reason
	}
	hi := int64(s.exportTime)*1e9 + int64(MaxClockSkew)
	if s.exportTime == 0 {
		hi = math.MaxUint32*1e9 + int64(MaxClockSkew)
	}
	if badTime || r.First > r.Last || r.Last > hi || r.First < 0 {
		return ReasonImplausibleTime
	}
	return 0
}
