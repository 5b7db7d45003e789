package meter

import (
	"cmp"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/mira-project/mira/appliance/appmeta"
	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/flow"
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
	// AppMetadata looks in each flow direction's first payload packets
	// for the HTTP Host, the TLS or QUIC server name and ALPN, and the DNS
	// question name and response code (appliance/appmeta); what is found
	// travels in the record's App.
	AppMetadata bool `yaml:"-"`
	// Label, when set, gives a new flow its aggregate id.
	Label func(p *decode.Packet, ifIndex uint32) uint32 `yaml:"-"`
}

// DefaultMaxFlows is the table's bound when Config.MaxFlows is 0.
const DefaultMaxFlows = 262144

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
		d.MaxFlows = DefaultMaxFlows
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
	// ScanShed counts flow directions no longer scanned because
	// self-regulation shed them (encrypted payload).
	ScanShed uint64
	// AppFound counts flow directions whose application metadata was
	// found; AppLooked the payload packets looked at for it.
	AppFound, AppLooked uint64
	// FTPData counts FTP data ports found announced on control
	// connections (flow.App.FTPData).
	FTPData uint64
	// ScanBypassed counts flow directions no longer scanned because they
	// turned to TLS application data after a handshake the symptom
	// database saw (symptom.DB.Encrypted).
	ScanBypassed uint64
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

// wheelSlots bounds the timer wheel; its slot width grows with the longest
// timeout beyond wheelSlots*expireStep.
const wheelSlots = 16384

// entry is one flow. It holds no pointers, so the slab is never scanned
// by the garbage collector and writing an entry needs no write barrier.
type entry struct {
	// Hot: what every packet of the flow reads or writes, in the first
	// two cache lines (one 128-byte pair: see TestEntryLayout).
	key     key
	packets uint64
	octets  uint64
	last    int64
	first   int64
	inner   uint64
	due     int64  // deadline of the flow's live wheel item
	sgen    uint32 // generation of the live wheel item; bumped on reschedule and free
	flags   uint8  // TCP flags union
	ended   bool   // FIN or RST seen
	inUse   bool
	noScan  bool // fast-classified: not scanned
	// Payload scanning state.
	seqKnown bool   // nextSeq is valid (TCP)
	nextSeq  uint32 // next expected TCP sequence number
	off      uint64 // stream offset of nextSeq in this direction's payload
	st       symptom.State
	// Read or written for every payload packet, so in the second line
	// too (TestEntryLayout): they were in the fourth, a cache miss per
	// scanned packet that the batch's prefetch of two lines left.
	scanned uint32 // payload octets given to the matcher (saturating)
	app     uint8  // application metadata: packets looked at, appDone
	ftp     bool   // an FTP control direction: its data port announcements are read
	_       [2]byte
	// Written when a symptom is found.
	counts symptom.Counts
	// Cold: the rest of the record, set when the flow is created.
	tunSrc0, tunSrc1, tunDst0, tunDst1 uint64
	ingress, aggregate                 uint32
	srcMAC, dstMAC                     [6]byte
	vpi, vci                           uint16
	category                           uint16
	ipVersion                          uint8
	tunnel                             flow.TunnelType
	tunFam                             uint8  // famSrc4|famDst4 of the tunnel endpoints; tunValid
	seq                                uint32 // creation order (wraps): breaks eviction ties
	appSlot                            uint32 // its metadata is apps[appSlot-1]; 0: none
}

// tunValid in entry.tunFam says the tunnel endpoints are set.
const tunValid = 4

// unknownOffset is the stream offset given to a TCP direction first seen
// mid-stream: beyond any offset/depth window, so start-anchored patterns
// cannot fire on a payload whose start was not seen.
const unknownOffset = 1 << 40

// item is a flow's place in the timer wheel: valid while the entry's sgen
// still equals gen.
type item struct {
	idx int32
	gen uint32
}

// block holds some of a wheel slot's items; next chains the slot's blocks.
type block struct {
	items [blockItems]item
	n     int32
	next  int32
}

const (
	blockItems = 31 // a block is 256 bytes
	blockBits  = 10 // blocks are allocated 1024 at a time
)

