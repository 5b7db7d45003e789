package report

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/sum"
)

// Composing a ranged report from the rollups and the records of its edges
//
// The report over the records of [F, T) pairs the records active in it
// (store.Overlap: Last >= F, First < T); the rollups count the biflows of
// all the records by their start. They differ only for connections near a
// bound, and, through the pair context of the classification, for the
// other biflows between the same two addresses near those.
//
// Records of two addresses (a host pair) that lie more than
// max(window, classify.PairWindow) apart cannot be of one connection
// (consolidate: a record joins a connection within a window of its last
// end; duplicates likewise) nor in each other's pair context
// (classify.PairWindow). So a host pair's records fall into clusters:
// maximal runs whose time spans, stretched by that gap, touch. Every
// cluster is paired and classified alike by any report whose records
// hold it whole, and apart from every other cluster (report.Part adds
// up over such a split).
//
// With cF and fT the whole minutes just inside F and T, a cluster whose
// records all start in [cF, fT) is interior: the report over the records
// of [F, T) holds it whole (its records start after F and cannot reach
// a record after T), so its biflows are there exactly as over all the
// records, and they start in [cF, fT): the rollups' cells of those
// buckets count them. Every other cluster that matters has a record
// that overlaps [F-gap, cF) or [fT-gap, T) (its span reaches across cF
// or fT within the gap): the edge clusters. They are read from the
// records whole (the reads around each bound widen until no edge
// cluster reaches their border), and
//
//	report = cells[cF, fT) - edge clusters' biflows (over all their
//	         records) that start in [cF, fT) + the report over the edge
//	         clusters' records active in [F, T)
//
// which is the report over the records (the usage table and summary;
// the estimates' sums are exact, sum.Exact, so a cell less a biflow is
// the cell of the others bit for bit). What cannot be taken back out of
// a cell exactly refuses (*RollupError; auto then reads the records):
// whether a cell still holds a packet-sampled biflow when one was taken
// out and flow-sampled ones stay (subUsage); with a filter, a cell's
// earliest start or latest end when a biflow taken out held it and no
// other kept biflow starts as early or ends as late; a cell the edges do
// not find. The order of records matters where two of one origin start
// together (Build orders them as the store does): the reads keep it.
//
// Composing needs --from and --to; --started (by start) is the rollups'
// own. Per-biflow listings stay the records' (the cells hold no
// biflows), as do the record filters CanUseRollups refuses.

// Reasons auto answers from the records for, which composing answers.
const (
	reasonCrossed   = "a record lies across --from or --to or ends within the pairing window before one"
	reasonUnaligned = "--from and --to must be on whole minutes"
)

