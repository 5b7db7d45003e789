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
type obs struct {
	packets, octets uint64
	first, last     int64
	endAt           int64 // the latest end of a record ended by FIN or RST
	symptoms        []flow.SymptomCount
	probe           int32
	pktInterval     uint32
	flowInterval    uint32
	aggregate       uint32
	records         uint32
	category        uint16
	sport, dport    uint16 // as in the record (ICMP type/code kept)
	vlan            uint16 // of the first record
	flags           uint8
	unknown         bool
	ended           bool // a record ended by FIN or RST was added (endAt)
	// parts splits packets and octets by the flow interval their records
	// stated, once two records stated different ones (a self-regulating
	// probe ends every flow when its rate changes, so a connection that
	// spans a change has records of each rate); nil while all agree.
	parts *[]part
}

// part is what the records of one flow interval of an observation sum.
type part struct {
	flowInterval    uint32
	packets, octets uint64
}

// addPart adds a record's counts to the part of its flow interval.
func addPart(ps *[]part, fi uint32, packets, octets uint64) {
	for i := range *ps {
		if p := &(*ps)[i]; p.flowInterval == fi {
			p.packets = SatAdd(p.packets, packets)
			p.octets = SatAdd(p.octets, octets)
			return
		}
	}
	*ps = append(*ps, part{fi, packets, octets})
}

func (o *obs) prob() float64 {
	p := 1.0
	if o.pktInterval > 1 {
		p /= float64(o.pktInterval)
	}
	if o.flowInterval > 1 {
		p /= float64(o.flowInterval)
	}
	return p
}

// better says whether a is kept rather than b (duplicate policy).
func better(a, b *obs, origins []Origin) bool {
	if pa, pb := a.prob(), b.prob(); pa != pb {
		return pa > pb
	}
	if a.packets != b.packets {
		return a.packets > b.packets
	}
	return originLess(origins[a.probe], origins[b.probe])
}

func originLess(a, b Origin) bool {
	if a.Probe != b.Probe {
		return a.Probe < b.Probe
	}
	return a.Domain < b.Domain
}

// entry is one pending connection. Most directions are seen by one
// probe: the first observation of each direction is kept inline, further
// probes' (duplicates) in more, allocated only when a second probe sees
// a direction (a pointer rather than two slice headers saves 40 bytes
// per pending connection: see BenchmarkPendingMemory). The connections of one key pending at
// once (port reuse) are listed newest first through older.
type entry struct {
	first, last int64
	seen        int64    // wall clock of the latest record
	n           [2]uint8 // observations per direction ([0]: a->b, [1]: b->a)
	one         [2]obs
	more        *[2][]obs
	older       *entry
	// app is the application metadata of the connection's records,
	// merged (mergeApp); allocated only when a record carries some.
	app *flow.App
}

func (e *entry) at(d, i int) *obs {
	if i == 0 {
		return &e.one[d]
	}
	return &e.more[d][i-1]
}

