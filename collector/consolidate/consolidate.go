package consolidate

import (
	"bytes"
	"cmp"
	"maps"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/slab"
	"github.com/mira-project/mira/ipfix"
)

// Origin names where records came from: the probe (exporter) and its
// observation domain.
type Origin struct {
	Probe  string
	Domain uint32
}

// Override replaces the sampling a probe announces (operator override).
// Zero fields mean unsampled.
type Override struct {
	// PacketInterval is N of 1-in-N packet sampling.
	PacketInterval uint32 `yaml:"packet_interval" json:"packet_interval"`
	// FlowInterval is N of 1-in-N hash-based flow selection.
	FlowInterval uint32 `yaml:"flow_interval" json:"flow_interval"`
}

// Config configures a Consolidator. The zero value means defaults.
type Config struct {
	// Window is how far apart in time the two directions of a connection
	// (or two observations of one direction) may be and still pair; a
	// connection idle this long is complete (default 120s).
	Window time.Duration
	// Bucket is the usage statistics time bucket (default 5m).
	Bucket time.Duration
	// Confidence is the confidence level of the intervals (default 0.95).
	Confidence float64
	// Overrides replace the sampling of the named probes.
	Overrides map[string]Override
	// AwaitOptions lists probes whose records carry no sampling of their
	// own: their records are held until their domain's sampling options
	// arrive ("*" for every probe).
	AwaitOptions []string
	// Hold bounds how long records wait for sampling options (default
	// 30s of record time); then they are released unscaled and marked.
	Hold time.Duration
	// AS, when set, gives per-AS statistics.
	AS *ASTable
	// Sink, when set, receives every completed biflow. The Biflow is
	// reused after the call.
	Sink func(*Biflow)
	// Now is the wall clock (time.Now); tests set it. A connection is
	// complete when every probe's records have moved a Window past it
	// and none of its records arrived for a Window: probes that replay
	// files, or that connect late, still pair.
	Now func() time.Time
	// Batch is for records that are all at hand and fed in start order
	// with AddRecord (the report over stored flows): completion does not
	// use the wall clock or the watermark, so the result does not depend
	// on how fast they are fed.
	Batch bool
	// KeepDuplicates sums the observations of every probe instead of
	// keeping one per direction (mira report --no-dedup).
	KeepDuplicates bool
	// Skew is how far the clocks of two probes may differ (default 5s):
	// a record of a direction that another probe saw end by FIN or RST
	// continues that connection when it starts up to Skew after the end
	// (the same packets timed by a clock ahead), and starts a new one
	// (the port pair reused) only later. Two probes whose clocks differ
	// by more see each short connection twice.
	Skew time.Duration
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.Window <= 0 {
		d.Window = 120 * time.Second
	}
	if d.Bucket <= 0 {
		d.Bucket = 5 * time.Minute
	}
	if d.Confidence <= 0 || d.Confidence >= 1 {
		d.Confidence = 0.95
	}
	if d.Hold <= 0 {
		d.Hold = 30 * time.Second
	}
	if d.Skew <= 0 {
		d.Skew = 5 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Stats are a Consolidator's counters.
type Stats struct {
	Records    uint64 // records added
	Biflows    uint64 // biflows completed
	Paired     uint64 // of which both directions were seen
	CrossProbe uint64 // of which the directions came from different probes
	Duplicates uint64 // observations dropped as duplicates of another probe's
	Held       uint64 // records held waiting for sampling options
	Unscaled   uint64 // records added without their sampling (not scaled)
	Pending    int    // connections waiting for completion now
}

// connKey identifies a connection regardless of direction: endpoint a is
// the lower (address, then port). VLAN is left out on purpose: two probes
// may see one connection on links with different tags.
// Addresses are kept as 16 bytes plus a family bit (IPv4 addresses in
// their mapped form) rather than as netip.Addr: 38 bytes instead of 56,
// and no pointer for the garbage collector to follow in the map of
// pending connections. Zones are not kept (flow records carry none).
type connKey struct {
	a, b   [16]byte
	pa, pb uint16
	proto  uint8
	fam    uint8 // famA4: a is IPv4; famB4: b is IPv4
}

const (
	famA4 = 1 << iota
	famB4
)

// newConnKey returns the key of endpoints a and b (in this order).
func newConnKey(a, b netip.Addr, pa, pb uint16, proto uint8) connKey {
	k := connKey{a: a.As16(), b: b.As16(), pa: pa, pb: pb, proto: proto}
	if a.Is4() {
		k.fam |= famA4
	}
	if b.Is4() {
		k.fam |= famB4
	}
	return k
}

func keyAddr(b [16]byte, is4 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// A returns endpoint a's address, B endpoint b's.
func (k *connKey) A() netip.Addr { return keyAddr(k.a, k.fam&famA4 != 0) }
func (k *connKey) B() netip.Addr { return keyAddr(k.b, k.fam&famB4 != 0) }

// compareKeyAddr orders as netip.Addr.Compare does (IPv4 before IPv6,
// then by address).
func compareKeyAddr(x, y [16]byte, x4, y4 bool) int {
	if x4 != y4 {
		if x4 {
			return -1
		}
		return 1
	}
	return bytes.Compare(x[:], y[:])
}

func isICMP(p uint8) bool { return p == 1 || p == 58 }

func icmpEcho(proto uint8, dport uint16) (echo, request bool) {
	t := dport >> 8
	switch proto {
	case 1:
		return t == 8 || t == 0, t == 8
	case 58:
		return t == 128 || t == 129, t == 128
	}
	return false, false
}

// keyOf returns r's connection key and whether r runs from a to b.
func keyOf(r *flow.Record) (connKey, bool) {
	sp, dp := r.Sport, r.Dport
	src, dst := r.Src.Unmap(), r.Dst.Unmap()
	if isICMP(r.Proto) {
		if echo, _ := icmpEcho(r.Proto, r.Dport); echo {
			sp, dp = 0, 0xffff
		}
		if src.Compare(dst) <= 0 {
			return newConnKey(src, dst, sp, dp, r.Proto), true
		}
		return newConnKey(dst, src, sp, dp, r.Proto), false
	}
	c := src.Compare(dst)
	if c < 0 || (c == 0 && sp <= dp) {
		return newConnKey(src, dst, sp, dp, r.Proto), true
	}
	return newConnKey(dst, src, dp, sp, r.Proto), false
}

// obs is one probe's observation of one direction: its records summed.
// Observations live in Consolidator.obs (64 bytes each, no pointers);
// what many observations share (attrs) in Consolidator.attrTab, their
// symptom counts in Consolidator.syms, and what few observations have
// (counts split by flow interval, an end by FIN or RST before the last
// record's end, ports other than the key's) in Consolidator.exts.
type obs struct {
	packets, octets uint64
	scanned         uint64 // payload octets the probe's matcher was given (flow.Record.ScannedOctets)
	first, last     int64
	records         uint32
	attr            uint32 // its attrs (Consolidator.attrTab)
	next            uint32 // the direction's next observation (another probe's); 0: none
	sym             uint32 // first symptom count (Consolidator.syms); 0: none
	ext             uint32 // its extras (Consolidator.exts); 0: none
	flags           uint8
	bits            uint8 // obsUnknown, ...
}

// attrs are the parts of an observation that most observations share
// with many others, held once (Consolidator.intern) and counted.
type attrs struct {
	probe        int32
	pktInterval  uint32 // the highest a record stated
	flowInterval uint32 // the highest a record stated
	aggregate    uint32 // the first record's that had one
	category     uint16 // the first record's that had one
	vlan         uint16 // of the first record
}

type attrEntry struct {
	a    attrs
	refs uint32
}

const (
	obsUnknown    = 1 << iota // a record was added without its sampling
	obsEnded                  // a record ended by FIN or RST was added (endAt)
	obsEndApart               // the end by FIN or RST is ext.endAt, not last
	obsPortsApart             // the ports are ext's, not the key's
)

// obsExt is what an observation holds only when its records have it.
type obsExt struct {
	// parts splits packets and octets by the flow and packet intervals
	// their records stated, once two records stated different ones (a
	// self-regulating probe ends every flow when its rate changes, and so
	// does a probe whose sampling a reload or a restart changed, so a
	// connection that spans a change has records of each rate); empty
	// while all agree.
	parts []part
	// endAt is the latest end of a record ended by FIN or RST when it
	// is before the observation's last end (obsEndApart).
	endAt int64
	// sport and dport are the first record's ports when they are not
	// the key's (obsPortsApart: an ICMP echo's type and code).
	sport, dport uint16
}

// symNode is one symptom count of an observation, in Consolidator.syms;
// an observation's counts are listed in the order their symptoms were
// first seen.
type symNode struct {
	count uint32
	next  uint32
	id    uint16
}

// part is what the records of one flow interval and one packet interval
// of an observation sum.
type part struct {
	flowInterval    uint32
	pktInterval     uint32
	packets, octets uint64
}

// addPart adds a record's counts to the part of its flow and packet
// intervals.
func addPart(ps []part, fi, pi uint32, packets, octets uint64) []part {
	for i := range ps {
		if p := &ps[i]; p.flowInterval == fi && p.pktInterval == pi {
			p.packets = SatAdd(p.packets, packets)
			p.octets = SatAdd(p.octets, octets)
			return ps
		}
	}
	return append(ps, part{fi, pi, packets, octets})
}

func (a *attrs) prob() float64 {
	p := 1.0
	if a.pktInterval > 1 {
		p /= float64(a.pktInterval)
	}
	if a.flowInterval > 1 {
		p /= float64(a.flowInterval)
	}
	return p
}

// better says whether x is kept rather than y (duplicate policy).
func (c *Consolidator) better(x, y *obs) bool {
	ax, ay := c.attr(x), c.attr(y)
	px, py := ax.prob(), ay.prob()
	if px != py {
		return px > py
	}
	// Unsampled, the larger count is the more complete observation (the
	// other probe lost packets). Sampled, it is the luckier draw: keeping
	// the larger of two probes' samples of the same packets overestimates
	// (two probes at random 1/4 on one capture: +21 % packets).
	if px == 1 && x.packets != y.packets {
		return x.packets > y.packets
	}
	return originLess(c.origins[ax.probe], c.origins[ay.probe])
}

// attr returns o's attrs.
func (c *Consolidator) attr(o *obs) *attrs { return &c.attrTab.At(o.attr).a }

// intern returns the index of a in attrTab, counting one more use. A
// small cache by a cheap hash of a spares most lookups in attrIx.
func (c *Consolidator) intern(a attrs) uint32 {
	h := (uint64(a.probe)*0x9e3779b97f4a7c15 ^ uint64(a.pktInterval)<<40 ^ uint64(a.flowInterval)<<20 ^
		uint64(a.aggregate)*0xc2b2ae3d27d4eb4f ^ (uint64(a.category)<<16|uint64(a.vlan))*0x165667b19e3779f9) >> 56
	i := c.attrHot[h]
	if i == 0 || c.attrTab.At(i).refs == 0 || c.attrTab.At(i).a != a {
		var ok bool
		if i, ok = c.attrIx[a]; !ok {
			i = c.attrTab.Alloc()
			*c.attrTab.At(i) = attrEntry{a: a}
			c.attrIx[a] = i
		}
		c.attrHot[h] = i
	}
	c.attrTab.At(i).refs++
	return i
}

// unref counts one use of attrTab's i less, forgetting it at none.
func (c *Consolidator) unref(i uint32) {
	x := c.attrTab.At(i)
	if x.refs--; x.refs == 0 {
		delete(c.attrIx, x.a)
		*x = attrEntry{}
		c.attrTab.Release(i)
	}
}

func originLess(a, b Origin) bool {
	if a.Probe != b.Probe {
		return a.Probe < b.Probe
	}
	return a.Domain < b.Domain
}

// conn is one pending connection, in Consolidator.conns (48 bytes, no
// pointers). Its observations are listed per direction from head, in the
// order their probes were first seen; most directions are seen by one
// probe. The connections of one key pending at once (port reuse) are
// listed newest first through older. A connection's start and end are
// its observations' (span). Its key (Consolidator.key) has an IPv4
// pair's addresses inline (a4, b4), any other pair's in
// Consolidator.addrs (v6).
type conn struct {
	seen  int64     // wall clock of the latest record
	head  [2]uint32 // first observation per direction ([0]: a->b, [1]: b->a)
	older uint32
	// app is the application metadata of the connection's records,
	// merged (mergeApp), in Consolidator.apps (appRec); 0 until a record carries
	// some.
	app    uint32
	v6     uint32 // the addresses (Consolidator.addrs) unless both are IPv4
	pa, pb uint16
	a4, b4 [4]byte
	proto  uint8
	fam    uint8
}

// both4 in connKey.fam: both addresses are IPv4.
const both4 = famA4 | famB4

// v4mapped is the prefix of an IPv4 address's 16 bytes (As16).
var v4mapped = [12]byte{10: 0xff, 11: 0xff}

// setKey makes k e's key.
func (c *Consolidator) setKey(e *conn, k *connKey) {
	e.pa, e.pb, e.proto, e.fam = k.pa, k.pb, k.proto, k.fam
	if k.fam == both4 {
		e.a4, e.b4 = [4]byte(k.a[12:]), [4]byte(k.b[12:])
		return
	}
	e.v6 = c.addrs.Alloc()
	*c.addrs.At(e.v6) = [2][16]byte{k.a, k.b}
}

// key returns e's key.
func (c *Consolidator) key(e *conn) connKey {
	k := connKey{pa: e.pa, pb: e.pb, proto: e.proto, fam: e.fam}
	if e.v6 == 0 {
		copy(k.a[:], v4mapped[:])
		copy(k.b[:], v4mapped[:])
		copy(k.a[12:], e.a4[:])
		copy(k.b[12:], e.b4[:])
		return k
	}
	x := c.addrs.At(e.v6)
	k.a, k.b = x[0], x[1]
	return k
}

// keyIs says whether e's key is k.
func (c *Consolidator) keyIs(e *conn, k *connKey) bool {
	if e.pa != k.pa || e.pb != k.pb || e.proto != k.proto || e.fam != k.fam {
		return false
	}
	if e.v6 == 0 {
		// Both IPv4 (the families are equal): the first 12 bytes are
		// v4mapped.
		return e.a4 == [4]byte(k.a[12:]) && e.b4 == [4]byte(k.b[12:])
	}
	x := c.addrs.At(e.v6)
	return x[0] == k.a && x[1] == k.b
}

// Consolidator pairs, deduplicates, scales and aggregates flow records.
//
// The pending connections (see BenchmarkPendingMemory and
// TestPendingLayout) are slabs of connections, observations and extras,
// named by uint32 index, and an index from key to the newest connection
// of the key, rather than a map to pointers to structs holding slices:
// 48 + 64 bytes per one-direction IPv4 connection plus 8 bytes per slot
// of the index (at least a quarter of its slots are empty).
type Consolidator struct {
	cfg      Config
	z        float64
	pending  index // newest connection of each key (conns)
	npending int
	conns    slab.Slab[conn]
	obs      slab.Slab[obs]
	exts     slab.Slab[obsExt]
	syms     slab.Slab[symNode]
	addrs    slab.Slab[[2][16]byte]
	attrTab  slab.Slab[attrEntry]
	attrIx   map[attrs]uint32
	attrHot  *[256]uint32 // attrs interned lately (attrTab), by a hash
	apps     slab.Slab[appRec]
	strs     strTab
	probes   map[Origin]int32
	origins  []Origin
	opts     map[Origin]ipfix.DomainOptions
	await    map[string]bool
	held     map[Origin][]heldRec
	aggName  map[uint32]string
	now      int64   // latest record end seen
	arrival  int64   // wall clock of the current Add
	clock    []int64 // latest record end seen per probe
	swept    int64
	stats    Stats
	usage    map[UsageKey]*Usage
	asUsage  map[ASKey]*Usage
	bf       Biflow
	ivs      []intervalEst // the biflow being made: its estimate per flow interval
	out      []Biflow      // completed biflows, when no Sink is set
	done     []doneConn    // emitAll's scratch
	keep     bool
}

type heldRec struct {
	r    flow.Record
	when int64
}

// New returns a Consolidator.
func New(cfg *Config) *Consolidator {
	c := &Consolidator{
		cfg:     cfg.withDefaults(),
		pending: newIndex(),
		attrIx:  map[attrs]uint32{},
		attrHot: new([256]uint32),
		probes:  map[Origin]int32{},
		opts:    map[Origin]ipfix.DomainOptions{},
		await:   map[string]bool{},
		held:    map[Origin][]heldRec{},
		aggName: map[uint32]string{},
		usage:   map[UsageKey]*Usage{},
		asUsage: map[ASKey]*Usage{},
	}
	c.z = NormalQuantile(0.5 + c.cfg.Confidence/2)
	for _, p := range c.cfg.AwaitOptions {
		c.await[p] = true
	}
	c.keep = c.cfg.Sink == nil
	return c
}

// Z returns the normal quantile of the configured confidence level.
func (c *Consolidator) Z() float64 { return c.z }

// Stats returns the counters.
func (c *Consolidator) Stats() Stats {
	s := c.stats
	s.Pending = c.npending
	return s
}

// AggregateNames returns the aggregate names learnt from options records.
func (c *Consolidator) AggregateNames() map[uint32]string { return c.aggName }

// probe returns the index of an origin: observations are told apart by
// exporter and observation domain, so two probes behind one address
// (distinct domains) are deduplicated, not summed.
func (c *Consolidator) probe(o Origin) int32 {
	if i, ok := c.probes[o]; ok {
		return i
	}
	i := int32(len(c.origins))
	c.probes[o] = i
	c.origins = append(c.origins, o)
	c.clock = append(c.clock, 0)
	return i
}

// SetOptions records a domain's options (collector.OptionsConsumer
// passes them on) and releases the records held for them.
func (c *Consolidator) SetOptions(o Origin, opts ipfix.DomainOptions) {
	c.opts[o] = opts
	for id, n := range opts.Aggregates {
		c.aggName[id] = n
	}
	if !opts.HaveSampling {
		return
	}
	h := c.held[o]
	delete(c.held, o)
	for i := range h {
		r := h[i].r
		applyOptions(&r, opts)
		c.add(o, &r, false)
	}
}

func applyOptions(r *flow.Record, opts ipfix.DomainOptions) {
	if opts.Sampling.Interval <= 1 {
		return
	}
	if opts.Sampling.Flow {
		r.SamplingFlowInterval = opts.Sampling.Interval
	} else {
		r.SamplingPacketInterval = opts.Sampling.Interval
	}
}

// Add adds records of one origin. Records need not be in time order, but
// a record arriving more than Window after its connection was completed
// starts a new biflow.
func (c *Consolidator) Add(o Origin, recs []flow.Record) {
	c.arrival = c.cfg.Now().UnixNano()
	p := c.probe(o)
	for i := range recs {
		c.addRecord(o, p, &recs[i], false)
	}
	c.maybeSweep()
}

// AddRecord adds one record of o. samplingUnknown says its exporter is
// known to sample but its sampling is not known (the report over stored
// flows finds such records from the options the store kept): it is added
// unscaled, counted in Stats.Unscaled and its biflow marked
// (Biflow.SamplingUnknown), unless an override names its probe.
func (c *Consolidator) AddRecord(o Origin, r *flow.Record, samplingUnknown bool) {
	if !c.cfg.Batch || c.arrival == 0 {
		c.arrival = c.cfg.Now().UnixNano()
	}
	c.addRecord(o, c.probe(o), r, samplingUnknown)
	if !c.cfg.Batch {
		c.maybeSweep()
	}
}

func (c *Consolidator) addRecord(o Origin, p int32, r *flow.Record, unknown bool) {
	c.stats.Records++
	if ov, ok := c.cfg.Overrides[o.Probe]; ok {
		rr := *r
		rr.SamplingPacketInterval, rr.SamplingFlowInterval = ov.PacketInterval, ov.FlowInterval
		c.addProbe(p, &rr, false)
		return
	}
	if unknown {
		c.stats.Unscaled++
		c.addProbe(p, r, true)
		return
	}
	sampled := r.SamplingPacketInterval > 1 || r.SamplingFlowInterval > 1
	if !sampled && (c.await[o.Probe] || c.await["*"]) {
		if opts, ok := c.opts[o]; ok && opts.HaveSampling {
			rr := *r
			applyOptions(&rr, opts)
			c.addProbe(p, &rr, false)
			return
		}
		rr := *r
		rr.Symptoms = slices.Clone(r.Symptoms)
		c.held[o] = append(c.held[o], heldRec{rr, r.Last})
		c.stats.Held++
		c.advance(p, r.Last)
		return
	}
	c.addProbe(p, r, false)
}

func (c *Consolidator) advance(p int32, t int64) {
	if t > c.now {
		c.now = t
	}
	if t > c.clock[p] {
		c.clock[p] = t
	}
}

// watermark is the record time every probe has reached: the earliest of
// the probes' latest record ends. Probes report independently (one may
// be minutes behind another, or replay a file faster), so a connection
// is complete only when every probe has moved past it. A probe lagging
// more than 10 windows behind the most advanced one is taken as stalled
// and does not hold the others back.
func (c *Consolidator) watermark() int64 {
	wm := c.now
	stall := c.now - 10*int64(c.cfg.Window)
	for _, t := range c.clock {
		if t != 0 && t >= stall && t < wm {
			wm = t
		}
	}
	return wm
}

func (c *Consolidator) add(o Origin, r *flow.Record, unknown bool) {
	if c.arrival == 0 {
		c.arrival = c.cfg.Now().UnixNano()
	}
	c.addProbe(c.probe(o), r, unknown)
}

// span returns the start and end of connection e: its observations'
// earliest start and latest end.
func (c *Consolidator) span(e *conn) (first, last int64) {
	first, last = math.MaxInt64, math.MinInt64
	for d := range e.head {
		for i := e.head[d]; i != 0; {
			x := c.obs.At(i)
			first, last = min(first, x.first), max(last, x.last)
			i = x.next
		}
	}
	return first, last
}

// ended reports whether direction d of e is closed for a record of probe
// p starting at t: an observation of d ended by FIN or RST before t (for
// another probe's observation, more than Config.Skew before: two probes
// see the last packet at the same time, by clocks that may differ).
func (c *Consolidator) ended(e *conn, d int, p int32, t int64) bool {
	for i := e.head[d]; i != 0; {
		x := c.obs.At(i)
		if x.bits&obsEnded != 0 {
			end := c.endAt(x)
			if c.attr(x).probe == p {
				if t >= end {
					return true
				}
			} else if t > satAdd(end, int64(c.cfg.Skew)) {
				return true
			}
		}
		i = x.next
	}
	return false
}

// endAt returns the latest end of o's records ended by FIN or RST (o has
// some).
func (c *Consolidator) endAt(o *obs) int64 {
	if o.bits&obsEndApart != 0 {
		return c.exts.At(o.ext).endAt
	}
	return o.last
}

// keyPorts returns the ports a record of direction d of key k has unless
// it is an ICMP echo: the key's, in the record's order.
func keyPorts(k *connKey, d int) (sport, dport uint16) {
	if d == 1 && !isICMP(k.proto) {
		return k.pb, k.pa
	}
	return k.pa, k.pb
}

// ports returns the ports of o, an observation of direction d of
// connection e: its first record's.
func (c *Consolidator) ports(e *conn, d int, o *obs) (sport, dport uint16) {
	if o.bits&obsPortsApart != 0 {
		x := c.exts.At(o.ext)
		return x.sport, x.dport
	}
	if d == 1 && !isICMP(e.proto) {
		return e.pb, e.pa
	}
	return e.pa, e.pb
}

func (c *Consolidator) has(e *conn, d int, p int32) bool {
	for i := e.head[d]; i != 0; {
		x := c.obs.At(i)
		if c.attr(x).probe == p {
			return true
		}
		i = x.next
	}
	return false
}

// connection returns the pending connection of the key in slot (its
// newest connection is head) that a record of direction d from probe p
// belongs to (see the package documentation), or 0 when it starts a new
// one, and the key's newest connection then (0: none; then the key's
// slot was removed when it held one).
func (c *Consolidator) connection(slot int, head uint32, d int, p int32, r *flow.Record) (found, newest uint32) {
	w := int64(c.cfg.Window)
	var best, prev uint32
	var bestDist uint64
	for i, next := head, uint32(0); i != 0; i = next {
		e := c.conns.At(i)
		next = e.older
		first, last := c.span(e)
		if r.First > satAdd(last, w) {
			if c.cfg.Batch {
				// Records come in start order: no later record can
				// join e, so complete it now (bounds a key's list).
				if prev == 0 {
					head = next
					if next == 0 {
						c.pending.remove(slot)
					} else {
						c.pending.setConn(slot, next)
					}
				} else {
					c.conns.At(prev).older = next
				}
				c.emit(i)
				continue
			}
			prev = i
			continue
		}
		prev = i
		if r.Last < satAdd(first, -w) || c.ended(e, d, p, r.First) {
			continue
		}
		if c.has(e, d, p) {
			return i, head // continues this probe's observation
		}
		if dist := absDiff(first, r.First); best == 0 || dist < bestDist {
			best, bestDist = i, dist
		}
	}
	return best, head
}

// ext returns o's extras, making them when it has none.
func (c *Consolidator) ext(o *obs) *obsExt {
	if o.ext == 0 {
		o.ext = c.exts.Alloc()
	}
	return c.exts.At(o.ext)
}

func (c *Consolidator) addProbe(p int32, r *flow.Record, unknown bool) {
	k, fwd := keyOf(r)
	d := 0
	if !fwd {
		d = 1
	}
	c.pending.shrink() // no slot number held here
	h := c.pending.hash(&k)
	slot, head := c.find(&k, h)
	ei, newest := c.connection(slot, head, d, p, r)
	if ei == 0 {
		ei = c.conns.Alloc()
		x := c.conns.At(ei)
		c.setKey(x, &k)
		x.older = newest
		if head != 0 && newest == 0 {
			// connection completed every connection of k and removed
			// its slot: find where k goes now.
			slot, _ = c.find(&k, h)
		}
		c.pending.put(slot, h, ei)
		c.npending++
	}
	e := c.conns.At(ei)
	e.seen = c.arrival
	var ob, tail *obs
	for i := e.head[d]; i != 0; {
		x := c.obs.At(i)
		if c.attr(x).probe == p {
			ob = x
			break
		}
		tail = x
		i = x.next
	}
	var at attrs
	if ob != nil {
		at = *c.attr(ob)
	} else {
		at = attrs{probe: p, vlan: r.VLAN}
		oi := c.obs.Alloc()
		ob = c.obs.At(oi)
		*ob = obs{first: r.First, last: r.Last}
		if tail == nil {
			e.head[d] = oi
		} else {
			tail.next = oi
		}
		if sp, dp := keyPorts(&k, d); sp != r.Sport || dp != r.Dport {
			x := c.ext(ob)
			x.sport, x.dport = r.Sport, r.Dport
			ob.bits |= obsPortsApart
		}
	}
	split := ob.ext != 0 && len(c.exts.At(ob.ext).parts) > 0
	fi, pi := max(r.SamplingFlowInterval, 1), max(r.SamplingPacketInterval, 1)
	if ofi, opi := max(at.flowInterval, 1), max(at.pktInterval, 1); !split && ob.records > 0 && (fi != ofi || pi != opi) {
		// Until now every record stated the same intervals, at's.
		x := c.ext(ob)
		x.parts = append(x.parts, part{ofi, opi, ob.packets, ob.octets})
		split = true
	}
	if split {
		x := c.exts.At(ob.ext)
		x.parts = addPart(x.parts, fi, pi, r.Packets, r.Octets)
	}
	ended, end := ob.bits&obsEnded != 0, int64(0)
	if ended {
		end = c.endAt(ob)
	}
	ob.packets = SatAdd(ob.packets, r.Packets)
	ob.octets = SatAdd(ob.octets, r.Octets)
	ob.scanned = SatAdd(ob.scanned, r.ScannedOctets)
	ob.first = min(ob.first, r.First)
	ob.last = max(ob.last, r.Last)
	ob.flags |= r.TCPFlags
	na := at
	na.pktInterval = max(na.pktInterval, r.SamplingPacketInterval)
	na.flowInterval = max(na.flowInterval, r.SamplingFlowInterval)
	if na.aggregate == 0 {
		na.aggregate = r.Aggregate
	}
	if na.category == 0 {
		na.category = r.Category
	}
	if old := ob.attr; old == 0 || na != at {
		ob.attr = c.intern(na)
		if old != 0 {
			c.unref(old)
		}
	}
	if unknown {
		ob.bits |= obsUnknown
	}
	if r.EndReason == flow.EndDetected {
		if !ended || r.Last > end {
			end = r.Last
		}
		ended = true
		ob.bits |= obsEnded
	}
	if ended {
		if end == ob.last {
			ob.bits &^= obsEndApart
		} else {
			c.ext(ob).endAt = end
			ob.bits |= obsEndApart
		}
	}
	if !r.App.IsZero() {
		if e.app == 0 {
			e.app = c.apps.Alloc()
		}
		c.mergeAppRec(c.apps.At(e.app), &r.App)
	}
	ob.records++
	for _, s := range r.Symptoms {
		c.addSymptom(ob, s)
	}
	c.advance(p, r.Last)
}

// mergeApp adds what r says to a: each name the first record that had
// it gave (the client's request names the server, a DNS response repeats
// its query's name), the DNS response code from a response, and the FTP
// data ports of every record (both directions announce some).
func mergeApp(a, r *flow.App) {
	if a.HTTPHost == "" {
		a.HTTPHost = r.HTTPHost
	}
	if a.ServerName == "" {
		a.ServerName = r.ServerName
	}
	if a.ALPN == "" {
		a.ALPN = r.ALPN
	}
	if a.DNSName == "" {
		a.DNSName = r.DNSName
	}
	if r.DNSResponse && !a.DNSResponse {
		a.DNSResponse, a.DNSRcode = true, r.DNSRcode
	}
	if r.FTPData != "" && r.FTPData != a.FTPData {
		if a.FTPData == "" {
			a.FTPData = r.FTPData
		} else {
			r.FTPDataPorts(func(p uint16) { a.FTPData = flow.AddFTPData(a.FTPData, p) })
		}
	}
}

// satAdd adds b to a, saturating instead of wrapping: record times come
// from the network and are not trusted.
func satAdd(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

func absDiff(a, b int64) uint64 {
	if a < b {
		return uint64(b) - uint64(a)
	}
	return uint64(a) - uint64(b)
}

func addSymptom(list []flow.SymptomCount, s flow.SymptomCount) []flow.SymptomCount {
	for i := range list {
		if list[i].ID == s.ID {
			list[i].Count += s.Count
			return list
		}
	}
	return append(list, s)
}

// maybeSweep completes connections idle for a window, scanning the
// pending table at most once per quarter window of record time, and
// releases held records past their hold time.
func (c *Consolidator) maybeSweep() {
	if c.cfg.Batch {
		return
	}
	w := int64(c.cfg.Window)
	wm := c.watermark()
	if wm-c.swept < w/4 {
		return
	}
	c.swept = wm
	c.emitWhere(func(e *conn, last int64) bool { return satAdd(last, w) < wm && c.arrival-e.seen >= w })
	c.releaseHeld(wm - int64(c.cfg.Hold))
}

func (c *Consolidator) releaseHeld(before int64) {
	if len(c.held) == 0 {
		return
	}
	// In origin order, not the map's: the order records are added in
	// decides the order of a connection's observations (its biflow's
	// Origins) and of connections of one key.
	origins := slices.SortedFunc(maps.Keys(c.held), func(a, b Origin) int {
		switch {
		case originLess(a, b):
			return -1
		case originLess(b, a):
			return 1
		}
		return 0
	})
	for _, o := range origins {
		h := c.held[o]
		n := 0
		for i := range h {
			if h[i].when <= before {
				c.stats.Unscaled++
				c.add(o, &h[i].r, true)
				continue
			}
			h[n] = h[i]
			n++
		}
		if n == 0 {
			delete(c.held, o)
		} else {
			c.held[o] = h[:n]
		}
	}
}

// Flush completes every pending connection and releases held records
// (end of input, shutdown).
func (c *Consolidator) Flush() {
	c.releaseHeld(math.MaxInt64)
	all := make([]doneConn, 0, c.npending) // not kept: a flush takes them all
	for _, s := range c.pending.slots {
		rank := uint32(0)
		for i := uint32(s); i != 0; rank++ {
			e := c.conns.At(i)
			first, _ := c.span(e)
			all = append(all, doneConn{i, rank, first})
			i = e.older
		}
	}
	c.pending.clear()
	c.emitAll(all)
}

// doneConn is a completed connection waiting to be emitted: its index,
// its position in its key's list (0 the newest) and its start.
type doneConn struct {
	i     uint32
	rank  uint32
	first int64
}

// emitAll emits the completed connections in one order that depends
// only on them (not on where the index holds them: its hash is seeded
// per Consolidator): by start time, then key, then, among connections
// of one key that started together (one closed by FIN or RST and the
// next opened in the same millisecond), oldest first. So two runs over
// the same records emit the same biflows in the same order (a sink, a
// live forward, the rollups' biflows and a report's listing see them
// alike; the estimates' sums are exact in any order: package sum).
func (c *Consolidator) emitAll(all []doneConn) {
	if len(all) > 1 {
		slices.SortFunc(all, c.compareDone)
	}
	for i := range all {
		c.emit(all[i].i)
	}
}

func (c *Consolidator) compareDone(a, b doneConn) int {
	if r := cmp.Compare(a.first, b.first); r != 0 {
		return r
	}
	ea, eb := c.conns.At(a.i), c.conns.At(b.i)
	if ea.v6 == 0 && eb.v6 == 0 {
		// Both IPv4: compare the inline key without building it.
		if r := bytes.Compare(ea.a4[:], eb.a4[:]); r != 0 {
			return r
		}
		if r := bytes.Compare(ea.b4[:], eb.b4[:]); r != 0 {
			return r
		}
	} else {
		kx, ky := c.key(ea), c.key(eb)
		x, y := &kx, &ky
		if r := compareKeyAddr(x.a, y.a, x.fam&famA4 != 0, y.fam&famA4 != 0); r != 0 {
			return r
		}
		if r := compareKeyAddr(x.b, y.b, x.fam&famB4 != 0, y.fam&famB4 != 0); r != 0 {
			return r
		}
	}
	if r := cmp.Compare(ea.pa, eb.pa); r != 0 {
		return r
	}
	if r := cmp.Compare(ea.pb, eb.pb); r != 0 {
		return r
	}
	if r := cmp.Compare(ea.proto, eb.proto); r != 0 {
		return r
	}
	// One key: the key's list is newest first, so the older has the
	// larger rank.
	return cmp.Compare(b.rank, a.rank)
}

// Biflows returns (and forgets) the biflows completed so far when no Sink
// is configured.
func (c *Consolidator) Biflows() []Biflow {
	out := c.out
	c.out = nil
	return out
}

// pick applies the duplicate policy to one direction's observations: the
// one kept and how many were dropped.
func (c *Consolidator) pick(e *conn, d int) (*obs, int) {
	if e.head[d] == 0 {
		return nil, 0
	}
	best := c.obs.At(e.head[d])
	n := 0
	for i := best.next; i != 0; n++ {
		x := c.obs.At(i)
		if c.better(x, best) {
			best = x
		}
		i = x.next
	}
	return best, n
}

// addSymptom adds a symptom count to o's.
func (c *Consolidator) addSymptom(o *obs, s flow.SymptomCount) {
	var tail *symNode
	for i := o.sym; i != 0; {
		n := c.syms.At(i)
		if n.id == s.ID {
			n.count += s.Count
			return
		}
		tail = n
		i = n.next
	}
	i := c.syms.Alloc()
	*c.syms.At(i) = symNode{id: s.ID, count: s.Count}
	if tail == nil {
		o.sym = i
	} else {
		tail.next = i
	}
}

// addSymptomsTo adds o's symptom counts to b's.
func (c *Consolidator) addSymptomsTo(b *Biflow, o *obs) {
	for i := o.sym; i != 0; {
		n := c.syms.At(i)
		b.Symptoms = addSymptom(b.Symptoms, flow.SymptomCount{ID: n.id, Count: n.count})
		i = n.next
	}
}

// parts returns o's parts by flow and packet interval (nil when its
// records all stated the same).
func (c *Consolidator) parts(o *obs) []part {
	if o.ext == 0 {
		return nil
	}
	return c.exts.At(o.ext).parts
}

// emit completes connection ei, which the caller has taken out of the
// pending list, and releases it.
func (c *Consolidator) emit(ei uint32) {
	c.npending--
	e := c.conns.At(ei)
	kk := c.key(e)
	k := &kk
	f, mf := c.pick(e, 0)
	r, mr := c.pick(e, 1)
	init, resp := f, r
	di := 0
	if f == nil || (r != nil && !c.initiatorFirst(e, f, r)) {
		init, resp, di = r, f, 1
	}
	b := &c.bf
	*b = Biflow{Biflow: flow.Biflow{Key: flow.Key{Proto: k.proto, VLAN: c.attr(init).vlan}, First: init.first, Last: init.last},
		Merged: mf + mr, Symptoms: b.Symptoms[:0], Probes: b.Probes[:0], Origins: b.Origins[:0], Rates: b.Rates[:0]}
	// init is a->b when it is f.
	b.Sport, b.Dport = c.ports(e, di, init)
	if init == f {
		b.Src, b.Dst = k.A(), k.B()
	} else {
		b.Src, b.Dst = k.B(), k.A()
	}
	if c.cfg.KeepDuplicates {
		b.Merged = 0
	}
	if e.app != 0 {
		b.App = c.app(c.apps.At(e.app))
	}
	c.ivs = c.ivs[:0]
	c.setBoth(b, e, di, init, false)
	if resp != nil {
		c.setBoth(b, e, 1-di, resp, true)
	}
	b.finish(c.ivs)
	c.stats.Biflows++
	c.stats.Duplicates += uint64(b.Merged)
	if resp != nil {
		c.stats.Paired++
		if c.attr(init).probe != c.attr(resp).probe {
			c.stats.CrossProbe++
		}
	}
	c.account(b)
	if c.cfg.Sink != nil {
		c.cfg.Sink(b)
	} else {
		cp := *b
		cp.Symptoms = slices.Clone(b.Symptoms)
		cp.Probes = slices.Clone(b.Probes)
		cp.Origins = slices.Clone(b.Origins)
		cp.Rates = slices.Clone(b.Rates)
		c.out = append(c.out, cp)
	}
	c.release(ei)
}

// release forgets connection ei and what it holds, keeping the extras'
// slices for reuse.
func (c *Consolidator) release(ei uint32) {
	e := c.conns.At(ei)
	for d := range e.head {
		for i := e.head[d]; i != 0; {
			x := c.obs.At(i)
			if x.ext != 0 {
				xe := c.exts.At(x.ext)
				*xe = obsExt{parts: xe.parts[:0]}
				c.exts.Release(x.ext)
			}
			for j := x.sym; j != 0; {
				n := c.syms.At(j)
				next := n.next
				*n = symNode{}
				c.syms.Release(j)
				j = next
			}
			next := x.next
			c.unref(x.attr)
			*x = obs{}
			c.obs.Release(i)
			i = next
		}
	}
	if e.app != 0 {
		c.releaseApp(c.apps.At(e.app))
		c.apps.Release(e.app)
	}
	if e.v6 != 0 {
		c.addrs.Release(e.v6)
	}
	*e = conn{}
	c.conns.Release(ei)
}

// setBoth adds direction d's kept observation to b, and with
// KeepDuplicates the other probes' observations of d too.
func (c *Consolidator) setBoth(b *Biflow, e *conn, d int, kept *obs, reverse bool) {
	b.setDirection(kept, c.attr(kept), c.parts(kept), reverse, c.origins, &c.ivs)
	c.addSymptomsTo(b, kept)
	if !c.cfg.KeepDuplicates {
		return
	}
	for i := e.head[d]; i != 0; {
		x := c.obs.At(i)
		if x != kept {
			b.setDirection(x, c.attr(x), c.parts(x), reverse, c.origins, &c.ivs)
			c.addSymptomsTo(b, x)
		}
		i = x.next
	}
}

// initiatorFirst says whether observation x (a->b) rather than y (b->a)
// opened connection e: a bare SYN, an ICMP echo request, an earlier
// start, and finally the side that sent to the lower port.
func (c *Consolidator) initiatorFirst(e *conn, x, y *obs) bool {
	proto := e.proto
	xsp, xdp := c.ports(e, 0, x)
	_, ydp := c.ports(e, 1, y)
	if isICMP(proto) {
		ex, rx := icmpEcho(proto, xdp)
		ey, ry := icmpEcho(proto, ydp)
		if ex && ey && rx != ry {
			return rx
		}
	}
	if proto == 6 {
		// A bare SYN (no ACK in the whole flow) opens; else a SYN on one
		// side only (the flags are the union over the flow, so client
		// and server of a normal connection both show SYN and ACK).
		bareX := x.flags&0x12 == 0x02
		bareY := y.flags&0x12 == 0x02
		if bareX != bareY {
			return bareX
		}
		synX, synY := x.flags&0x02 != 0, y.flags&0x02 != 0
		if synX != synY {
			return synX
		}
	}
	if x.first != y.first {
		return x.first < y.first
	}
	return xdp <= xsp
}

// CompleteBefore completes, in Batch mode, the pending connections that
// no record starting at or after t can continue (their last record
// ended more than a Window before t). A caller that feeds records in
// start order and knows that every later record starts at or after t
// (collector/report's rollups) bounds the pending table this way; the
// biflows are the same as when a later record of their key, or Flush,
// completes them.
func (c *Consolidator) CompleteBefore(t int64) {
	w := int64(c.cfg.Window)
	c.emitWhere(func(_ *conn, last int64) bool { return satAdd(last, w) < t })
}

// emitWhere emits (and forgets) every pending connection that done
// says is complete (given the connection and its end), in emitAll's
// order.
func (c *Consolidator) emitWhere(done func(e *conn, last int64) bool) {
	all := c.done[:0]
	slots := c.pending.slots
	for si := 0; si < len(slots); {
		s := slots[si]
		if s == 0 {
			si++
			continue
		}
		head := uint32(s)
		var prev, rank uint32
		for i := head; i != 0; rank++ {
			e := c.conns.At(i)
			next := e.older
			if first, last := c.span(e); done(e, last) {
				if prev == 0 {
					head = next
				} else {
					c.conns.At(prev).older = next
				}
				all = append(all, doneConn{i, rank, first})
			} else {
				prev = i
			}
			i = next
		}
		if head == 0 {
			// Look at slot si again: a later key may have moved into
			// it (one from the table's start, already looked at, is
			// looked at again: it was not done and still is not).
			c.pending.remove(si)
			continue
		}
		if head != uint32(s) {
			c.pending.setConn(si, head)
		}
		si++
	}
	c.pending.shrink()
	c.emitAll(all)
	c.done = all[:0] // scratch for the next sweep
}

// Pending calls fn with the two endpoint addresses and the start of
// every pending connection.
func (c *Consolidator) Pending(fn func(a, b netip.Addr, first int64)) {
	for _, s := range c.pending.slots {
		if s == 0 {
			continue
		}
		k := c.key(c.conns.At(uint32(s)))
		a, b := k.A(), k.B()
		for i := uint32(s); i != 0; {
			e := c.conns.At(i)
			first, _ := c.span(e)
			fn(a, b, first)
			i = e.older
		}
	}
}

// Clone returns an independent copy of c's pending state (connections,
// held records, probes, options, counters) that completes its biflows
// into sink; its usage tables start empty. Adding to or flushing either
// leaves the other as it was: collector/report's rollups flush a clone
// to show the connections still pending.
func (c *Consolidator) Clone(sink func(*Biflow)) *Consolidator {
	n := &Consolidator{cfg: c.cfg, z: c.z, npending: c.npending,
		pending: c.pending.clone(), conns: c.conns.Clone(nil), obs: c.obs.Clone(nil),
		exts: c.exts.Clone(func(x *obsExt) { x.parts = slices.Clone(x.parts) }),
		syms: c.syms.Clone(nil), addrs: c.addrs.Clone(nil),
		attrTab: c.attrTab.Clone(nil), attrIx: maps.Clone(c.attrIx), attrHot: new([256]uint32),
		apps: c.apps.Clone(nil), strs: c.strs.clone(),
		probes: maps.Clone(c.probes), origins: slices.Clone(c.origins),
		opts: maps.Clone(c.opts), await: maps.Clone(c.await),
		held:    make(map[Origin][]heldRec, len(c.held)),
		aggName: maps.Clone(c.aggName), now: c.now, arrival: c.arrival,
		clock: slices.Clone(c.clock), swept: c.swept, stats: c.stats,
		usage: map[UsageKey]*Usage{}, asUsage: map[ASKey]*Usage{}}
	n.cfg.Sink = sink
	n.keep = sink == nil
	for o, h := range c.held {
		l := make([]heldRec, len(h))
		for i := range h {
			l[i] = h[i]
			l[i].r.Symptoms = slices.Clone(h[i].r.Symptoms)
		}
		n.held[o] = l
	}
	return n
}
