package meter

import (
	"time"
	"unsafe"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/appliance/symptom"
)

// Config sets a table's limits. The zero value means the defaults.
type Config struct {
	// IdleTimeout ends a flow that has seen no packet for this long
	// (default 30s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ActiveTimeout ends a flow this long after its first packet even if
	// it is still active, so long flows are reported per period
	// (default 120s). It is the paper's aggregation period.
	ActiveTimeout time.Duration `yaml:"active_timeout"`
	// TCPEndTimeout is how long a TCP flow that has seen FIN or RST stays
	// in the table to collect its last segments (default 2s).
	TCPEndTimeout time.Duration `yaml:"tcp_end_timeout"`
	// MaxFlows bounds the table (default 262144).
	MaxFlows int `yaml:"max_flows"`
	// ExportBatch is how many records are handed to the sink at once
	// (default 256).
	ExportBatch int `yaml:"export_batch"`

	// Symptoms, when set, scans every flow direction's payload for
	// symptoms; their counts travel in the flow record.
	Symptoms *symptom.DB `yaml:"-"`
	// FastClass, when set, is asked once per new flow for a category
	// from address lists (paper §3.2); a non-zero category is stored in
	// the record and the flow is not scanned.
	FastClass func(k *flow.Key) uint16 `yaml:"-"`
	// Label, when set, gives a new flow its aggregate id.
	Label func(p *decode.Packet, ifIndex uint32) uint32 `yaml:"-"`
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = 30 * time.Second
	}
	if d.ActiveTimeout <= 0 {
		d.ActiveTimeout = 120 * time.Second
	}
	if d.TCPEndTimeout <= 0 {
		d.TCPEndTimeout = 2 * time.Second
	}
	if d.MaxFlows <= 0 {
		d.MaxFlows = 262144
	}
	if d.ExportBatch <= 0 {
		d.ExportBatch = 256
	}
	return d
}

// Sink receives expired flow records. The slice is reused after the call
// returns; the sink must copy what it keeps (Symptoms slices are owned by
// the record and may be kept).
type Sink func(recs []flow.Record)

// Stats are a table's counters.
type Stats struct {
	Packets uint64 // packets metered
	// Payload scanning: bytes given to the matcher, TCP segments skipped
	// as retransmissions, gaps that reset a direction's matcher state,
	// and flows classified by address without scanning.
	ScanBytes   uint64
	ScanRetrans uint64
	ScanGaps    uint64
	FastClassed uint64
	// SymptomOccurrences and SymptomFlows are indexed by symptom id: the
	// occurrences found in, and the number of, exported flows showing
	// each symptom.
	SymptomOccurrences []uint64
	SymptomFlows       []uint64
	Octets             uint64 // IP octets metered
	Active             uint64 // flows in the table now
	Created            uint64 // flows created
	Expired            [6]uint64
	Exported           uint64 // records handed to the sink
}

// Evicted is the number of flows exported early because the table was full.
func (s *Stats) Evicted() uint64 { return s.Expired[flow.EndResource] }

const nilIdx = -1

// expireStep is how often, in capture time, timeouts are checked.
const expireStep = int64(10 * time.Millisecond)

// lruGranularity is how stale an entry's place in its lru list may be.
const lruGranularity = int64(time.Second / 4)

type list struct{ head, tail int32 }

type entry struct {
	// Hot: what every packet of the flow reads or writes, first, so it
	// shares one or two cache lines (see the size check in the tests).
	key          flow.Key
	packets      uint64
	octets       uint64
	inner        uint64
	first, last  int64
	moved        int64 // capture time of the last move to an lru list's tail
	lprev, lnext int32 // lru: by last packet time (idle expiry, eviction)
	aprev, anext int32 // age: by first packet time (active expiry)
	flags        uint8 // TCP flags union
	ended        bool  // FIN or RST seen
	inUse        bool
	noScan       bool // fast-classified: not scanned
	hash         uint64
	// Payload scanning state.
	seqKnown bool // nextSeq is valid (TCP)
	nextSeq  uint32
	off      uint64 // stream offset of nextSeq in this direction's payload
	st       symptom.State
	counts   symptom.Counts
	// Cold: the rest of the record, set when the flow is created.
	rec flow.Record
	_   [8]byte // size a multiple of 64, so entries in a chunk stay line-aligned
}