// Consolidator pairs, deduplicates, scales and aggregates flow records.
type Consolidator struct {
	cfg      Config
	z        float64
	pending  map[connKey]*entry // newest connection of each key
	npending int
	free     []*entry
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
		pending: map[connKey]*entry{},
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

// ended reports whether direction d of e is closed for a record of probe
// p starting at t: an observation of d ended by FIN or RST before t (for
// another probe's observation, strictly before: two probes see the last
// packet at the same time).
func (e *entry) ended(d int, p int32, t int64) bool {
	for i := 0; i < int(e.n[d]); i++ {
		x := e.at(d, i)
		if x.ended && (t > x.endAt || (t == x.endAt && x.probe == p)) {
			return true
		}
	}
	return false
}

func (e *entry) has(d int, p int32) bool {
	for i := 0; i < int(e.n[d]); i++ {
		if e.at(d, i).probe == p {
			return true
		}
	}
	return false
}

// connection returns the pending connection of key k that a record of
// direction d from probe p belongs to (see the package documentation),
// or nil when it starts a new one.
func (c *Consolidator) connection(k connKey, d int, p int32, r *flow.Record) *entry {
	w := int64(c.cfg.Window)
	var best, prev *entry
	var bestDist uint64
	for e, next := c.pending[k], (*entry)(nil); e != nil; e = next {
		next = e.older
		if r.First > satAdd(e.last, w) {
			if c.cfg.Batch {
				// Records come in start order: no later record can
				// join e, so complete it now (bounds a key's list).
				if prev == nil {
					if next == nil {
						delete(c.pending, k)
					} else {
						c.pending[k] = next
					}
				} else {
					prev.older = next
				}
				c.emit(k, e)
				continue
			}
			prev = e
			continue
		}
		prev = e
		if r.Last < satAdd(e.first, -w) || e.ended(d, p, r.First) {
			continue
		}
		if e.has(d, p) {
			return e // continues this probe's observation
		}
		if dist := absDiff(e.first, r.First); best == nil || dist < bestDist {
			best, bestDist = e, dist
		}
	}
	return best
}

func (c *Consolidator) addProbe(p int32, r *flow.Record, unknown bool) {
	k, fwd := keyOf(r)
	d := 0
	if !fwd {
		d = 1
	}
	e := c.connection(k, d, p, r)
	if e == nil {
		if n := len(c.free); n > 0 {
			e = c.free[n-1]
			c.free = c.free[:n-1]
		} else {
			e = &entry{}
		}
		e.first, e.last = r.First, r.Last
		e.older = c.pending[k]
		c.pending[k] = e
		c.npending++
	}
	e.first = min(e.first, r.First)
	e.last = max(e.last, r.Last)
	e.seen = c.arrival
	var ob *obs
	for i := 0; i < int(e.n[d]); i++ {
		if x := e.at(d, i); x.probe == p {
			ob = x
			break
		}
	}
	if ob == nil {
		nb := obs{probe: p, first: r.First, last: r.Last, sport: r.Sport, dport: r.Dport, vlan: r.VLAN}
		if e.n[d] == 0 {
			e.one[d] = nb
		} else {
			if e.more == nil {
				e.more = new([2][]obs)
			}
			e.more[d] = append(e.more[d], nb)
		}
		e.n[d]++
		ob = e.at(d, int(e.n[d])-1)
	}
	if fi, ofi := max(r.SamplingFlowInterval, 1), max(ob.flowInterval, 1); ob.parts == nil && ob.records > 0 && fi != ofi {
		ob.parts = &[]part{{ofi, ob.packets, ob.octets}}
	}
	if ob.parts != nil {
		addPart(ob.parts, max(r.SamplingFlowInterval, 1), r.Packets, r.Octets)
	}
	ob.packets = SatAdd(ob.packets, r.Packets)
	ob.octets = SatAdd(ob.octets, r.Octets)
	ob.first = min(ob.first, r.First)
	ob.last = max(ob.last, r.Last)
	ob.flags |= r.TCPFlags
	ob.pktInterval = max(ob.pktInterval, r.SamplingPacketInterval)
	ob.flowInterval = max(ob.flowInterval, r.SamplingFlowInterval)
	ob.unknown = ob.unknown || unknown
	if r.EndReason == flow.EndDetected {
		if !ob.ended || r.Last > ob.endAt {
			ob.endAt = r.Last
		}
		ob.ended = true
	}
	if ob.aggregate == 0 {
		ob.aggregate = r.Aggregate
	}
	if ob.category == 0 {
		ob.category = r.Category
	}
	if !r.App.IsZero() {
		if e.app == nil {
			e.app = new(flow.App)
		}
		mergeApp(e.app, &r.App)
	}
	ob.records++
	for _, s := range r.Symptoms {
		ob.symptoms = addSymptom(ob.symptoms, s)
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
	c.emitWhere(func(e *entry) bool { return satAdd(e.last, w) < wm && c.arrival-e.seen >= w })
	c.releaseHeld(wm - int64(c.cfg.Hold))
}

func (c *Consolidator) releaseHeld(before int64) {
	for o, h := range c.held {
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
	type kv struct {
		k connKey
		e *entry
	}
	all := make([]kv, 0, c.npending)
	for k, head := range c.pending {
		for e := head; e != nil; e = e.older {
			all = append(all, kv{k, e})
		}
	}
	clear(c.pending)
	// Deterministic output order: by start time, then key.
	slices.SortFunc(all, func(a, b kv) int {
		if r := cmp.Compare(a.e.first, b.e.first); r != 0 {
			return r
		}
		x, y := a.k, b.k
		if r := compareKeyAddr(x.a, y.a, x.fam&famA4 != 0, y.fam&famA4 != 0); r != 0 {
			return r
		}
		if r := compareKeyAddr(x.b, y.b, x.fam&famB4 != 0, y.fam&famB4 != 0); r != 0 {
			return r
		}
		if r := cmp.Compare(x.pa, y.pa); r != 0 {
			return r
		}
		if r := cmp.Compare(x.pb, y.pb); r != 0 {
			return r
		}
		return cmp.Compare(x.proto, y.proto)
	})
	for _, x := range all {
		c.emit(x.k, x.e)
	}
}

// Biflows returns (and forgets) the biflows completed so far when no Sink
// is configured.
func (c *Consolidator) Biflows() []Biflow {
	out := c.out
	c.out = nil
	return out
}

// pick applies the duplicate policy to one direction's observations.
func (c *Consolidator) pick(e *entry, d int) (*obs, int) {
	n := int(e.n[d])
	if n == 0 {
		return nil, 0
	}
	best := e.at(d, 0)
	for i := 1; i < n; i++ {
		if x := e.at(d, i); better(x, best, c.origins) {
			best = x
		}
	}
	return best, n - 1
}

// emit completes connection e of key k, which the caller has taken out
// of the pending list, and recycles e.
func (c *Consolidator) emit(k connKey, e *entry) {
	c.npending--
	f, mf := c.pick(e, 0)
	r, mr := c.pick(e, 1)
	init, resp := f, r
	di := 0
	if f == nil || (r != nil && !initiatorFirst(f, r, k.proto)) {
		init, resp, di = r, f, 1
	}
	b := &c.bf
	*b = Biflow{Biflow: flow.Biflow{Key: flow.Key{Proto: k.proto, VLAN: init.vlan}, First: init.first, Last: init.last},
		Merged: mf + mr, Symptoms: b.Symptoms[:0], Probes: b.Probes[:0], Origins: b.Origins[:0]}
	// init is a->b when it is f.
	if init == f {
		b.Src, b.Dst, b.Sport, b.Dport = k.A(), k.B(), init.sport, init.dport
	} else {
		b.Src, b.Dst, b.Sport, b.Dport = k.B(), k.A(), init.sport, init.dport
	}
	if c.cfg.KeepDuplicates {
		b.Merged = 0
	}
	if e.app != nil {
		b.App = *e.app
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
		if init.probe != resp.probe {
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
		c.out = append(c.out, cp)
	}
	more := e.more
	if more != nil {
		more[0], more[1] = more[0][:0], more[1][:0]
	}
	*e = entry{more: more}
	c.free = append(c.free, e)
}

// setBoth adds direction d's kept observation to b, and with
// KeepDuplicates the other probes' observations of d too.
func (c *Consolidator) setBoth(b *Biflow, e *entry, d int, kept *obs, reverse bool) {
	b.setDirection(kept, reverse, c.origins, &c.ivs)
	if !c.cfg.KeepDuplicates {
		return
	}
	for i := 0; i < int(e.n[d]); i++ {
		if x := e.at(d, i); x != kept {
			b.setDirection(x, reverse, c.origins, &c.ivs)
		}
	}
}

// initiatorFirst says whether observation x (a->b) rather than y opened
// the connection: a bare SYN, an ICMP echo request, an earlier start, and
// finally the side that sent to the lower port.
func initiatorFirst(x, y *obs, proto uint8) bool {
	if isICMP(proto) {
		ex, rx := icmpEcho(proto, x.dport)
		ey, ry := icmpEcho(proto, y.dport)
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
	return x.dport <= x.sport
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
	c.emitWhere(func(e *entry) bool { return satAdd(e.last, w) < t })
}

// emitWhere emits (and forgets) every pending connection that done
// says is complete.
func (c *Consolidator) emitWhere(done func(*entry) bool) {
	for k, head := range c.pending {
		var prev *entry
		for e := head; e != nil; {
			next := e.older
			if done(e) {
				if prev == nil {
					head = next
				} else {
					prev.older = next
				}
				c.emit(k, e)
			} else {
				prev = e
			}
			e = next
		}
		if head == nil {
			delete(c.pending, k)
		} else {
			c.pending[k] = head
		}
	}
}

// Pending calls fn with the two endpoint addresses and the start of
// every pending connection.
func (c *Consolidator) Pending(fn func(a, b netip.Addr, first int64)) {
	for k, head := range c.pending {
		a, b := k.A(), k.B()
		for e := head; e != nil; e = e.older {
			fn(a, b, e.first)
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
		pending: make(map[connKey]*entry, len(c.pending)),
		probes:  maps.Clone(c.probes), origins: slices.Clone(c.origins),
		opts: maps.Clone(c.opts), await: maps.Clone(c.await),
		held:    make(map[Origin][]heldRec, len(c.held)),
		aggName: maps.Clone(c.aggName), now: c.now, arrival: c.arrival,
		clock: slices.Clone(c.clock), swept: c.swept, stats: c.stats,
		usage: map[UsageKey]*Usage{}, asUsage: map[ASKey]*Usage{}}
	n.cfg.Sink = sink
	n.keep = sink == nil
	cloneObs := func(o obs) obs {
		o.symptoms = slices.Clone(o.symptoms)
		return o
	}
	for k, head := range c.pending {
		var first, prev *entry
		for e := head; e != nil; e = e.older {
			x := &entry{first: e.first, last: e.last, seen: e.seen, n: e.n}
			for d := 0; d < 2; d++ {
				x.one[d] = cloneObs(e.one[d])
			}
			if e.more != nil {
				x.more = new([2][]obs)
				for d := 0; d < 2; d++ {
					for _, o := range e.more[d] {
						x.more[d] = append(x.more[d], cloneObs(o))
					}
				}
			}
			if prev == nil {
				first = x
			} else {
				prev.older = x
			}
			prev = x
		}
		n.pending[k] = first
	}
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