func (t *Table) blk(b int32) *block { return &t.blocks[b>>blockBits][b&(1<<blockBits-1)] }

func (t *Table) allocBlock() int32 {
	if n := len(t.freeBlocks); n > 0 {
		b := t.freeBlocks[n-1]
		t.freeBlocks = t.freeBlocks[:n-1]
		return b
	}
	if int(t.nblocks)>>blockBits == len(t.blocks) {
		t.blocks = append(t.blocks, make([]block, 1<<blockBits))
	}
	b := t.nblocks
	t.nblocks++
	return b
}

// push adds it to wheel slot s.
func (t *Table) push(s int, it item) {
	h := t.wheel[s]
	if h == nilIdx || t.blk(h).n == blockItems {
		nb := t.allocBlock()
		b := t.blk(nb)
		b.n, b.next = 0, h
		t.wheel[s] = nb
		h = nb
	}
	b := t.blk(h)
	b.items[b.n] = it
	b.n++
}

// Table is a bounded flow table. It is not safe for concurrent use.
type Table struct {
	cfg    Config
	idle   int64
	active int64
	tcpEnd int64
	idx    index
	chunks [][]entry // slab of entries, grown a chunk at a time
	nslab  int32     // entries allocated so far
	free   []int32
	// The timer wheel: every live flow has one valid item, in the slot
	// of its deadline (min of first+active and last+idle, or last+tcpEnd
	// once ended) or of an earlier time: packets only move deadlines
	// later, and a flow whose deadline moves earlier (FIN, RST) gets a
	// new item. A slot is slotW of capture time; cursor is the start of
	// the earliest slot not yet wholly past.
	wheel  []int32 // slot -> first block of its chain, nilIdx if empty
	slotW  int64
	cursor int64
	// Wheel items live in blocks from a pool that only grows, so the
	// wheel allocates nothing once it has held its peak of items.
	blocks     [][]block
	nblocks    int32
	freeBlocks []int32
	sink       Sink
	out        []flow.Record
	now        int64
	stats      Stats
	domain     uint32
	// per-symptom totals, indexed by id
	symOcc, symFlows []uint64
	nextExpire       int64
	flushBuf         []int32
	// Self-regulation: the flow sampling interval stamped on records
	// (1 in N of connections kept), and whether scanning sheds
	// encrypted directions.
	flowInterval uint32
	shed         bool
	// Application metadata found in live flows (by entry index), and
	// the parsers' working memory.
	apps     []flow.App // application metadata of flows (entry.appSlot)
	appsFree []uint32   // free slots of apps
	found    appmeta.Found
	quic     appmeta.Scratch
}

// Application metadata: a direction's first appLook payload packets are
// looked at; appDone ends the search.
const (
	appLook = 4
	appDone = 0x80
)

// SetFlowInterval makes the records exported from now on say that their
// flows were kept by hash-based flow selection at 1 in n
// (flow.Record.SamplingFlowInterval): 0 states nothing, 1 states that
// every flow was kept. Self-regulation calls it after Flush, so no
// record mixes two rates.
func (t *Table) SetFlowInterval(n uint32) { t.flowInterval = n }

// SetShed turns shedding on or off: while on, a TCP direction whose
// payload is a TLS application-data record (encrypted: no symptom can
// be found in it) stops being scanned for the rest of the flow.
func (t *Table) SetShed(on bool) { t.shed = on }