// unknownOffset is the stream offset given to a TCP direction first seen
// mid-stream: beyond any offset/depth window, so start-anchored patterns
// cannot fire on a payload whose start was not seen.
const unknownOffset = 1 << 40

// Table is a bounded flow table. It is not safe for concurrent use.
type Table struct {
	cfg     Config
	idle    int64
	active  int64
	tcpEnd  int64
	idx     index
	chunks  [][]entry // slab of entries, grown a chunk at a time
	nslab   int32     // entries allocated so far
	free    []int32
	lru     list // live flows by last packet
	ended   list // FIN/RST flows by last packet (shares the lprev/lnext links)
	age     list // all flows by first packet
	sink    Sink
	out     []flow.Record
	now     int64
	stats   Stats
	domain  uint32
	ingress uint32
	// per-symptom totals, indexed by id
	symOcc, symFlows []uint64
	nextExpire       int64
}

// New makes a table that hands expired records to sink.
func New(cfg *Config, sink Sink) *Table {
	c := cfg.withDefaults()
	t := &Table{
		cfg:    c,
		idle:   int64(c.IdleTimeout),
		active: int64(c.ActiveTimeout),
		tcpEnd: int64(c.TCPEndTimeout),
		idx:    newIndex(c.MaxFlows),
		lru:    list{nilIdx, nilIdx},
		ended:  list{nilIdx, nilIdx},
		age:    list{nilIdx, nilIdx},
		sink:   sink,
		out:    make([]flow.Record, 0, c.ExportBatch),
	}
	if c.Symptoms != nil {
		n := 1
		for _, sy := range c.Symptoms.Symptoms() {
			n = max(n, int(sy.ID)+1)
		}
		t.symOcc = make([]uint64, n)
		t.symFlows = make([]uint64, n)
	}
	return t
}

const (
	chunkBits = 14 // 7 MiB of entries: mostly whole huge pages
	chunkSize = 1 << chunkBits
)

func (t *Table) at(i int32) *entry { return &t.chunks[i>>chunkBits][i&(chunkSize-1)] }

// alloc returns a free entry index, growing the slab by a chunk when the
// free list is empty and the table is below MaxFlows; -1 when full.
func (t *Table) alloc() int32 {
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i
	}
	if int(t.nslab) >= t.cfg.MaxFlows {
		return nilIdx
	}
	if int(t.nslab)>>chunkBits == len(t.chunks) {
		// The last chunk holds only what MaxFlows leaves, so small
		// tables stay small.
		c := make([]entry, min(chunkSize, t.cfg.MaxFlows-int(t.nslab)))
		adviseHuge(unsafe.Pointer(unsafe.SliceData(c)), uintptr(len(c))*unsafe.Sizeof(entry{}))
		t.chunks = append(t.chunks, c)
	}
	i := t.nslab
	t.nslab++
	return i
}

// SetObservationDomain sets the domain stamped on every record.
func (t *Table) SetObservationDomain(d uint32) { t.domain = d }

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	var s Stats
	t.StatsInto(&s)
	return s
}

// StatsInto copies the table's counters into s, reusing s's per-symptom
// slices, so a caller publishing counters often does not allocate.
func (t *Table) StatsInto(s *Stats) {
	occ, flows := s.SymptomOccurrences[:0], s.SymptomFlows[:0]
	*s = t.stats
	s.Active = uint64(t.idx.n)
	s.SymptomOccurrences = append(occ, t.symOcc...)
	s.SymptomFlows = append(flows, t.symFlows...)
}

