package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"math"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/slab"
	"github.com/mira-project/mira/internal/sum"
)

// Fingerprint identifies a rules file or an AS table by its content, so
// that a report can tell whether rollups were made with the same one,
// and by a consolidation that gives the same results (ConsolidationEpoch).
func Fingerprint(data []byte) string {
	h := sha256.New()
	h.Write([]byte(ConsolidationEpoch))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// ConsolidationEpoch names what the consolidation makes of the same
// records; a build whose consolidation gives other biflows or estimates
// changes it, so that rollups an older build kept (their fingerprints
// made in another epoch) are not taken for the report over the records:
// mira-collector rebuilds them at start, a report answers from the
// records until then. 2026-12-08: each record scaled by its own packet
// interval, sampled duplicates not kept by the larger count, another
// probe's record within Config.Skew of a FIN the same connection.
const ConsolidationEpoch = "consolidation 2026-12-08\n"

// DefaultRulesFingerprint is the fingerprint of the embedded rules.
func DefaultRulesFingerprint() string { return Fingerprint(classify.DefaultYAML()) }

// LoadRollupConfig returns the Roller configuration of a collector with
// these rules and AS table files ("": the embedded rules, no AS table)
// and what FromRollups checks the rollups against.
func LoadRollupConfig(rulesFile, asFile string) (RollupConfig, RollupSource, error) {
	cfg := RollupConfig{Rules: classify.Default(), RulesID: DefaultRulesFingerprint()}
	if rulesFile != "" {
		data, err := os.ReadFile(rulesFile)
		if err != nil {
			return cfg, RollupSource{}, err
		}
		if cfg.Rules, err = classify.Parse(rulesFile, data); err != nil {
			return cfg, RollupSource{}, err
		}
		cfg.RulesID = Fingerprint(data)
	}
	if asFile != "" {
		data, err := os.ReadFile(asFile)
		if err != nil {
			return cfg, RollupSource{}, err
		}
		if cfg.AS, err = consolidate.ParseASBytes(data, asFile); err != nil {
			return cfg, RollupSource{}, err
		}
		cfg.ASID = Fingerprint(data)
	}
	return cfg, RollupSource{RulesID: cfg.RulesID, ASID: cfg.ASID}, nil
}

// RollupConfig configures a Roller.
type RollupConfig struct {
	// Window is the pairing window (0: DefaultWindow).
	Window time.Duration
	// Rules classify the biflows (nil: the probes' categories); RulesID
	// is their Fingerprint.
	Rules   *classify.Rules
	RulesID string
	// AS, when set, fills the cells' AS numbers; ASID is its Fingerprint.
	AS   *consolidate.ASTable
	ASID string
	// Lag keeps the horizon this far behind the record time every
	// active origin has reached, less the longest flow duration seen
	// (records arrive at the end of their flow): the slack for export
	// delays. 0 means one minute.
	Lag time.Duration
	// Hold delays the horizon by this much wall-clock time: the horizon
	// used is the one computed Hold ago. Records do not always arrive
	// in end order: a probe replaying a capture file exports the flows
	// still open at its end, however old, when the file ends. 0 means
	// none (NewRoller's callers in the collector set it).
	Hold time.Duration
	// Now is the wall clock (nil: time.Now).
	Now func() time.Time
	// Idle moves the horizon with the wall clock while no record
	// arrives: d after the last records were given (Advance), the
	// origins' clocks are taken as d further on. A probe's record time
	// moves at least as fast as the wall clock (live capture, a replay
	// paced at --speed 1 or more; an unpaced replay runs ahead of it),
	// so a record it exports later still ends after its origin's clock
	// less the lag; without it the horizon of a burst of old records (a
	// capture replayed into a running collector) stayed behind them
	// until more records came. AdvanceIdle advances such a horizon.
	Idle bool
	// Scan: records come from a store scan in end-time order (Rebuild),
	// so the horizon follows the scan exactly.
	Scan bool
	// MaxDuration is the longest flow duration in the store (Scan).
	MaxDuration int64
	// LongFlow bounds the flow duration the horizon waits for (0: 15
	// minutes, about a probe's longest active timeout): the records
	// held are those that started within it (plus Lag and Hold) of the
	// newest, so one record of a day-long flow does not make the Roller
	// hold a day of records. Longer records that arrive after the
	// horizon passed their start are late.
	LongFlow time.Duration
}

// A Roller maintains rollups (store.RollupCell) from flow records as
// they are stored: the records go through the consolidation path of
// Build (named by their origin, scaled by the announced sampling,
// paired and deduplicated in start order by a consolidate.Consolidator
// in Batch mode, then named and classified), and every completed biflow
// is added to the cell of its start's minute and hour.
//
// # Exactness
//
// Build feeds all records in start order. A Roller holds the records it
// is given in a buffer ordered by start and feeds those that started
// before its horizon: the record end time every active origin has
// reached (with RollupConfig.Idle, moved on by the wall clock while no
// record arrives), less the longest flow duration seen and RollupConfig.Lag
// (records are exported when their flow ends, so a record that started
// earlier has arrived). A connection is complete once no record after
// the horizon can continue it (consolidate.Consolidator.CompleteBefore),
// and, with rules that use the pair context, is classified once every
// biflow between the same hosts that could be in its context is
// complete. So the rollups hold, for every biflow that started before
// RollupMeta.CompleteBefore, exactly what a report over all the stored
// records gives (with the same window, rules and AS table, no filters),
// bit for bit: the estimates are added exactly (sum.Exact), so cells
// summed per minute, per delta written and across them give what the
// report's biflows added one by one give. Records that
// arrive after the horizon passed their start (a probe later than the
// lag, one whose records were spooled for long, or a collector restart
// in the middle of a connection) are still added but counted as late
// (RollupMeta.Late): their connections may be split where Build would
// pair them. Names and sampling announcements are those the store held
// when the record was fed; one that arrives later and changes what an
// earlier record means is not applied to the rollups.
type Roller struct {
	cfg  RollupConfig
	opts Options
	// bopts are opts for makeBiflow: no rules (classified here), no App
	// or Probes (the cells use neither).
	bopts Options
	c     *consolidate.Consolidator
	nm    *namer
	smp   *samplingIndex

	buf   recHeap
	seq   uint64
	clock map[store.Origin]*int64
	// lastO and lastClock cache the clock of the origin note saw last
	// (records come in runs of one origin: a map lookup, hashing the
	// exporter's name, per record was a tenth of AddEncoded).
	lastO     store.Origin
	lastClock *int64
	maxLast   int64
	maxDur    int64
	fed       int64 // every record that started before it was fed
	maxFed    int64 // latest start fed

	pair bool
	wait waitList // complete, waiting for their pair context
	one  Biflow   // complete's biflow without pair context
	// freeLists are symptom lists to reuse (recycle); copied: a Pending
	// copy, which reuses none.
	freeLists [][]classify.NamedCount
	copied    bool
	ix        *classify.Index
	cells     map[time.Duration]map[store.RollupKey]*store.RollupCell
	// recCells caches, by resolution, the records cell feed added to
	// last (consecutive records mostly start in the same minute).
	recCells []recCell
	// accCells caches, by resolution, the cell account added to last.
	accCells []accCell
	// syms and symCell are account's scratch.
	syms    []store.RollupSymptom
	symCell store.RollupCell
	named   flow.Record
	// lateRec is AddEncoded's decoded late record.
	lateRec flow.Record

	// past are horizons computed in the last Hold, oldest first.
	past []pastHorizon
	// notes counts the records given (note); arrived is the wall clock
	// of the Advance that first saw notes at its value (Idle).
	notes, notesSeen uint64
	arrived          int64

	records, late uint64
	flushed       bool
	prunedBefore  map[string]int64
}

type recCell struct {
	bucket int64
	c      *store.RollupCell
}

type accCell struct {
	key store.RollupKey
	c   *store.RollupCell
}

type pastHorizon struct {
	at int64 // wall clock
	t  int64
}

// heldRecord is a record waiting for the horizon, in the store's
// encoding (a quarter of a flow.Record's size; the slot's buffer is
// reused).
type heldRecord struct {
	o   store.Origin
	enc []byte
}

// recHeap orders the held records by start, then arrival: small
// entries in a bucket queue, the records in a slab whose slots are
// reused. The entries are kept in buckets of 134 ms of start
// time (bucketShift), unsorted; a bucket is sorted once, when the
// earliest entry is asked of it. Entries must be pushed in arrival
// (seq) order, as the Roller does. A binary heap over all entries cost a
// cache miss per level at every pop once hundreds of thousands were
// held (a Roller holds every record of the last minute and more): the
// largest cost of the rollups. The order is the binary heap's: (start,
// arrival).
type recHeap struct {
	cur    []heapEntry // the earliest bucket, sorted; cur[at:] are held
	at     int
	curKey int64
	// buckets holds the other entries by bucket key (start >>
	// bucketShift); keys is a min-heap of the keys in buckets; recent
	// caches buckets by key (a map lookup per push was half its cost).
	buckets map[int64]*bucket
	keys    []int64
	recent  [64]*bucket
	spare   [][]heapEntry // emptied entry arrays, for reuse
	tmp     []heapEntry   // sortBucket's scratch
	n       int

	slab slab.Slab[heldRecord]
	dec  flow.Record // the record take decoded
}

type bucket struct {
	key int64
	e   []heapEntry
}

// bucketShift makes a bucket 2^27 ns (134 ms) of start time: a bucket
// of a busy second's records still fits a core's cache while it is
// sorted.
const bucketShift = 27

type heapEntry struct {
	first int64
	seq   uint64
	slot  uint32
}

func (h *recHeap) Len() int { return h.n }

// less orders entries by start, then arrival (seq is unique, so the
// order is total).
func (a heapEntry) less(b heapEntry) bool {
	if a.first != b.first {
		return a.first < b.first
	}
	return a.seq < b.seq
}

func cmpEntry(a, b heapEntry) int {
	if a.less(b) {
		return -1
	}
	if b.less(a) {
		return 1
	}
	return 0
}

// push holds e.
func (h *recHeap) push(e heapEntry) {
	h.n++
	k := e.first >> bucketShift
	if h.at < len(h.cur) && k <= h.curKey {
		// At or before the bucket being taken: into its sorted rest
		// (only records that arrive after their start's turn do this).
		i, _ := slices.BinarySearchFunc(h.cur[h.at:], e, cmpEntry)
		h.cur = slices.Insert(h.cur, h.at+i, e)
		return
	}
	c := &h.recent[k&63]
	b := *c
	if b == nil || b.key != k {
		if b = h.buckets[k]; b == nil {
			b = &bucket{key: k}
			if n := len(h.spare); n > 0 {
				b.e, h.spare = h.spare[n-1][:0], h.spare[:n-1]
			}
			if h.buckets == nil {
				h.buckets = map[int64]*bucket{}
			}
			h.buckets[k] = b
			h.pushKey(k)
		}
		*c = b
	}
	b.e = append(b.e, e)
}

// fill makes cur hold the earliest entries; false when none are held.
func (h *recHeap) fill() bool {
	if h.at < len(h.cur) {
		return true
	}
	if len(h.keys) == 0 {
		return false
	}
	if h.cur != nil && h.keepArray(cap(h.cur)) {
		h.spare = append(h.spare, h.cur[:0])
	}
	k := h.popKey()
	b := h.buckets[k]
	delete(h.buckets, k)
	if c := &h.recent[k&63]; *c == b {
		*c = nil
	}
	h.cur, h.at, h.curKey = h.sortBucket(b.e), 0, k
	return true
}

// keepArray says whether an emptied entry array of room c is worth
// reusing: not when it has four times the room of the held buckets'
// average (a burst's arrays are given back as it drains), nor beyond
// as many spare arrays as buckets held.
func (h *recHeap) keepArray(c int) bool {
	avg := h.n/(len(h.keys)+1) + 1
	return c <= 4*avg+256 && len(h.spare) <= len(h.keys)
}

// sortBucket orders a bucket's entries by start, keeping the arrival
// order of equal starts: entries are appended in arrival order, so a
// stable sort by start is the (start, arrival) order. It is a
// least-significant-digit radix sort on the start less the bucket's
// earliest (under 2^bucketShift: at most four byte passes, fewer when
// the starts share digits), which reads and writes each entry once per
// pass where a comparison sort costs about log2(n) comparisons. It
// returns the sorted slice: b or h's scratch, the other becoming the
// scratch.
func (h *recHeap) sortBucket(b []heapEntry) []heapEntry {
	if len(b) < 2 {
		return b
	}
	lo, hi := b[0].first, b[0].first
	for _, e := range b[1:] {
		lo, hi = min(lo, e.first), max(hi, e.first)
	}
	if cap(h.tmp) < len(b) || cap(h.tmp) > 4*len(b)+4096 {
		h.tmp = make([]heapEntry, len(b))
	}
	src, dst := b, h.tmp[:len(b)]
	span := uint64(hi - lo)
	for shift := 0; shift < 64 && span>>shift != 0; shift += 8 {
		var count [256]int
		for i := range src {
			count[byte(uint64(src[i].first-lo)>>shift)]++
		}
		if count[byte(uint64(src[0].first-lo)>>shift)] == len(src) {
			continue // every start has this digit: nothing moves
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, e := range src {
			d := byte(uint64(e.first-lo) >> shift)
			dst[count[d]] = e
			count[d]++
		}
		src, dst = dst, src
	}
	h.tmp = dst[:0]
	return src
}

// pop removes and returns the earliest entry; h must not be empty.
func (h *recHeap) pop() heapEntry {
	h.fill()
	e := h.cur[h.at]
	h.at++
	h.n--
	return e
}

func (h *recHeap) pushKey(k int64) {
	h.keys = append(h.keys, k)
	x := h.keys
	j := len(x) - 1
	for j > 0 {
		i := (j - 1) / 2
		if x[i] <= x[j] {
			break
		}
		x[i], x[j] = x[j], x[i]
		j = i
	}
}

func (h *recHeap) popKey() int64 {
	x := h.keys
	n := len(x) - 1
	x[0], x[n] = x[n], x[0]
	i := 0
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if j+1 < n && x[j+1] < x[j] {
			j++
		}
		if x[i] <= x[j] {
			break
		}
		x[i], x[j] = x[j], x[i]
		i = j
	}
	k := x[n]
	h.keys = x[:n]
	return k
}

// clone returns a copy of h that shares nothing with it but the slots'
// encodings (read only: an add to the copy appends to a new array). It
// copies only the held records, into a slab of their own, whatever room
// h's slab has.
func (h *recHeap) clone() recHeap {
	c := recHeap{cur: slices.Clone(h.cur[h.at:]), curKey: h.curKey, keys: slices.Clone(h.keys), n: h.n}
	c.copySlots(c.cur, h)
	c.buckets = make(map[int64]*bucket, len(h.buckets))
	for k, b := range h.buckets {
		nb := &bucket{key: k, e: slices.Clone(b.e)}
		c.copySlots(nb.e, h)
		c.buckets[k] = nb
	}
	return c
}

// copySlots gives es's entries slots of c's slab holding h's records.
func (c *recHeap) copySlots(es []heapEntry, h *recHeap) {
	if h.slab.Size() == 0 {
		return // entries without records (tests)
	}
	for i := range es {
		x := h.slab.At(es[i].slot)
		slot := c.slab.Alloc()
		*c.slab.At(slot) = heldRecord{o: x.o, enc: x.enc[:len(x.enc):len(x.enc)]}
		es[i].slot = slot
	}
}

// add holds r, encoded.
func (h *recHeap) add(o store.Origin, r *flow.Record, seq uint64) {
	slot := h.slab.Alloc()
	x := h.slab.At(slot)
	x.o, x.enc = o, store.AppendRecord(x.enc[:0], r)
	h.push(heapEntry{r.First, seq, slot})
}

// addEncoded holds a copy of enc, a record that started at first.
func (h *recHeap) addEncoded(o store.Origin, first int64, enc []byte, seq uint64) {
	slot := h.slab.Alloc()
	x := h.slab.At(slot)
	x.o, x.enc = o, append(x.enc[:0], enc...)
	h.push(heapEntry{first, seq, slot})
}

// first returns the start of the earliest held record; h must not be
// empty.
func (h *recHeap) first() int64 {
	h.fill()
	return h.cur[h.at].first
}

// take removes the earliest record and decodes it (without the
// application names, which no cell uses); the record stays
// valid until the next take. nil means it did not decode (it was
// encoded here, so only a bug can do that): the caller counts it late
// at its start.
func (h *recHeap) take() (store.Origin, *flow.Record, int64) {
	e := h.pop()
	x := h.slab.At(e.slot)
	o := x.o
	err := store.DecodeRecordNoNames(x.enc, &h.dec)
	// Released after decoding: the release may drop x's chunk.
	h.slab.Release(e.slot)
	if err != nil {
		return o, nil, e.first
	}
	return o, &h.dec, e.first
}

// NewRoller returns a Roller. names and anns are the store's names and
// sampling announcements (SetNames and SetAnnouncements replace them
// when they change); prev, when not nil, is the meta of the rollups
// this Roller continues (a collector restarted on its store).
func NewRoller(cfg RollupConfig, names *store.NameIndex, anns map[store.Origin][]store.Announcement, prev *store.RollupMeta) *Roller {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Lag <= 0 {
		cfg.Lag = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LongFlow <= 0 {
		cfg.LongFlow = 15 * time.Minute
	}
	r := &Roller{cfg: cfg, clock: map[store.Origin]*int64{}, fed: math.MinInt64, maxFed: math.MinInt64,
		maxLast: math.MinInt64, maxDur: min(cfg.MaxDuration, int64(cfg.LongFlow))}
	r.opts = Options{Window: cfg.Window, Names: names, Announcements: anns}
	r.nm = newNamer(&r.opts)
	r.nm.install(&r.opts)
	r.setBopts()
	r.smp = newSamplingIndex(anns, names)
	r.pair = cfg.Rules != nil && cfg.Rules.UsesPair()
	if r.pair {
		r.ix = cfg.Rules.NewIndex()
	}
	if prev != nil {
		r.records, r.late = prev.Records, prev.Late
		r.fed, r.maxFed = prev.Fed, prev.Fed
		r.prunedBefore = prev.PrunedBefore
	}
	r.c = consolidate.New(&consolidate.Config{Window: cfg.Window, Batch: true, Sink: r.complete})
	r.resetCells()
	return r
}

func (r *Roller) setBopts() {
	r.bopts = r.opts
	r.bopts.Rules, r.bopts.lean = nil, true
	r.bopts.originNames = map[consolidate.Origin]string{}
	r.bopts.symLists = &r.freeLists
}

func (r *Roller) resetCells() {
	r.recCells = make([]recCell, len(store.RollupResolutions))
	r.accCells = make([]accCell, len(store.RollupResolutions))
	r.cells = map[time.Duration]map[store.RollupKey]*store.RollupCell{}
	for _, res := range store.RollupResolutions {
		r.cells[res] = map[store.RollupKey]*store.RollupCell{}
	}
}

// SetNames replaces the names records are named by.
func (r *Roller) SetNames(names *store.NameIndex) {
	r.nm.names = names
	r.smp = newSamplingIndex(r.smp.ann, names)
}

// SetAnnouncements replaces the sampling announcements.
func (r *Roller) SetAnnouncements(anns map[store.Origin][]store.Announcement) {
	r.smp = newSamplingIndex(anns, r.nm.names)
}

// Add adds a stored record of o (copied; rec is not kept).
func (r *Roller) Add(o store.Origin, rec *flow.Record) {
	if r.note(o, rec.First, rec.Last) {
		r.feed(o, rec, true)
		return
	}
	r.buf.add(o, rec, r.seq)
	r.seq++
}

// AddEncoded is Add for a record in the store's encoding (DecodeRecord's
// input) that started at first and ended at last: it is held as it is
// (copied), and decoded only when it is fed. An error is a record that
// does not decode, which only a late record is checked for here (a held
// one is counted late when it fails to decode, as Add's). The
// application names are not decoded (no cell uses them).
func (r *Roller) AddEncoded(o store.Origin, first, last int64, enc []byte) error {
	if r.note(o, first, last) {
		if err := store.DecodeRecordNoNames(enc, &r.lateRec); err != nil {
			return err
		}
		r.feed(o, &r.lateRec, true)
		return nil
	}
	r.buf.addEncoded(o, first, enc, r.seq)
	r.seq++
	return nil
}

// note advances the clocks by a record of o and says whether the
// horizon has passed its start (it is late: fed now, out of order).
func (r *Roller) note(o store.Origin, first, last int64) bool {
	c := r.lastClock
	if c == nil || o != r.lastO {
		if c = r.clock[o]; c == nil {
			c = new(int64)
			r.clock[o] = c
		}
		r.lastO, r.lastClock = o, c
	}
	r.notes++
	if t := *c; last > t || t == 0 {
		*c = last
	}
	r.maxLast = max(r.maxLast, last)
	if d := min(last-first, int64(r.cfg.LongFlow)); d > r.maxDur {
		r.maxDur = d
	}
	if first < r.fed {
		r.late++
		return true
	}
	return false
}

// horizon is the start before which every record has arrived; now is
// the wall clock (Idle).
func (r *Roller) horizon(now int64) int64 {
	if r.maxLast == math.MinInt64 {
		return math.MinInt64
	}
	if r.cfg.Scan {
		// A store scan goes by chunk key (the earliest end in a chunk
		// of at most one second): every later record ends at or after
		// the latest end seen less a second.
		return r.maxLast - int64(time.Second) - r.maxDur
	}
	// The slowest active origin; one more than ten windows behind the
	// most advanced is taken as stalled (as consolidate's watermark).
	wm := r.maxLast
	stall := r.maxLast - 10*int64(r.cfg.Window)
	for _, c := range r.clock {
		if t := *c; t >= stall && t < wm {
			wm = t
		}
	}
	if r.cfg.Idle && r.arrived != 0 && now > r.arrived {
		wm = satAdd64(wm, now-r.arrived)
	}
	return wm - r.maxDur - int64(r.cfg.Lag)
}

// Advance feeds the records that started before the horizon, completes
// the connections nothing can continue any more and classifies the
// biflows whose pair context is complete.
func (r *Roller) Advance() {
	var now int64
	if (r.cfg.Hold > 0 || r.cfg.Idle) && !r.cfg.Scan {
		now = r.cfg.Now().UnixNano()
		if r.notes != r.notesSeen {
			r.notesSeen, r.arrived = r.notes, now
		}
	}
	t := r.horizon(now)
	if r.cfg.Hold > 0 && !r.cfg.Scan {
		r.past = append(r.past, pastHorizon{now, t})
		t = math.MinInt64
		n := 0
		for n < len(r.past) && r.past[n].at <= now-int64(r.cfg.Hold) {
			t = r.past[n].t
			n++
		}
		if n > 0 {
			// Keep the latest one that is old enough: it stays in force.
			r.past = r.past[n-1:]
		}
	}
	for r.buf.Len() > 0 && r.buf.first() < t {
		r.feedHeld()
	}
	if t > r.fed {
		r.fed = t
	}
	if r.fed == math.MinInt64 {
		return
	}
	r.c.CompleteBefore(r.fed)
	r.classifyReady(false)
}

// AdvanceIdle is Advance for a Roller given no record since its last
// Advance (RollupConfig.Idle: the horizon moves with the wall clock), if the
// Roller holds anything the horizon can still complete: held records,
// pending connections or biflows waiting for their pair context. false
// means it held nothing, so there is nothing new to write.
func (r *Roller) AdvanceIdle() bool {
	if r.buf.Len() == 0 && r.wait.n == 0 && r.c.Stats().Pending == 0 {
		return false
	}
	r.Advance()
	return true
}

// feedHeld feeds the earliest held record.
func (r *Roller) feedHeld() {
	o, rec, first := r.buf.take()
	if rec != nil {
		r.feed(o, rec, false)
		return
	}
	r.late++
	u := store.RollupUsage{Flows: 1, Late: 1, First: first, Last: first}
	for _, res := range store.RollupResolutions {
		k := store.RollupKey{Bucket: first - mod(first, int64(res)), Kind: store.RollupRecords}
		r.cell(res, k).RollupUsage.Add(&u)
	}
}

func (r *Roller) feed(o store.Origin, rec *flow.Record, late bool) {
	r.records++
	r.maxFed = max(r.maxFed, rec.First)
	x := r.nm.rename(o, rec, &r.named)
	pkt, fl, unknown := r.smp.resolve(o, x)
	if pkt != x.SamplingPacketInterval || fl != x.SamplingFlowInterval {
		rr := *x
		rr.SamplingPacketInterval, rr.SamplingFlowInterval = pkt, fl
		x = &rr
	}
	r.c.AddRecord(consolidate.Origin{Probe: o.Exporter, Domain: o.Domain}, x, unknown)
	u := store.RollupUsage{Flows: 1, First: rec.First, Last: rec.Last}
	if unknown {
		u.Unscaled = 1
	}
	if late {
		u.Late = 1
	}
	for i, res := range store.RollupResolutions {
		k := store.RollupKey{Bucket: rec.First - mod(rec.First, int64(res)), Kind: store.RollupRecords}
		rc := &r.recCells[i]
		if rc.c == nil || rc.bucket != k.Bucket {
			rc.bucket, rc.c = k.Bucket, r.cell(res, k)
		}
		rc.c.RollupUsage.Add(&u)
	}
}

func (r *Roller) cell(res time.Duration, k store.RollupKey) *store.RollupCell {
	m := r.cells[res]
	c := m[k]
	if c == nil {
		c = &store.RollupCell{}
		m[k] = c
	}
	return c
}

// complete is the consolidator's sink.
func (r *Roller) complete(cb *consolidate.Biflow) {
	// Made in place (the wait list's next slot, or r.one), not on the
	// stack: the classifier and the index keep a biflow's symptoms,
	// which makes the biflow escape to the heap.
	if !r.pair {
		b := &r.one
		*b = makeBiflow(cb, &r.bopts, nil)
		if r.cfg.Rules != nil {
			if c := r.cfg.Rules.Classify(b.input(), nil); c != "" {
				b.Category = c
			}
		}
		r.account(b)
		r.recycle(b)
		*b = Biflow{}
		return
	}
	b := r.wait.next()
	*b = makeBiflow(cb, &r.bopts, nil)
	b.indexed = r.ix.Add(b.input())
}

// recycle keeps the symptom list of an accounted biflow that no index
// holds for makeBiflow to reuse, up to maxFreeLists of them. Not in a
// Pending copy, whose biflows share their lists with the Roller it
// copies.
func (r *Roller) recycle(b *Biflow) {
	if r.copied || b.indexed || cap(b.counts) == 0 || len(r.freeLists) >= maxFreeLists {
		return
	}
	clear(b.counts)
	r.freeLists = append(r.freeLists, b.counts[:0])
	b.counts = nil
}

const maxFreeLists = 4096

// waitList holds the biflows waiting for their pair context in blocks
// of waitBlock: appending never copies those held (one slice of them,
// grown, copied hundreds of MB at a collector's flush).
type waitList struct {
	blocks [][]Biflow
	n      int
}

const waitBlock = 256

func (w *waitList) at(i int) *Biflow { return &w.blocks[i/waitBlock][i%waitBlock] }

// next appends a biflow to be filled in.
func (w *waitList) next() *Biflow {
	if w.n == len(w.blocks)*waitBlock {
		w.blocks = append(w.blocks, make([]Biflow, waitBlock))
	}
	w.n++
	return w.at(w.n - 1)
}

// truncate keeps the first n biflows, giving back the blocks beyond
// them but one.
func (w *waitList) truncate(n int) {
	for i := n; i < w.n; i++ {
		*w.at(i) = Biflow{}
	}
	w.n = n
	if keep := (n+waitBlock-1)/waitBlock + 1; len(w.blocks) > keep {
		clear(w.blocks[keep:])
		w.blocks = w.blocks[:keep]
	}
}

func (w *waitList) clone() waitList {
	c := waitList{n: w.n, blocks: make([][]Biflow, len(w.blocks))}
	for i, b := range w.blocks {
		c.blocks[i] = slices.Clone(b)
	}
	return c
}

type hostPair struct{ a, b netip.Addr }

func pairKey(a, b netip.Addr) hostPair {
	if b.Less(a) {
		return hostPair{b, a}
	}
	return hostPair{a, b}
}

// classifyReady classifies the waiting biflows whose pair context can no
// longer change (all of them when all is set) and forgets what no
// biflow still to come can have in its context.
func (r *Roller) classifyReady(all bool) {
	if !r.pair || r.wait.n == 0 {
		return
	}
	w := int64(classify.PairWindow)
	var pend map[hostPair]int64
	low := r.fed
	if !all {
		pend = map[hostPair]int64{}
		r.c.Pending(func(a, b netip.Addr, first int64) {
			k := pairKey(a, b)
			if t, ok := pend[k]; !ok || first < t {
				pend[k] = first
			}
			low = min(low, first)
		})
	}
	n := 0
	for i := range r.wait.n {
		b := r.wait.at(i)
		ready := all
		if !ready && r.fed > satAdd64(b.Last, w) {
			t, ok := pend[pairKey(b.Src, b.Dst)]
			ready = !ok || t > satAdd64(b.Last, w)
		}
		if !ready {
			low = min(low, b.First)
			if i != n {
				*r.wait.at(n) = *b
			}
			n++
			continue
		}
		if c := r.cfg.Rules.Classify(b.input(), r.ix); c != "" {
			b.Category = c
		}
		r.account(b)
		r.recycle(b)
	}
	r.wait.truncate(n)
	if !all {
		r.ix.Forget(low)
	}
}

func satAdd64(a, b int64) int64 {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	return s
}

// account adds a classified biflow to its cells.
func (r *Roller) account(b *Biflow) {
	u := store.RollupUsage{Biflows: 1, Flows: uint64(b.Flows),
		Packets: consolidate.SatAdd(b.Packets, b.RPackets), Octets: consolidate.SatAdd(b.Octets, b.ROctets),
		Merged: uint64(b.Merged), First: b.First, Last: b.Last,
		EstBiflows: sum.Of(b.est.Biflows), EstPackets: sum.Of(b.est.Packets), EstOctets: sum.Of(b.est.Octets),
		VarBiflows: sum.Of(b.est.VarBiflows), VarPackets: sum.Of(b.est.VarPackets), VarOctets: sum.Of(b.est.VarOctets)}
	if b.Sampling < 1 {
		u.Sampled = true
		u.PacketSampled = b.pktSampled
	}
	k := store.RollupKey{Aggregate: b.Aggregate, Category: b.Category, Probe: b.probeKey}
	if r.cfg.AS != nil {
		k.SrcAS, k.DstAS = r.cfg.AS.Lookup(b.Src), r.cfg.AS.Lookup(b.Dst)
	}
	syms := r.syms[:0]
	for name, n := range b.Symptoms {
		if n > 0 {
			s := store.RollupSymptom{Name: name, RollupUsage: u}
			s.Hits = n
			syms = append(syms, s)
		}
	}
	for _, c := range b.counts {
		if c.Count > 0 {
			s := store.RollupSymptom{Name: c.Name, RollupUsage: u}
			s.Hits = c.Count
			syms = append(syms, s)
		}
	}
	for i, res := range store.RollupResolutions {
		k.Bucket = b.First - mod(b.First, int64(res))
		ac := &r.accCells[i]
		if ac.c == nil || ac.key != k {
			ac.key, ac.c = k, r.cell(res, k)
		}
		c := ac.c
		c.RollupUsage.Add(&u)
		if len(syms) > 0 {
			r.symCell.Symptoms = syms
			c.Add(&r.symCell)
		}
	}
	clear(syms)
	r.syms, r.symCell.Symptoms = syms[:0], nil
}

// Flush feeds every record held, completes every connection and
// classifies every biflow (the end of the input: a collector stopping,
// the end of a rebuild).
func (r *Roller) Flush() {
	for r.buf.Len() > 0 {
		r.feedHeld()
	}
	r.c.Flush()
	r.classifyReady(true)
	if r.maxFed != math.MinInt64 {
		r.fed = max(r.fed, r.maxFed+1)
	}
	r.flushed = true
}

// Held returns how many records wait for the horizon and how many
// biflows for their pair context (memory the rollups hold).
func (r *Roller) Held() (records, biflows int) { return r.buf.Len(), r.wait.n }

// Take returns what was added since the previous Take, with the meta
// that describes the rollups once it is stored.
func (r *Roller) Take() *store.RollupDelta {
	cb := int64(math.MaxInt64)
	if !r.flushed {
		cb = r.fed
		r.c.Pending(func(_, _ netip.Addr, first int64) { cb = min(cb, first) })
		for i := range r.wait.n {
			cb = min(cb, r.wait.at(i).First)
		}
	}
	d := &store.RollupDelta{Cells: r.cells, Meta: store.RollupMeta{Version: store.RollupVersion,
		Window: r.cfg.Window, Rules: r.cfg.RulesID, AS: r.cfg.ASID, CompleteBefore: cb, Fed: r.fed,
		Records: r.records, Late: r.late, Clean: r.flushed, PrunedBefore: r.prunedBefore}}
	r.resetCells()
	return d
}

// Rebuild makes the rollups of s from its records (a store written
// before rollups existed, or after a collector stopped without writing
// them), replacing those of buckets at or after the earliest record's
// hour. It returns the rollups' meta.
func Rebuild(ctx context.Context, s *store.Store, cfg RollupConfig) (store.RollupMeta, error) {
	names, err := s.NameIndex()
	if err != nil {
		return store.RollupMeta{}, err
	}
	anns, err := s.Announcements()
	if err != nil {
		return store.RollupMeta{}, err
	}
	if cfg.MaxDuration, err = s.MaxDuration(); err != nil {
		return store.RollupMeta{}, err
	}
	var prev *store.RollupMeta
	if m, err := s.RollupMeta(); err == nil {
		prev = &store.RollupMeta{PrunedBefore: m.PrunedBefore}
	}
	cfg.Scan = true
	r := NewRoller(cfg, names, anns, prev)
	r.records, r.late = 0, 0
	first := int64(math.MaxInt64)
	n := 0
	// Streamed: the Roller holds only the records within the longest
	// flow duration of the scan position, and the cells.
	err = s.Flows(store.Query{}, func(f store.StoredFlow) error {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			r.Advance()
		}
		n++
		first = min(first, f.Record.First)
		r.Add(f.Origin, &f.Record)
		return nil
	})
	if err != nil {
		return store.RollupMeta{}, err
	}
	r.Flush()
	if first == math.MaxInt64 {
		first = math.MinInt64
	} else {
		first -= mod(first, int64(store.RollupHour))
	}
	if err := s.ResetRollups(first); err != nil {
		return store.RollupMeta{}, err
	}
	d := r.Take()
	if err := s.PutRollups(d); err != nil {
		return store.RollupMeta{}, err
	}
	return d.Meta, nil
}

// clone returns a copy of n whose ids grow independently.
func (n *namer) clone() *namer {
	x := *n
	x.symIDs, x.catIDs, x.aggIDs = maps.Clone(n.symIDs), maps.Clone(n.catIDs), maps.Clone(n.aggIDs)
	x.symNames, x.catNames, x.aggNames = slices.Clone(n.symNames), slices.Clone(n.catNames), slices.Clone(n.aggNames)
	x.scratch = nil
	// The id tables name this namer's ids: the copy makes its own.
	x.tabs, x.tabsIx, x.lastNm, x.lastT = nil, nil, nil, nil
	return &x
}

// Pending returns the cells of everything r was given but has not yet
// added to the rollups (held records, pending connections, biflows
// waiting for their pair context) as if the input ended now: a flushed
// copy, r unchanged. The stored cells plus these are what a report over
// all the records given so far shows (the collector's API answers a
// live store's whole range so).
func (r *Roller) Pending() map[time.Duration]map[store.RollupKey]*store.RollupCell {
	n := &Roller{cfg: r.cfg, copied: true, opts: r.opts, smp: r.smp, fed: r.fed, maxFed: r.maxFed, pair: r.pair,
		clock: map[store.Origin]*int64{}, maxLast: r.maxLast, maxDur: r.maxDur}
	n.nm = r.nm.clone()
	n.nm.install(&n.opts)
	n.setBopts()
	// The copy only takes: it reads the slots' bytes, which r does not
	// change while the copy lives (the caller holds r).
	n.buf = r.buf.clone()
	n.wait = r.wait.clone()
	if r.ix != nil {
		n.ix = r.ix.Clone()
	}
	n.c = r.c.Clone(n.complete)
	n.resetCells()
	n.Flush()
	return n.cells
}