// Reconfigure replaces the symptom database, the fast-class lookup and
// the aggregate labeller (a configuration reload). Flows under way were
// classified and scanned with the old ones: the caller flushes first,
// so that each record was metered under one configuration. Per-symptom
// counters keep their ids (a new database's ids count on from the old
// ones' totals).
func (t *Table) Reconfigure(db *symptom.DB, fast func(*flow.Key) uint16, label func(*decode.Packet, uint32) uint32) {
	t.cfg.Symptoms, t.cfg.FastClass, t.cfg.Label = db, fast, label
	if db == nil {
		return
	}
	for _, sy := range db.Symptoms() {
		for int(sy.ID) >= len(t.symOcc) {
			t.symOcc = append(t.symOcc, 0)
			t.symFlows = append(t.symFlows, 0)
		}
	}
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
		sink:   sink,
		out:    make([]flow.Record, 0, c.ExportBatch),
	}
	horizon := max(t.idle, t.active, t.tcpEnd)
	t.slotW = max(expireStep, (horizon+wheelSlots-3)/(wheelSlots-2))
	// Deadlines lie at most horizon after now, and the cursor is never
	// more than a slot behind now when an item is added: slots cover
	// more than horizon plus a slot, so no two pending times share one.
	t.wheel = make([]int32, horizon/t.slotW+3)
	for i := range t.wheel {
		t.wheel[i] = nilIdx
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
	chunkBits = 14 // 4 MiB of entries: two huge pages
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

// deadline is when flow e ends unless more packets come.
func (t *Table) deadline(e *entry) int64 {
	to := t.idle
	if e.ended {
		to = t.tcpEnd
	}
	return min(e.first+t.active, e.last+to)
}

// endReason is why flow e ends at its deadline.
func (t *Table) endReason(e *entry) flow.EndReason {
	to := t.idle
	if e.ended {
		to = t.tcpEnd
	}
	switch {
	case e.first+t.active <= e.last+to:
		return flow.EndActive
	case e.ended:
		return flow.EndDetected
	}
	return flow.EndIdle
}

// slotOf is the wheel slot of time ts; times before the cursor go to the
// cursor's slot.
func (t *Table) slotOf(ts int64) int {
	ts = max(ts, t.cursor)
	q := ts / t.slotW
	if ts < 0 && ts%t.slotW != 0 {
		q-- // floor
	}
	r := q % int64(len(t.wheel))
	if r < 0 {
		r += int64(len(t.wheel))
	}
	return int(r)
}

// schedule gives flow i a new wheel item at time dl; its earlier item, if
// any, is no longer valid.
func (t *Table) schedule(i int32, dl int64) {
	e := t.at(i)
	e.sgen++
	e.due = dl
	t.push(t.slotOf(dl), item{idx: i, gen: e.sgen})
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
	var k key
	setKey(&k, p)
	t.addHashed(p, &k, hashKey(&k), ts, ifIndex)
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
	var keys [BatchMax]key
	ix := &t.idx
	slots := ix.slots
	for j := range pkts {
		// The key is filled in place: building it in a temporary and
		// copying it made the copy's wide loads wait on the narrow
		// stores (a store-forwarding stall on every packet).
		setKey(&keys[j], &pkts[j])
		hs[j] = hashKey(&keys[j])
		prefetch(unsafe.Pointer(&slots[ix.home(tagOf(hs[j]))]))
	}
	// Then, a few packets ahead of the one being metered, read the slot
	// (arrived by now) and prefetch the entry it names. Metering a
	// packet can change the table (expiry, eviction), so what was looked
	// up ahead is only ever a hint.
	n := len(pkts)
	news := 0 // packets looked up ahead that start a flow, as far as can be told
	ahead := func(a int) {
		if !t.prefetchEntry(hs[a]) {
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
		if tj := ts[j]; tj > t.now {
			t.now = tj
			if tj >= t.nextExpire {
				t.nextExpire = tj + expireStep
				t.expire()
			}
		}
		t.addHashed(&pkts[j], &keys[j], hs[j], ts[j], ifIndex[j])
	}
}

// How many packets ahead of the one metered AddBatch prefetches entries.
const entryAhead = 6

// prefetchEntry starts fetching the hot lines of the entry that the home
// slot of hash h names, if its tag matches.
func (t *Table) prefetchEntry(h uint64) bool {
	ix := &t.idx
	s := ix.slots[ix.home(tagOf(h))]
	if s.idx == 0 || s.tag != tagOf(h) {
		return false
	}
	prefetch2(unsafe.Pointer(t.at(int32(s.idx - 1)))) // the hot fields span two lines
	return true
}

// prefetchWhole starts fetching all of entry i's lines.
func (t *Table) prefetchWhole(i int32) {
	p := unsafe.Pointer(t.at(i))
	prefetch2(p)
	prefetch2(unsafe.Add(p, 128))
}

func (t *Table) addHashed(p *decode.Packet, kp *key, h uint64, ts int64, ifIndex uint32) {
	i, ok := t.find(kp, h)
	if ok && ts-t.at(i).first >= t.active {
		t.remove(i, flow.EndActive)
		ok = false
	}
	if !ok {
		i = t.create(kp, h, p, ts, ifIndex)
	}
	e := t.at(i)
	e.packets++
	e.octets += uint64(p.OuterLen)
	e.inner += uint64(p.InnerLen)
	if ts > e.last {
		e.last = ts
	}
	resched := false
	if ts < e.first {
		e.first = ts // a late packet: the active deadline moves earlier
		resched = true
	}
	e.flags |= p.TCPFlags
	if p.Proto == 6 && p.TCPFlags&(tcpFIN|tcpRST) != 0 && !e.ended {
		e.ended = true // the deadline moves to last+tcpEnd
		resched = true
	}
	if resched {
		if dl := t.deadline(e); dl < e.due {
			t.schedule(i, dl)
		}
	}
	if t.cfg.Symptoms != nil && !e.noScan {
		t.scan(e, p)
	}
	if t.cfg.AppMetadata && len(p.Payload) > 0 && !p.LaterFragment {
		if e.app < appLook {
			t.lookApp(e, p)
		}
		if e.ftp {
			t.lookFTP(e, p)
		}
	}
	t.stats.Packets++
	t.stats.Octets += uint64(p.OuterLen)
}

// lookApp runs the application-metadata parsers that fit the packet and
// keeps what they find for the flow's record. A direction is done once
// a name is found (a DNS response's code comes with its name) or after
// appLook payload packets.
func (t *Table) lookApp(e *entry, p *decode.Packet) {
	e.app++
	t.stats.AppLooked++
	pl, f := p.Payload, &t.found
	f.Reset()
	ok := false
	switch p.Proto {
	case 6:
		switch {
		case appmeta.IsTLSClientHello(pl):
			ok = appmeta.TLSClientHello(pl, f)
		case appmeta.IsHTTPRequest(pl):
			ok = appmeta.HTTPHost(pl, f)
		case appmeta.IsDNSPort(p.Sport) || appmeta.IsDNSPort(p.Dport):
			ok = appmeta.DNS(pl, true, f)
		case !e.ftp && appmeta.IsFTPControl(pl):
			e.ftp = true // the server's side of FTP on another port
		}
	case 17:
		switch {
		case appmeta.IsDNSPort(p.Sport) || appmeta.IsDNSPort(p.Dport):
			ok = appmeta.DNS(pl, false, f)
		case appmeta.IsQUICInitial(pl):
			ok = appmeta.QUICInitial(pl, &t.quic, f)
		}
	}
	if !ok && f.ALPNLen == 0 && !f.HasRcode {
		return
	}
	if ok {
		e.app = appDone
		t.stats.AppFound++
	}
	a := t.appOf(e)
	switch f.Kind {
	case appmeta.KindHTTP:
		a.HTTPHost = f.NameString()
	case appmeta.KindTLS, appmeta.KindQUIC:
		a.ServerName = f.NameString()
	case appmeta.KindDNS:
		a.DNSName = f.NameString()
	}
	if f.ALPNLen > 0 && a.ALPN == "" {
		a.ALPN = f.ALPNString()
	}
	if f.HasRcode && !a.DNSResponse {
		a.DNSResponse, a.DNSRcode = true, f.Rcode
	}
}

// appOf returns the application metadata slot of e, taking one when it
// has none.
func (t *Table) appOf(e *entry) *flow.App {
	if e.appSlot == 0 {
		// A slot of its own rather than a map keyed by entry: the map's
		// hashing and growth were a fifth of a scanning probe's CPU time.
		if n := len(t.appsFree); n > 0 {
			e.appSlot = t.appsFree[n-1]
			t.appsFree = t.appsFree[:n-1]
		} else {
			t.apps = append(t.apps, flow.App{})
			e.appSlot = uint32(len(t.apps))
		}
	}
	return &t.apps[e.appSlot-1]
}

// lookFTP records the data ports an FTP control direction announces
// (appmeta.FTPDataPorts) for the flow's record.
func (t *Table) lookFTP(e *entry, p *decode.Packet) {
	appmeta.FTPDataPorts(p.Payload, func(port uint16) {
		a := t.appOf(e)
		if l := flow.AddFTPData(a.FTPData, port); l != a.FTPData {
			a.FTPData = l
			t.stats.FTPData++
		}
	})
}

// tlsAppData is the TLS record content type of application data.
const tlsAppData = 0x17

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// scanned counts n octets given to the matcher, for the table and the
// flow (flow.Record.ScannedOctets; saturating at 2^32-1).
func (t *Table) scanned(e *entry, n int) {
	t.stats.ScanBytes += uint64(n)
	if s := uint64(e.scanned) + uint64(n); s <= math.MaxUint32 {
		e.scanned = uint32(s)
	} else {
		e.scanned = math.MaxUint32
	}
}

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
			t.scanned(e, db.ScanDatagram(&e.counts, pl))
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
	if len(pl) >= 5 && pl[0] == tlsAppData && pl[1] == 3 && pl[2] <= 4 {
		switch {
		case db.Encrypted(&e.counts, pl):
			// After a TLS handshake: ciphertext from here on.
			e.noScan = true
			t.stats.ScanBypassed++
			return
		case t.shed:
			// Shedding: TLS application data is ciphertext from here on.
			e.noScan = true
			t.stats.ScanShed++
			return
		}
	}
	if !e.seqKnown {
		e.seqKnown, e.nextSeq, e.off = true, seq, unknownOffset
	}
	d := int32(seq - e.nextSeq)
	done := 0 // bytes of pl already scanned
	if d == 0 && len(pl) >= 5 && pl[0] >= 20 && pl[0] <= 22 && pl[1] == 3 {
		// An in-order segment opening a TLS record: a handshake flight
		// whose ciphertext starts in this segment is scanned up to its
		// first application-data record, then the direction is bypassed.
		if k := db.TLSAppDataAt(pl); k > 0 {
			t.scanned(e, db.Scan(&e.st, &e.counts, pl[:k], e.off))
			if db.Encrypted(&e.counts, pl[k:]) {
				e.noScan = true
				t.stats.ScanBypassed++
				return
			}
			done = k // no handshake seen: the rest is scanned on
		}
	}
	if d < 0 {
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
	t.scanned(e, db.Scan(&e.st, &e.counts, pl[done:], e.off+uint64(done)))
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

func (t *Table) create(k *key, h uint64, p *decode.Packet, ts int64, ifIndex uint32) int32 {
	i := t.alloc()
	if i == nilIdx {
		// Table full: export early the flow whose timeout falls
		// soonest (finished TCP flows and the least recently seen).
		t.evict()
		i = t.alloc()
	}
	e := t.at(i)
	gen := e.sgen
	*e = entry{key: *k, first: ts, last: ts, sgen: gen, inUse: true}
	e.ipVersion = p.IPVersion
	e.tunnel = p.Tunnel
	if p.TunnelSrc.IsValid() {
		var s4, d4 bool
		e.tunSrc0, e.tunSrc1, s4 = addrWords(p.TunnelSrc)
		e.tunDst0, e.tunDst1, d4 = addrWords(p.TunnelDst)
		e.tunFam = tunValid
		if s4 {
			e.tunFam |= famSrc4
		}
		if d4 {
			e.tunFam |= famDst4
		}
	}
	e.seq = uint32(t.stats.Created)
	e.ingress = ifIndex
	e.srcMAC, e.dstMAC = p.SrcMAC, p.DstMAC
	e.vpi, e.vci = p.VPI, p.VCI
	e.ftp = p.Proto == 6 && t.cfg.AppMetadata && (appmeta.IsFTPPort(p.Sport) || appmeta.IsFTPPort(p.Dport))
	if t.cfg.FastClass != nil {
		fk := flow.Key{Src: p.Src, Dst: p.Dst, Sport: p.Sport, Dport: p.Dport, Proto: p.Proto, VLAN: p.VLAN}
		if c := t.cfg.FastClass(&fk); c != 0 {
			e.category = c
			e.noScan = true
			t.stats.FastClassed++
		}
	}
	if t.cfg.Label != nil {
		e.aggregate = t.cfg.Label(p, ifIndex)
	}
	t.idx.insert(h, i)
	t.schedule(i, min(ts+t.active, ts+t.idle))
	t.stats.Created++
	return i
}

// evict ends the live flow with the earliest deadline (of equal ones the
// one created first), scanning the
// wheel from the cursor: items whose flow's deadline has moved later are
// moved to their slot on the way, stale ones dropped.
func (t *Table) evict() {
	n := len(t.wheel)
	start := t.slotOf(t.cursor)
	for k := 0; k < n; k++ {
		s := (start + k) % n
		best, bestDl, bestSeq := int32(nilIdx), int64(0), uint32(0)
		t.sweepSlot(s, func(i int32, dl int64) bool {
			if t.slotOf(dl) != s {
				t.schedule(i, dl) // its deadline moved later
				return false
			}
			// The earliest deadline; of equal ones, the oldest flow.
			// Creation numbers wrap: compared by difference.
			if seq := t.at(i).seq; best == nilIdx || dl < bestDl || (dl == bestDl && int32(seq-bestSeq) < 0) {
				best, bestDl, bestSeq = i, dl, seq
			}
			return true
		})
		if best != nilIdx {
			reason := flow.EndResource
			if t.at(best).ended {
				reason = flow.EndDetected
			}
			t.remove(best, reason)
			return
		}
	}
	panic("meter: table full but no flow in the timer wheel")
}

// sweepSlot visits the valid items of slot s, calling f with the flow
// and its deadline; f returns whether the item stays in s (false: f
// removed the flow, or the item moves to its deadline's slot). Stale
// items are dropped.
func (t *Table) sweepSlot(s int, f func(i int32, dl int64) bool) {
	h := t.wheel[s]
	t.wheel[s] = nilIdx
	for h != nilIdx {
		b := t.blk(h)
		for r := int32(0); r < b.n; r++ {
			it := b.items[r]
			// Most items of a slot that is due end their flow, which
			// misses on the entry (all of it: the record is built from
			// the cold lines) and then on its index slot: fetch entries
			// four items ahead, and two ahead (the entry has arrived)
			// the index slot its key hashes to.
			if r+4 < b.n {
				t.prefetchWhole(b.items[r+4].idx) // remove reads the cold lines too
			}
			if r+2 < b.n {
				ix := &t.idx
				e2 := t.at(b.items[r+2].idx)
				prefetch(unsafe.Pointer(&ix.slots[ix.home(tagOf(hashKey(&e2.key)))]))
				if a := e2.appSlot; a != 0 && int(a) <= len(t.apps) {
					// remove moves its application metadata too.
					prefetch2(unsafe.Pointer(&t.apps[a-1]))
				}
			}
			e := t.at(it.idx)
			if e.sgen != it.gen {
				continue // superseded, or the flow has ended
			}
			dl := t.deadline(e)
			e.due = dl
			if f(it.idx, dl) {
				t.push(s, it)
			}
		}
		next := b.next
		t.freeBlocks = append(t.freeBlocks, h)
		h = next
	}
}

// remove ends flow i with the given reason and queues its record.
func (t *Table) remove(i int32, reason flow.EndReason) {
	e := t.at(i)
	t.unindex(hashKey(&e.key), i)
	t.out = append(t.out, flow.Record{})
	r := &t.out[len(t.out)-1]
	r.Key = e.key.flowKey()
	r.Packets, r.Octets, r.InnerOctets = e.packets, e.octets, e.inner
	r.First, r.Last, r.TCPFlags = e.first, e.last, e.flags
	r.EndReason = reason
	r.IPVersion = e.ipVersion
	r.Tunnel = e.tunnel
	if e.tunFam&tunValid != 0 {
		r.TunnelSrc = wordsAddr(e.tunSrc0, e.tunSrc1, e.tunFam&famSrc4 != 0)
		r.TunnelDst = wordsAddr(e.tunDst0, e.tunDst1, e.tunFam&famDst4 != 0)
	}
	r.Ingress = e.ingress
	r.Direction = 255
	r.SrcMAC, r.DstMAC = e.srcMAC, e.dstMAC
	r.VPI, r.VCI = e.vpi, e.vci
	r.ScannedOctets = uint64(e.scanned)
	r.ObservationDomain = t.domain
	r.SamplingFlowInterval = t.flowInterval
	r.Aggregate = e.aggregate
	r.Category = e.category
	if e.counts.Len() > 0 {
		r.Symptoms = e.counts.AppendTo(make([]flow.SymptomCount, 0, e.counts.Len()))
		for _, sc := range r.Symptoms {
			if int(sc.ID) < len(t.symOcc) {
				t.symOcc[sc.ID] += uint64(sc.Count)
				t.symFlows[sc.ID]++
			}
		}
	}
	if e.appSlot != 0 {
		r.App = t.apps[e.appSlot-1]
		t.apps[e.appSlot-1] = flow.App{}
		t.appsFree = append(t.appsFree, e.appSlot)
		e.appSlot = 0
	}
	e.inUse = false
	e.sgen++ // its wheel item is stale now
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

// expire ends the flows whose deadlines have passed at t.now: the wheel's
// slots from the cursor up to now, the last of them perhaps only partly
// past.
func (t *Table) expire() {
	now := t.now
	n := int64(len(t.wheel))
	if now-t.cursor >= n*t.slotW {
		// A jump in capture time beyond the whole wheel: every slot
		// once, then start again at now.
		for s := range t.wheel {
			t.expireSlot(s, now)
		}
		t.cursor = now - now%t.slotW
		return
	}
	for t.cursor <= now {
		t.expireSlot(t.slotOf(t.cursor), now)
		if t.cursor+t.slotW > now {
			return // the current slot: its later part is still ahead
		}
		t.cursor += t.slotW
	}
}

func (t *Table) expireSlot(s int, now int64) {
	t.sweepSlot(s, func(i int32, dl int64) bool {
		switch {
		case dl <= now:
			t.remove(i, t.endReason(t.at(i)))
			return false
		case t.slotOf(dl) != s:
			t.schedule(i, dl) // its deadline moved later
			return false
		}
		return true // due later in this slot
	})
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

// Restart ends every flow as Flush does and sets the table's clock back
// to its start, so that what follows is metered as a capture of its own:
// a capture file older than the one read before it. Without it the
// clock stayed at the newer file's end, the older file's flows never
// timed out and each came out as one record however long its idle gaps.
func (t *Table) Restart() {
	t.Flush()
	t.now, t.nextExpire, t.cursor = 0, 0, 0
}

// HandOver hands the records of the flows that have ended to the sink
// without advancing the table's clock: a replay paced to its capture's
// timestamps (--speed) calls it periodically, as live capture calls Tick.
func (t *Table) HandOver() { t.flushOut() }

// Flush ends every flow (flowEndReason forced end, or end detected for a
// TCP flow that saw FIN or RST) and hands all pending records to the
// sink, oldest first. Used at end of capture and shutdown.
func (t *Table) Flush() {
	live := t.flushBuf[:0]
	for i := int32(0); i < t.nslab; i++ {
		if t.at(i).inUse {
			live = append(live, i)
		}
	}
	slices.SortStableFunc(live, func(a, b int32) int { return cmp.Compare(t.at(a).first, t.at(b).first) })
	for _, i := range live {
		reason := flow.EndForced
		if t.at(i).ended {
			reason = flow.EndDetected
		}
		t.remove(i, reason)
	}
	t.flushBuf = live[:0]
	for s, h := range t.wheel {
		for h != nilIdx {
			t.freeBlocks = append(t.freeBlocks, h)
			h = t.blk(h).next
		}
		t.wheel[s] = nilIdx
	}
	t.flushOut()
}