func (t *Table) lruList(e *entry) *list {
	if e.ended {
		return &t.ended
	}
	return &t.lru
}

func (t *Table) lruUnlink(i int32) {
	e := t.at(i)
	l := t.lruList(e)
	if e.lprev != nilIdx {
		t.at(e.lprev).lnext = e.lnext
	} else {
		l.head = e.lnext
	}
	if e.lnext != nilIdx {
		t.at(e.lnext).lprev = e.lprev
	} else {
		l.tail = e.lprev
	}
	e.lprev, e.lnext = nilIdx, nilIdx
}

func (t *Table) lruPush(i int32) {
	e := t.at(i)
	l := t.lruList(e)
	e.lprev, e.lnext = l.tail, nilIdx
	if l.tail != nilIdx {
		t.at(l.tail).lnext = i
	} else {
		l.head = i
	}
	l.tail = i
}

func (t *Table) ageUnlink(i int32) {
	e := t.at(i)
	if e.aprev != nilIdx {
		t.at(e.aprev).anext = e.anext
	} else {
		t.age.head = e.anext
	}
	if e.anext != nilIdx {
		t.at(e.anext).aprev = e.aprev
	} else {
		t.age.tail = e.aprev
	}
	e.aprev, e.anext = nilIdx, nilIdx
}

func (t *Table) agePush(i int32) {
	e := t.at(i)
	e.aprev, e.anext = t.age.tail, nilIdx
	if t.age.tail != nilIdx {
		t.at(t.age.tail).anext = i
	} else {
		t.age.head = i
	}
	t.age.tail = i
}

// Add meters one decoded packet captured at ts (ns since the epoch) on
// capture interface ifIndex.
func (t *Table) Add(p *decode.Packet, ts int64, ifIndex uint32) {
	if ts > t.now {
		t.now = ts
		if ts >= t.nextExpire {
			// Timeouts are checked every expireStep of capture time,
			// not on every packet.
			t.nextExpire = ts + expireStep
			t.expire()
		}
	}
	k := flow.Key{Src: p.Src, Dst: p.Dst, Sport: p.Sport, Dport: p.Dport, Proto: p.Proto, VLAN: p.VLAN}
	h := hashKey(&k)
	t.addHashed(p, &k, h, ts, ifIndex)
}

// BatchMax is the most packets AddBatch takes at once.
const BatchMax = 16

// AddBatch meters pkts[j], captured at ts[j] on capture interface
// ifIndex[j], in order, exactly as that many calls of Add would. It first
// hashes every packet's flow and reads the index slots, then the entries
// they name, so the cache misses of up to BatchMax lookups overlap
// instead of being taken one after the other; with large tables that is
// most of metering's cost. The slices must have the same length, at most
// BatchMax (longer batches are metered in pieces).
//
// The packets are all decoded before the first is metered, so their
// Payload slices must stay valid until AddBatch returns.
func (t *Table) AddBatch(pkts []decode.Packet, ts []int64, ifIndex []uint32) {
	for len(pkts) > BatchMax {
		t.AddBatch(pkts[:BatchMax], ts[:BatchMax], ifIndex[:BatchMax])
		pkts, ts, ifIndex = pkts[BatchMax:], ts[BatchMax:], ifIndex[BatchMax:]
	}
	ts = ts[:len(pkts)]
	ifIndex = ifIndex[:len(pkts)]
	var hs [BatchMax]uint64
	var keys [BatchMax]flow.Key
	ix := &t.idx
	slots := ix.slots
	for j := range pkts {
		p := &pkts[j]
		// Field by field: building the key in a temporary and copying
		// it made the copy's wide loads wait on the narrow stores
		// (a store-forwarding stall on every packet).
		k := &keys[j]
		k.Src, k.Dst = p.Src, p.Dst
		k.Sport, k.Dport, k.Proto, k.VLAN = p.Sport, p.Dport, p.Proto, p.VLAN
		hs[j] = hashKey(k)
		prefetch(unsafe.Pointer(&slots[ix.home(tagOf(hs[j]))]))
	}
	// Then, a few packets ahead of the one being metered, read the slot
	// (arrived by now) and prefetch the entry it names, and a little
	// less far ahead read that entry (arrived by now) and prefetch the
	// lru neighbours it will unlink from when it moves to the tail.
	// Metering a packet can change the table (expiry, eviction), so
	// what was looked up ahead is only ever a hint.
	var found [BatchMax]int32
	n := len(pkts)
	news := 0 // packets looked up ahead that start a flow, as far as can be told
	ahead := func(a int) {
		if found[a] = t.prefetchEntry(hs[a]); found[a] == nilIdx {
			// A new flow takes the entry freed last: create
			// writes all of it.
			if k := len(t.free) - 1 - news; k >= 0 {
				t.prefetchWhole(t.free[k])
			}
			news++
		}
	}
	for j := 0; j < min(entryAhead, n); j++ {
		ahead(j)
	}
	for j := range pkts {
		if a := j + entryAhead; a < n {
			ahead(a)
		}
		if a := j + linksAhead; a < n {
			t.prefetchLinks(found[a], ts[a])
		}
		p := &pkts[j]
		if tj := ts[j]; tj > t.now {
			t.now = tj
			if tj >= t.nextExpire {
				t.nextExpire = tj + expireStep
				t.expire()
			}
		}
		t.addHashed(p, &keys[j], hs[j], ts[j], ifIndex[j])
	}
}