// composed answers the report of p (auto, with --from and --to)
// by composing the rollups of the interior minutes with the report over
// the records of the edge clusters (see above); a *RollupError when it
// cannot.
func (p *Params) composed(ctx context.Context, s *store.Store, opts Options, src RollupSource) (*Report, error) {
	switch {
	case p.Query.From.IsZero() || p.Query.To.IsZero():
		return nil, &RollupError{"composing needs --from and --to"}
	}
	if err := p.canUseRollups(false); err != nil {
		return nil, err
	}
	meta, err := checkRollupMeta(s, p, src)
	if err != nil {
		return nil, err
	}
	window := p.Window
	if window <= 0 {
		window = DefaultWindow
	}
	as := opts.AS
	if meta.AS != "" && (as == nil || src.ASID != meta.AS) {
		return nil, &RollupError{"the rollups' cells carry AS numbers of a table the report does not have"}
	}
	if meta.AS == "" {
		as = nil
	}
	c := &composer{p: p, s: s, opts: opts, meta: &meta, as: as,
		from: p.Query.From.UnixNano(), to: p.Query.To.UnixNano(),
		gap: int64(max(window, classify.PairWindow) + time.Second)}
	min := int64(time.Minute)
	c.cF = c.from + mod(-c.from, min)
	c.fT = c.to - mod(c.to, min)
	// The reads around each bound may take at most a third of the
	// range each: wider, the records answer about as fast.
	c.limit = (c.to - c.from) / 3
	// The first read around a bound spans its zone (gap+1s to the
	// whole minute inside, at most gap+61s) and two gaps either side.
	if !p.Started && (c.fT-c.cF < 4*c.gap || c.limit < 5*c.gap+int64(time.Minute+time.Second)) ||
		p.Started && (c.cF >= c.fT || c.limit < 4*c.gap+int64(time.Minute)) {
		return nil, &RollupError{"the range is too short to compose (the records answer it)"}
	}
	if err := c.spans(); err != nil {
		return nil, err
	}
	if err := c.storeOptions(); err != nil {
		return nil, err
	}
	var rep *Report
	run := func(pending map[time.Duration]map[store.RollupKey]*store.RollupCell) error {
		var err error
		if p.Started {
			rep, err = c.composeStarted(ctx, pending)
		} else {
			rep, err = c.compose(ctx, pending)
		}
		return err
	}
	// A running collector's cells it has not stored yet (src.Live) are
	// read while no commit changes the store, and so then are the
	// records around the bounds: commits wait. Reads that end before
	// the stored rollups' horizon need neither (hi <= to + limit).
	if src.Live != nil && c.to+c.limit > meta.CompleteBefore {
		err = src.Live(run)
	} else {
		err = run(nil)
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

type composer struct {
	p    *Params
	s    *store.Store
	opts Options
	meta *store.RollupMeta
	as   interface{ Lookup(netip.Addr) uint32 }

	from, to int64 // the range
	cF, fT   int64 // its whole minutes
	gap      int64 // farther apart, two records of a host pair are apart
	limit    int64 // the widest read around a bound
	// cellSpans are the interior's buckets by resolution: minutes at
	// the ends, hours between when the range and --bucket allow.
	cellSpans []cellSpan
}

type cellSpan struct {
	res      time.Duration
	from, to int64
}

// spans picks the resolutions of the interior [cF, fT).
func (c *composer) spans() error {
	h := int64(store.RollupHour)
	hF, hT := c.cF+mod(-c.cF, h), c.fT-mod(c.fT, h)
	minutePruned := c.meta.PrunedBeforeAt(store.RollupMinute)
	if hF < hT && (c.p.Bucket == 0 || c.p.Bucket%store.RollupHour == 0) && c.meta.PrunedBeforeAt(store.RollupHour) <= hF &&
		(hF == c.cF || minutePruned <= c.cF) {
		for _, sp := range []cellSpan{{store.RollupMinute, c.cF, hF}, {store.RollupHour, hF, hT}, {store.RollupMinute, hT, c.fT}} {
			if sp.from < sp.to {
				c.cellSpans = append(c.cellSpans, sp)
			}
		}
		return nil
	}
	if minutePruned > c.cF {
		return &RollupError{"retention pruned the rollups of that range at the resolution it needs"}
	}
	c.cellSpans = []cellSpan{{store.RollupMinute, c.cF, c.fT}}
	return nil
}

// bucketOf is the cell bucket a biflow starting at t (in the interior)
// is counted in, with its resolution.
func (c *composer) bucketOf(t int64) (time.Duration, int64) {
	for _, sp := range c.cellSpans {
		if t >= sp.from && t < sp.to {
			return sp.res, t - mod(t, int64(sp.res))
		}
	}
	return 0, 0
}

// storeOptions fills opts as StoreInputs does.
func (c *composer) storeOptions() error {
	c.opts.Keep, c.opts.Match = nil, nil
	return storeOptions(c.s, &c.opts)
}

// hostPair is a record's two addresses, in order.
type recPair struct{ a, b netip.Addr }

func pairOf(r *store.StoredFlow) recPair { return recordPair(&r.Record) }

func recordPair(r *flow.Record) recPair {
	a, b := r.Src, r.Dst
	if b.Less(a) {
		a, b = b, a
	}
	return recPair{a, b}
}

// edge reads the clusters that have a record overlapping [a, b) whole:
// the records around [a, b), widened until no such cluster comes within
// the gap of the read's ends. A widening reads only what it adds.
func (c *composer) edge(ctx context.Context, a, b int64) (recs []store.StoredFlow, lo, hi int64, err error) {
	lo, hi = a-2*c.gap, b+2*c.gap
	// read reads the records overlapping [from, to) that keep accepts.
	read := func(from, to int64, keep func(*flow.Record) bool) ([]store.StoredFlow, error) {
		var out []store.StoredFlow
		n := 0
		err := c.s.Flows(store.Query{From: time.Unix(0, from), To: time.Unix(0, to)}, func(f store.StoredFlow) error {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if keep == nil || keep(&f.Record) {
				out = append(out, f)
			}
			return nil
		})
		return out, err
	}
	// The host pairs of the records overlapping [a, b) first: then
	// only their records are kept of the wider reads.
	seeds := map[recPair]bool{}
	if _, err := read(a, b, func(r *flow.Record) bool {
		seeds[recordPair(r)] = true
		return false
	}); err != nil {
		return nil, 0, 0, err
	}
	seeded := func(r *flow.Record) bool { return seeds[recordPair(r)] }
	flows, err := read(lo, hi, seeded)
	if err != nil {
		return nil, 0, 0, err
	}
	for {
		if hi-lo > c.limit {
			return nil, 0, 0, &RollupError{fmt.Sprintf("the records around %s form runs longer than a third of the range",
				Timestamp(a).RFC3339())}
		}
		byPair := map[recPair][]int{}
		for i := range flows {
			k := pairOf(&flows[i])
			byPair[k] = append(byPair[k], i)
		}
		var keep []int
		nlo, nhi := lo, hi
		for _, ix := range byPair {
			slices.SortFunc(ix, func(x, y int) int { return cmp.Compare(flows[x].Record.First, flows[y].Record.First) })
			for start := 0; start < len(ix); {
				end, last, seeded := start, int64(math.MinInt64), false
				for ; end < len(ix); end++ {
					r := &flows[ix[end]].Record
					if end > start && r.First > last+c.gap {
						break
					}
					last = max(last, r.Last)
					seeded = seeded || (r.Last >= a && r.First < b)
				}
				if seeded {
					first := flows[ix[start]].Record.First
					keep = append(keep, ix[start:end]...)
					if first-c.gap < lo {
						nlo = min(nlo, first-2*c.gap)
					}
					if last+c.gap >= hi {
						nhi = max(nhi, last+2*c.gap)
					}
				}
				start = end
			}
		}
		if nlo == lo && nhi == hi {
			// In the store's order: a report orders records that
			// start together by origin, then as the store keeps them.
			slices.Sort(keep)
			recs = make([]store.StoredFlow, len(keep))
			for j, i := range keep {
				recs[j] = flows[i]
			}
			return recs, lo, hi, nil
		}
		// Read what the widening adds: before lo the records that
		// end before it, from hi on those that start there (the
		// others overlap [lo, hi): read already). flows stays in the
		// store's order where it matters, among records of one start:
		// those before lo end first, those from hi on start later.
		if nlo < lo {
			left, err := read(nlo, lo, func(r *flow.Record) bool { return r.Last < lo && seeded(r) })
			if err != nil {
				return nil, 0, 0, err
			}
			flows, lo = append(left, flows...), nlo
		}
		if nhi > hi {
			right, err := read(hi, nhi, func(r *flow.Record) bool { return r.First >= hi && seeded(r) })
			if err != nil {
				return nil, 0, 0, err
			}
			flows, hi = append(flows, right...), nhi
		}
	}
}

// cellAdjust is what the edge clusters' biflows took from one cell.
type cellAdjust struct {
	store.RollupCell
	used bool
}

func (c *composer) compose(ctx context.Context, pending map[time.Duration]map[store.RollupKey]*store.RollupCell) (*Report, error) {
	lowRecs, loL, hiL, err := c.edge(ctx, c.from-c.gap-int64(time.Second), c.cF)
	if err != nil {
		return nil, err
	}
	highRecs, loH, hiH, err := c.edge(ctx, c.fT-c.gap-int64(time.Second), c.to)
	if err != nil {
		return nil, err
	}
	if err := c.edgesUsable(loL, hiL, loH, hiH, pending != nil); err != nil {
		return nil, err
	}
	edge := append(lowRecs, highRecs...)
	var in []store.StoredFlow
	for i := range edge {
		if r := &edge[i].Record; r.Last >= c.from && r.First < c.to {
			in = append(in, edge[i])
		}
	}
	pairs := c.opts.Rules != nil && c.opts.Rules.UsesPair()
	whole := buildPart(edge, c.opts, pairs)
	// The report's filters (--aggregate, --category, --symptom) keep
	// the biflows of the edges' report; the cells take out all.
	kopts := c.opts
	kopts.Keep = c.p.Options().Keep
	part := buildPart(in, kopts, pairs)
	keep := kopts.Keep != nil

	// What the edge clusters' biflows that started in the interior
	// put in their cells.
	adj := map[time.Duration]map[store.RollupKey]*cellAdjust{}
	for i := range whole.Biflows {
		b := &whole.Biflows[i]
		res, bucket := c.bucketOf(b.First)
		if res == 0 {
			continue
		}
		k, cell := c.cellOf(b)
		k.Bucket = bucket
		m := adj[res]
		if m == nil {
			m = map[store.RollupKey]*cellAdjust{}
			adj[res] = m
		}
		a := m[k]
		if a == nil {
			a = &cellAdjust{}
			m[k] = a
		}
		a.Add(cell)
	}

	interior := &Part{}
	// span is the kept biflows' span when filtered: what the cells
	// say, and the bounds of what they do not.
	span := struct{ first, last, firstBound, lastBound int64 }{math.MaxInt64, math.MinInt64, math.MaxInt64, math.MinInt64}
	acc := newUsageAcc()
	interior.agg = acc
	var records store.RollupUsage
	n := 0
	cell := func(res time.Duration, k *store.RollupKey, cl *store.RollupCell) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch k.Kind {
		case store.RollupRecords:
			records.Add(&cl.RollupUsage)
			return nil
		case store.RollupBiflows:
		default:
			return nil
		}
		orig := cl
		a := adj[res][*k]
		if a != nil {
			a.used = true
			var err error
			if cl, err = takeOut(cl, &a.RollupCell); err != nil {
				return err
			}
			if cl == nil {
				return nil
			}
		}
		u := c.addCell(acc, k, cl)
		if u != nil {
			interior.Merged += int(u.Merged)
		}
		if !keep || u == nil {
			return nil
		}
		// Filtered, the summary's flows and span are the kept
		// biflows': the cells'. The earliest start or latest end
		// of a cell is not known once a biflow that has it is
		// taken out: the cell's bounds it (the rest start no
		// earlier), which answers when another biflow starts
		// earlier still (checked at the end).
		interior.Flows += int(u.Flows)
		firstKnown, lastKnown := true, true
		if a != nil {
			if ou, au := c.filtered(orig), c.filtered(&a.RollupCell); ou != nil && au != nil && au.Biflows > 0 {
				if au.First <= ou.First {
					firstKnown, span.firstBound = false, min(span.firstBound, ou.First)
				}
				if au.Last >= ou.Last {
					lastKnown, span.lastBound = false, max(span.lastBound, ou.Last)
				}
			}
		}
		if firstKnown {
			span.first = min(span.first, u.First)
		}
		if lastKnown {
			span.last = max(span.last, u.Last)
		}
		return nil
	}
	for _, sp := range c.cellSpans {
		if err := c.s.Rollups(sp.res, sp.from, sp.to, func(k *store.RollupKey, cl *store.RollupCell) error { return cell(sp.res, k, cl) }); err != nil {
			return nil, err
		}
		for k, cl := range pending[sp.res] {
			if k.Bucket >= sp.from && k.Bucket < sp.to {
				if err := cell(sp.res, &k, cl); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, m := range adj {
		for k, a := range m {
			if !a.used {
				return nil, &RollupError{fmt.Sprintf("no cell of %s holds biflows the records around the bounds start there", Timestamp(k.Bucket).RFC3339())}
			}
		}
	}
	if records.Late > 0 {
		return nil, &RollupError{fmt.Sprintf("%d records of the range reached them late", records.Late)}
	}
	// Late records around the bounds split connections where the
	// records pair them.
	if err := c.lateAround(loL, hiH); err != nil {
		return nil, err
	}
	interior.SamplingUnknown = records.Unscaled
	if !keep {
		interior.Flows = int(records.Flows)
		if records.Flows > 0 {
			interior.span(records.First, records.Last)
		}
	}

	// The edges' part: its biflows summed, its records those that
	// started outside the interior (the cells count the others).
	edges := &Part{agg: newUsageAcc(), Merged: part.Merged}
	for i := range part.Biflows {
		edges.agg.add(&part.Biflows[i], &c.opts)
	}
	if keep {
		// The kept biflows' records and span (buildPart's).
		edges.Flows = part.Flows
		if part.HasSpan {
			edges.span(part.First, part.Last)
			span.first, span.last = min(span.first, part.First), max(span.last, part.Last)
		}
		if span.firstBound < span.first || span.lastBound > span.last {
			return nil, &RollupError{"a biflow around a bound starts first or ends last of the kept biflows of a cell, and no other starts as early or ends as late: the span without it is not kept"}
		}
		if span.first <= span.last {
			interior.span(span.first, span.last)
		}
	}
	smp := newSamplingIndex(c.opts.Announcements, c.opts.Names)
	for i := range in {
		r := &in[i].Record
		if r.First >= c.cF && r.First < c.fT {
			continue
		}
		if !keep {
			edges.Flows++
			edges.span(r.First, r.Last)
		}
		if _, _, unknown := smp.resolve(in[i].Origin, r); unknown {
			edges.SamplingUnknown++
		}
	}
	return c.assemble(interior, edges, &EdgeInfo{Records: len(edge), Biflows: len(part.Biflows), Taken: len(whole.Biflows),
		From: Timestamp(c.cF), To: Timestamp(c.fT)}), nil
}

// EdgeInfo says a report was composed (RollupInfo.Edges): the rollups'
// cells of [From, To) (the whole minutes inside the range) less the
// biflows of the records around the bounds that started there, plus the
// report over those records active in the range.
type EdgeInfo struct {
	From Timestamp `json:"from"`
	To   Timestamp `json:"to"`
	// Records were read around the bounds; Biflows of them count in
	// the range; Taken are the biflows of all those records, taken out
	// of the cells where they started in [From, To).
	Records int `json:"records"`
	Biflows int `json:"biflows"`
	Taken   int `json:"taken"`
}

// cellOf is the cell key (without bucket) and the contribution of b, as
// Roller.account makes them.
func (c *composer) cellOf(b *Biflow) (store.RollupKey, *store.RollupCell) {
	u := store.RollupUsage{Biflows: 1, Flows: uint64(b.Flows),
		Packets: satAdd(b.Packets, b.RPackets), Octets: satAdd(b.Octets, b.ROctets),
		Merged: uint64(b.Merged), First: b.First, Last: b.Last,
		EstBiflows: sum.Of(b.est.Biflows), EstPackets: sum.Of(b.est.Packets), EstOctets: sum.Of(b.est.Octets),
		VarBiflows: sum.Of(b.est.VarBiflows), VarPackets: sum.Of(b.est.VarPackets), VarOctets: sum.Of(b.est.VarOctets)}
	if b.Sampling < 1 {
		u.Sampled = true
		u.PacketSampled = b.pktSampled
	}
	k := store.RollupKey{Kind: store.RollupBiflows, Aggregate: b.Aggregate, Category: b.Category, Probe: strings.Join(b.Origins, ";")}
	if c.as != nil {
		k.SrcAS, k.DstAS = c.as.Lookup(b.Src), c.as.Lookup(b.Dst)
	}
	cell := &store.RollupCell{RollupUsage: u}
	for name, n := range b.Symptoms {
		if n > 0 {
			s := store.RollupSymptom{Name: name, RollupUsage: u}
			s.Hits = n
			cell.Symptoms = append(cell.Symptoms, s)
		}
	}
	slices.SortFunc(cell.Symptoms, func(x, y store.RollupSymptom) int { return strings.Compare(x.Name, y.Name) })
	return k, cell
}

// takeOut returns cl less a (nil when nothing is left), or a
// *RollupError when that is not known exactly: a cell left sampled or
// not, or a cell that holds less than a.
func takeOut(cl *store.RollupCell, a *store.RollupCell) (*store.RollupCell, error) {
	out := &store.RollupCell{RollupUsage: cl.RollupUsage}
	if err := subUsage(&out.RollupUsage, &a.RollupUsage); err != nil {
		return nil, err
	}
	j := 0
	for i := range cl.Symptoms {
		s := cl.Symptoms[i]
		for j < len(a.Symptoms) && a.Symptoms[j].Name < s.Name {
			return nil, &RollupError{"a cell lacks a symptom the records around the bounds carry"}
		}
		if j < len(a.Symptoms) && a.Symptoms[j].Name == s.Name {
			if err := subUsage(&s.RollupUsage, &a.Symptoms[j].RollupUsage); err != nil {
				return nil, err
			}
			j++
		}
		if s.Biflows > 0 {
			out.Symptoms = append(out.Symptoms, s)
		}
	}
	if j < len(a.Symptoms) {
		return nil, &RollupError{"a cell lacks a symptom the records around the bounds carry"}
	}
	if out.Biflows == 0 {
		if len(out.Symptoms) > 0 || out.Packets != 0 || out.Octets != 0 || out.Merged != 0 {
			return nil, &RollupError{"a cell does not hold what the records around the bounds put in it"}
		}
		return nil, nil
	}
	return out, nil
}

// subUsage takes o out of u. First and Last are left (composing reads
// the records' span, not the biflows'); Sampled and PacketSampled are
// those of the biflows left, or a *RollupError when that is not known.
func subUsage(u, o *store.RollupUsage) error {
	if u.Biflows < o.Biflows || u.Flows < o.Flows || u.Packets < o.Packets || u.Octets < o.Octets ||
		u.Hits < o.Hits || u.Merged < o.Merged || (o.Sampled && !u.Sampled) {
		return &RollupError{"a cell holds less than the records around the bounds put in it"}
	}
	if u.Packets == math.MaxUint64 || u.Octets == math.MaxUint64 || u.Hits == math.MaxUint64 {
		return &RollupError{"a cell's sums saturated"}
	}
	u.Biflows -= o.Biflows
	u.Flows -= o.Flows
	u.Packets -= o.Packets
	u.Octets -= o.Octets
	u.Hits -= o.Hits
	u.Merged -= o.Merged
	// Exact (sum.Exact): the cell less a biflow is the cell of the
	// others, bit for bit.
	u.EstBiflows.Sub(&o.EstBiflows)
	u.EstPackets.Sub(&o.EstPackets)
	u.EstOctets.Sub(&o.EstOctets)
	u.VarBiflows.Sub(&o.VarBiflows)
	u.VarPackets.Sub(&o.VarPackets)
	u.VarOctets.Sub(&o.VarOctets)
	if u.Biflows == 0 {
		u.Sampled, u.PacketSampled = false, false
		return nil
	}
	if !o.Sampled {
		return nil // the flags stand for the biflows left
	}
	// Whether a sampled biflow is left the estimates say: a flow-sampled
	// one (1 in N connections) counts for N > 1 biflows, a packet-sampled
	// one (1 in N packets, at least one seen) for more packets than it
	// shows; an unsampled one for itself alone. A term 1/p that float64
	// rounds is off in its last bits, far below a half.
	flowLeft := u.EstBiflows.Float()-float64(u.Biflows) > 0.5
	u.Sampled = flowLeft || u.EstPackets.Float()-float64(u.Packets) > 0.5
	switch {
	case !u.Sampled:
		u.PacketSampled = false
	case o.PacketSampled && flowLeft:
		return &RollupError{"a packet-sampled biflow around a bound shares its cell with flow-sampled ones: whether a packet-sampled one is left is not kept"}
	case o.PacketSampled:
		u.PacketSampled = true // the sampled biflows left are packet-sampled
	}
	return nil
}

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// filtered is what of cl the report's filters keep, as FromRollups
// takes it: with --symptom the symptom's totals (no hits), nil when
// the filters keep none of it (the key's aggregate and category are the
// caller's to check).
func (c *composer) filtered(cl *store.RollupCell) *store.RollupUsage {
	if c.p.Symptom == "" {
		return &cl.RollupUsage
	}
	for i := range cl.Symptoms {
		if cl.Symptoms[i].Name == c.p.Symptom {
			x := cl.Symptoms[i].RollupUsage
			x.Hits = 0
			return &x
		}
	}
	return nil
}

// addCell adds a biflows cell to acc's rows (by the report's grouping
// and --bucket, as FromRollups) and totals, as the report's filters
// keep it; it returns what it added, nil when the filters keep none.
func (c *composer) addCell(acc *usageAcc, k *store.RollupKey, cl *store.RollupCell) *store.RollupUsage {
	p := c.p
	agg, anyAgg := p.Aggregate, p.Aggregate == ""
	if agg == "-" {
		agg = ""
	}
	if !(anyAgg || k.Aggregate == agg) || (p.Category != "" && k.Category != p.Category) {
		return nil
	}
	u := c.filtered(cl)
	if u == nil {
		return nil
	}
	add := func(uk ukey, u *store.RollupUsage) {
		if p.Bucket > 0 {
			uk.Bucket = k.Bucket - mod(k.Bucket, int64(p.Bucket))
		}
		row := acc.row(uk, p.Bucket > 0)
		row.Biflows += int(u.Biflows)
		row.Packets = satAdd(row.Packets, u.Packets)
		row.Octets = satAdd(row.Octets, u.Octets)
		row.Hits = satAdd(row.Hits, u.Hits)
		row.Merged += int(u.Merged)
		row.est.Merge(sumOf(u))
		row.sampled = row.sampled || u.Sampled
		row.pktSmp = row.pktSmp || (u.Sampled && u.PacketSampled)
	}
	uk := ukey{Agg: k.Aggregate, Cat: k.Category}
	switch p.By {
	case ByAggregate:
		uk.Cat = ""
	case ByCategory:
		uk.Agg = ""
	case ByProbe:
		uk = ukey{Probe: k.Probe}
	case ByAS:
		uk = ukey{Src: k.SrcAS, Dst: k.DstAS}
	}
	if p.By == BySymptom {
		for i := range cl.Symptoms {
			add(ukey{Symptom: cl.Symptoms[i].Name}, &cl.Symptoms[i].RollupUsage)
		}
	} else {
		add(uk, u)
	}
	acc.packets = satAdd(acc.packets, u.Packets)
	acc.octets = satAdd(acc.octets, u.Octets)
	acc.total.Merge(sumOf(u))
	acc.sampled = acc.sampled || u.Sampled
	acc.pktSmp = acc.pktSmp || (u.Sampled && u.PacketSampled)
	acc.biflows += int(u.Biflows)
	return u
}

// lateAround refuses (*RollupError) when records of [lo, cF) or [fT,
// hi) reached the rollups late: their connections may be split in the
// cells where the records pair them.
func (c *composer) lateAround(loL, hiH int64) error {
	lateRes := store.RollupMinute
	if c.meta.PrunedBeforeAt(lateRes) > loL-mod(loL, int64(lateRes)) {
		lateRes = store.RollupHour
		if c.meta.PrunedBeforeAt(lateRes) > loL-mod(loL, int64(lateRes)) {
			return &RollupError{"retention pruned the rollups around --from"}
		}
	}
	for _, r := range [][2]int64{{loL, c.cF}, {c.fT, hiH}} {
		lo, hi := r[0]-mod(r[0], int64(lateRes)), r[1]
		var late uint64
		err := c.s.Rollups(lateRes, lo, hi, func(k *store.RollupKey, cl *store.RollupCell) error {
			if k.Kind == store.RollupRecords {
				late += cl.Late
			}
			return nil
		})
		if err != nil {
			return err
		}
		if late > 0 {
			return &RollupError{fmt.Sprintf("%d records around the bounds reached the rollups late", late)}
		}
	}
	return nil
}

// composeStarted is compose for --started (biflows by start, as the
// rollups count them): the cells of the whole minutes inside [F, T) plus
// the biflows, over all their records, that start in the parts of
// minutes at its ends, read whole (the clusters of the records that
// start there). The summary's flows and span are the biflows' (as the
// records' report by start); its duplicates and records of unknown
// sampling those of the biflows and records that start in the range, as
// FromRollups counts them (the records' report counts those of every
// record it reads, from a margin before the range to the store's end).
func (c *composer) composeStarted(ctx context.Context, pending map[time.Duration]map[store.RollupKey]*store.RollupCell) (*Report, error) {
	var edge []store.StoredFlow
	loL, hiL, loH, hiH := c.cF, c.cF, c.fT, c.fT
	if c.from < c.cF {
		recs, lo, hi, err := c.edge(ctx, c.from, c.cF)
		if err != nil {
			return nil, err
		}
		edge, loL, hiL = recs, lo, hi
	}
	if c.fT < c.to {
		recs, lo, hi, err := c.edge(ctx, c.fT, c.to)
		if err != nil {
			return nil, err
		}
		edge, loH, hiH = append(edge, recs...), lo, hi
	}
	if err := c.edgesUsable(loL, hiL, loH, hiH, pending != nil); err != nil {
		return nil, err
	}
	inPart := func(t int64) bool { return t >= c.from && t < c.cF || t >= c.fT && t < c.to }
	wopts := c.opts
	wopts.Keep = func(b *Biflow) bool { return inPart(b.First) }
	pairs := c.opts.Rules != nil && c.opts.Rules.UsesPair()
	whole := buildPart(edge, wopts, pairs)
	filter := c.p.Options().Keep

	interior := &Part{agg: newUsageAcc()}
	edges := &Part{agg: newUsageAcc()}
	var records store.RollupUsage
	for _, sp := range c.cellSpans {
		cell := func(k *store.RollupKey, cl *store.RollupCell) error {
			switch k.Kind {
			case store.RollupRecords:
				records.Add(&cl.RollupUsage)
			case store.RollupBiflows:
				// The summary's flows, span and duplicates are the
				// kept biflows' (as the records' report by start).
				if u := c.addCell(interior.agg, k, cl); u != nil {
					interior.Merged += int(u.Merged)
					interior.Flows += int(u.Flows)
					interior.span(u.First, u.Last)
				}
			}
			return ctx.Err()
		}
		if err := c.s.Rollups(sp.res, sp.from, sp.to, cell); err != nil {
			return nil, err
		}
		for k, cl := range pending[sp.res] {
			if k.Bucket >= sp.from && k.Bucket < sp.to {
				if err := cell(&k, cl); err != nil {
					return nil, err
				}
			}
		}
	}
	if records.Late > 0 {
		return nil, &RollupError{fmt.Sprintf("%d records of the range reached them late", records.Late)}
	}
	if err := c.lateAround(loL, hiH); err != nil {
		return nil, err
	}
	interior.SamplingUnknown = records.Unscaled
	n := 0
	for i := range whole.Biflows {
		b := &whole.Biflows[i]
		if filter == nil || filter(b) {
			edges.Merged += b.Merged
			edges.agg.add(b, &c.opts)
			n++
			edges.Flows += b.Flows
			edges.span(b.First, b.Last)
		}
	}
	smp := newSamplingIndex(c.opts.Announcements, c.opts.Names)
	for i := range edge {
		r := &edge[i].Record
		if !inPart(r.First) {
			continue
		}
		if _, _, unknown := smp.resolve(edge[i].Origin, r); unknown {
			edges.SamplingUnknown++
		}
	}
	return c.assemble(interior, edges, &EdgeInfo{Records: len(edge), Biflows: n, From: Timestamp(c.cF), To: Timestamp(c.fT)}), nil
}

// assemble is the composed report: the interior's cells and the edges'
// part, usage only, its rollup information at the finest resolution
// the cells were read in, with what the edges held.
func (c *composer) assemble(interior, edges *Part, info *EdgeInfo) *Report {
	opts := c.opts
	opts.usageOnly = true
	rep := Assemble([]*Part{interior, edges}, opts)
	res := c.cellSpans[0].res
	for _, sp := range c.cellSpans {
		res = max(res, sp.res)
	}
	rep.Summary.Rollup = &RollupInfo{Resolution: res.String(), Complete: true, Edges: info}
	return rep
}

// edgesUsable says why the records read around the bounds ([loL, hiL]
// around --from, [loH, hiH] around --to) cannot compose the report, if
// they cannot: they meet, biflows near --to may not be rolled up yet
// (unless live, the pending cells read too), or retention deleted
// records near --from.
func (c *composer) edgesUsable(loL, hiL, loH, hiH int64, live bool) error {
	if hiL > loH {
		return &RollupError{"the records around --from and --to meet"}
	}
	if hiH > c.meta.CompleteBefore && !live {
		return &RollupError{"biflows near --to may still be pending (not rolled up yet)"}
	}
	if pb, ok, err := c.s.PrunedBefore(); err != nil {
		return err
	} else if ok && pb > loL {
		return &RollupError{"retention deleted records near --from"}
	}
	return nil
}