// How many packets ahead of the one metered AddBatch prefetches entries
// and lru neighbours.
const (
	entryAhead = 6
	linksAhead = 3
)

// prefetchEntry returns the entry that the home slot of hash h names if
// its tag matches (else nilIdx), and starts fetching its hot lines.
func (t *Table) prefetchEntry(h uint64) int32 {
	ix := &t.idx
	s := ix.slots[ix.home(tagOf(h))]
	if s.idx == 0 || s.tag != tagOf(h) {
		return nilIdx
	}
	i := int32(s.idx - 1)
	prefetch2(unsafe.Pointer(t.at(i))) // the hot fields span two lines
	return i
}

// prefetchWhole starts fetching all of entry i's lines.
func (t *Table) prefetchWhole(i int32) {
	p := unsafe.Pointer(t.at(i))
	prefetch2(p)
	prefetch2(unsafe.Add(p, 128))
	prefetch2(unsafe.Add(p, 256))
	prefetch(unsafe.Add(p, 384))
}

// prefetchLinks starts fetching the lru neighbours of entry i if a packet
// at ts will move it to its list's tail.
func (t *Table) prefetchLinks(i int32, ts int64) {
	if i == nilIdx {
		return
	}
	if e := t.at(i); ts-e.moved >= lruGranularity {
		if e.lprev != nilIdx {
			prefetch(unsafe.Pointer(&t.at(e.lprev).lnext))
		}
		if e.lnext != nilIdx {
			prefetch(unsafe.Pointer(&t.at(e.lnext).lprev))
		}
	}
}

func (t *Table) addHashed(p *decode.Packet, kp *flow.Key, h uint64, ts int64, ifIndex uint32) {
	i, ok := t.find(kp, h)
	if ok && ts-t.at(i).first >= t.active {
		t.remove(i, flow.EndActive)
		ok = false
	}
	end := p.Proto == 6 && p.TCPFlags&(tcpFIN|tcpRST) != 0
	relink := true
	if !ok {
		i = t.create(kp, h, p, ts, ifIndex)
	} else if e := t.at(i); ts-e.moved >= lruGranularity || (end && !e.ended) {
		t.lruUnlink(i)
	} else {
		// Moving the entry to the list's tail on every packet costs two
		// cache misses on its neighbours; once per lruGranularity keeps
		// idle expiry and eviction within that much of exact.
		relink = false
	}
	e := t.at(i)
	e.packets++
	e.octets += uint64(p.OuterLen)
	e.inner += uint64(p.InnerLen)
	if ts > e.last {
		e.last = ts
	}
	if ts < e.first {
		e.first = ts
	}
	e.flags |= p.TCPFlags
	if t.cfg.Symptoms != nil && !e.noScan {
		t.scan(e, p)
	}
	if relink {
		e.ended = e.ended || end
		e.moved = ts
		t.lruPush(i)
	}
	t.stats.Packets++
	t.stats.Octets += uint64(p.OuterLen)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// scan feeds the packet's payload to the symptom matcher. TCP directions
// are scanned as a stream in sequence order, so a pattern split across
// segments is found once; a retransmitted segment is skipped and a gap
// resets the matcher. Other protocols are scanned datagram by datagram.
func (t *Table) scan(e *entry, p *decode.Packet) {
	db := t.cfg.Symptoms
	pl := p.Payload
	if p.LaterFragment {
		return // the middle of a datagram: its first fragment was scanned
	}
	if p.Proto != 6 {
		if len(pl) > 0 {
			var st symptom.State
			t.stats.ScanBytes += uint64(db.Scan(&st, &e.counts, pl, 0))
		}
		return
	}
	seq := p.TCPSeq
	if p.TCPFlags&tcpSYN != 0 {
		seq++ // the SYN takes one sequence number
		if !e.seqKnown {
			e.seqKnown, e.nextSeq, e.off = true, seq, 0
		}
	}
	if len(pl) == 0 {
		return
	}
	if !e.seqKnown {
		e.seqKnown, e.nextSeq, e.off = true, seq, unknownOffset
	}
	if d := int32(seq - e.nextSeq); d < 0 {
		// Retransmission or overlap: scan only bytes not seen yet.
		if -int64(d) >= int64(len(pl)) {
			t.stats.ScanRetrans++
			return
		}
		pl = pl[-d:]
		seq = e.nextSeq
		t.stats.ScanRetrans++
	} else if d > 0 {
		t.stats.ScanGaps++
		e.st.Reset()
		e.off += uint64(d)
		e.nextSeq = seq
	}
	t.stats.ScanBytes += uint64(db.Scan(&e.st, &e.counts, pl, e.off))
	adv := uint32(len(pl))
	if len(pl) < p.PayloadLen && len(p.Payload) == len(pl) {
		// Snapped segment: the rest was not captured.
		adv = uint32(p.PayloadLen)
		e.st.Reset()
		t.stats.ScanGaps++
	}
	e.nextSeq = seq + adv
	e.off += uint64(adv)
}

func (t *Table) create(k *flow.Key, h uint64, p *decode.Packet, ts int64, ifIndex uint32) int32 {
	i := t.alloc()
	if i == nilIdx {
		// Table full: export the least recently seen flow early.
		// Ended flows go first: they are finished anyway.
		v := t.ended.head
		reason := flow.EndDetected
		if v == nilIdx {
			v = t.lru.head
			reason = flow.EndResource
		}
		t.remove(v, reason)
		i = t.alloc()
	}
	e := t.at(i)
	*e = entry{key: *k, first: ts, last: ts, lprev: nilIdx, lnext: nilIdx, aprev: nilIdx, anext: nilIdx, inUse: true}
	r := &e.rec
	r.IPVersion = p.IPVersion
	r.Tunnel = p.Tunnel
	r.TunnelSrc, r.TunnelDst = p.TunnelSrc, p.TunnelDst
	r.Ingress = ifIndex
	r.Direction = 255
	r.SrcMAC, r.DstMAC = p.SrcMAC, p.DstMAC
	r.VPI, r.VCI = p.VPI, p.VCI
	r.ObservationDomain = t.domain
	if t.cfg.FastClass != nil {
		if c := t.cfg.FastClass(&e.key); c != 0 {
			r.Category = c
			e.noScan = true
			t.stats.FastClassed++
		}
	}
	if t.cfg.Label != nil {
		r.Aggregate = t.cfg.Label(p, ifIndex)
	}
	e.hash = h
	t.idx.insert(h, i)
	t.agePush(i)
	t.stats.Created++
	return i
}

// remove ends flow i with the given reason and queues its record.
func (t *Table) remove(i int32, reason flow.EndReason) {
	e := t.at(i)
	t.lruUnlink(i)
	t.ageUnlink(i)
	t.unindex(e.hash, i)
	e.rec.Key = e.key
	e.rec.Packets, e.rec.Octets, e.rec.InnerOctets = e.packets, e.octets, e.inner
	e.rec.First, e.rec.Last, e.rec.TCPFlags = e.first, e.last, e.flags
	e.rec.EndReason = reason
	if e.counts.Len() > 0 {
		e.rec.Symptoms = e.counts.AppendTo(make([]flow.SymptomCount, 0, e.counts.Len()))
		for _, sc := range e.rec.Symptoms {
			if int(sc.ID) < len(t.symOcc) {
				t.symOcc[sc.ID] += uint64(sc.Count)
				t.symFlows[sc.ID]++
			}
		}
	}
	t.out = append(t.out, e.rec)
	e.inUse = false
	e.rec = flow.Record{}
	t.free = append(t.free, i)
	t.stats.Expired[reason]++
	if len(t.out) >= cap(t.out) {
		t.flushOut()
	}
}

func (t *Table) flushOut() {
	if len(t.out) == 0 {
		return
	}
	t.stats.Exported += uint64(len(t.out))
	if t.sink != nil {
		t.sink(t.out)
	}
	for i := range t.out {
		t.out[i] = flow.Record{}
	}
	t.out = t.out[:0]
}

// expire ends the flows whose timeouts have passed at t.now.
func (t *Table) expire() {
	now := t.now
	t.expireList(&t.ended, t.tcpEnd, flow.EndDetected)
	t.expireList(&t.lru, t.idle, flow.EndIdle)
	for t.age.head != nilIdx && now-t.at(t.age.head).first >= t.active {
		t.remove(t.age.head, flow.EndActive)
	}
}

// expireList removes the flows at the head of lru list l that have seen
// no packet for timeout, oldest first. Each removal misses on the flow's
// entry, index slot and age-list neighbours, and finding the next flow is
// a chain of dependent misses; so while it removes one flow it prefetches
// the slot and neighbours of the next (whose entry was prefetched one
// removal earlier) and the entry of the one after.
func (t *Table) expireList(l *list, timeout int64, reason flow.EndReason) {
	now := t.now
	ix := &t.idx
	for i := l.head; i != nilIdx; {
		e := t.at(i)
		if now-e.last < timeout {
			return
		}
		next := e.lnext
		if next != nilIdx {
			n := t.at(next)
			prefetch(unsafe.Pointer(&ix.slots[ix.home(tagOf(n.hash))]))
			if n.aprev != nilIdx {
				prefetch(unsafe.Pointer(&t.at(n.aprev).anext))
			}
			if n.anext != nilIdx {
				prefetch(unsafe.Pointer(&t.at(n.anext).aprev))
			}
			if nn := n.lnext; nn != nilIdx {
				t.prefetchWhole(nn) // remove copies the record out
			}
		}
		t.remove(i, reason)
		i = next
	}
}

// Tick advances the table's clock to now (ns since the epoch) without a
// packet, expiring what has timed out, and hands pending records to the
// sink. Live capture calls it periodically.
func (t *Table) Tick(now int64) {
	if now > t.now {
		t.now = now
		t.expire()
	}
	t.flushOut()
}

// Flush ends every flow (flowEndReason forced end) and hands all pending
// records to the sink, oldest first. Used at end of capture and shutdown.
func (t *Table) Flush() {
	for t.age.head != nilIdx {
		reason := flow.EndForced
		if t.at(t.age.head).ended {
			reason = flow.EndDetected
		}
		t.remove(t.age.head, reason)
	}
	t.flushOut()
}
