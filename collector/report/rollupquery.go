package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
)

// RollupError says why a report cannot be answered from the rollups.
type RollupError struct{ Reason string }

func (e *RollupError) Error() string { return "the rollups cannot answer this report: " + e.Reason }

// RollupSource identifies what a report was made with, for
// FromRollups: the fingerprints of its classification rules and AS
// table (Fingerprint; "" for none).
type RollupSource struct {
	RulesID, ASID string
	// Live, when set, calls read with the cells of what a running
	// collector's Roller holds but has not stored yet (Roller.Pending),
	// while no commit changes the store: the answer then covers every
	// stored record (complete) however recent.
	Live func(read func(pending map[time.Duration]map[store.RollupKey]*store.RollupCell) error) error
}

// CanUseRollups says whether the rollups of a store can answer p: no
// record-level filter (--host, --port, --proto, --exporter, --domain),
// no --sampling override, no --no-dedup, the rollups' window, a grouping
// other than host (and not symptom with --symptom), --from, --to and
// --bucket on whole minutes. The rollups' own parameters (rules, AS
// table, window, retention) FromRollups checks against the store.
func (p *Params) CanUseRollups() error { return p.canUseRollups(true) }

// canUseRollups is CanUseRollups; bounds says --from and --to must be
// on whole minutes (composing takes them anywhere).
func (p *Params) canUseRollups(bounds bool) error {
	switch {
	case p.Host != "" || p.Port >= 0 || p.Proto != "":
		return &RollupError{"--host, --port and --proto select records"}
	case p.Exporter != "" || p.Domain >= 0:
		return &RollupError{"--exporter and --domain select records"}
	case len(p.Overrides) > 0:
		return &RollupError{"--sampling overrides scale records"}
	case p.NoDedup:
		return &RollupError{"--no-dedup keeps the duplicates the rollups dropped"}
	case p.By == ByHost:
		return &RollupError{"--by host is not rolled up"}
	case p.By == ByApp || p.App != "":
		return &RollupError{"applications are not rolled up"}
	case p.By == BySymptom && p.Symptom != "":
		return &RollupError{"--by symptom with --symptom needs the biflows"}
	}
	for _, t := range []time.Time{p.Query.From, p.Query.To} {
		if bounds && !t.IsZero() && t.UnixNano()%int64(time.Minute) != 0 {
			return &RollupError{reasonUnaligned}
		}
	}
	if p.Bucket > 0 && p.Bucket%time.Minute != 0 {
		return &RollupError{"--bucket must be whole minutes"}
	}
	return nil
}

// FromRollups answers the report p describes from the rollups of s: the
// usage table and the summary of the biflows that started in [--from,
// --to), as the report over all the stored records gives them (see
// Roller for the exactness rule), without the list of biflows. The
// hour cells are read when the range and bucket are whole hours, else
// the minute cells. It returns a *RollupError when the rollups cannot
// answer (CanUseRollups, or other rules, AS table or window, or a range
// retention pruned).
func FromRollups(ctx context.Context, s *store.Store, p *Params, src RollupSource) (*Report, error) {
	if err := p.CanUseRollups(); err != nil {
		return nil, err
	}
	meta, err := checkRollupMeta(s, p, src)
	if err != nil {
		return nil, err
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !p.Query.From.IsZero() {
		from = p.Query.From.UnixNano()
	}
	if !p.Query.To.IsZero() {
		to = p.Query.To.UnixNano()
	}
	var res time.Duration
	for _, r := range []time.Duration{store.RollupHour, store.RollupMinute} {
		aligned := (from == math.MinInt64 || from%int64(r) == 0) && (to == math.MaxInt64 || to%int64(r) == 0) &&
			(p.Bucket == 0 || p.Bucket%r == 0)
		lo := from
		if lo == math.MinInt64 {
			// An open range starts with the oldest bucket kept at
			// either resolution: the one reaching further back answers
			// (the hours on a tie), and says where it starts
			// (RollupInfo.CoveredFrom).
			lo = min(meta.PrunedBeforeAt(store.RollupHour), meta.PrunedBeforeAt(store.RollupMinute))
		}
		if aligned && lo >= meta.PrunedBeforeAt(r) {
			res = r
			break
		}
	}
	if res == 0 {
		return nil, &RollupError{"retention pruned the rollups of that range at the resolution it needs"}
	}

	rep := &Report{Biflows: []Biflow{}, Usage: []UsageRow{}, by: p.By}
	s2 := &rep.Summary
	type ukey struct {
		agg, cat, probe, symptom string
		src, dst                 uint32
		bucket                   int64
	}
	rows := map[ukey]*UsageRow{}
	var total, records store.RollupUsage
	var merged uint64
	agg, anyAgg := p.Aggregate, p.Aggregate == ""
	if agg == "-" {
		agg = ""
	}
	// Filtered or by start (--started), the summary's flows and span
	// are the biflows' (as the records' report gives them: it keeps
	// the biflows), else the records'.
	keep := p.Aggregate != "" || p.Category != "" || p.Symptom != "" || p.Started
	addRow := func(k ukey, u *store.RollupUsage) {
		if p.Bucket > 0 {
			k.bucket = k.bucket - mod(k.bucket, int64(p.Bucket))
		} else {
			k.bucket = 0
		}
		row := rows[k]
		if row == nil {
			row = &UsageRow{Aggregate: k.agg, Category: k.cat, Probe: k.probe, SrcAS: k.src, DstAS: k.dst, Symptom: k.symptom}
			if p.Bucket > 0 {
				bt := Timestamp(k.bucket)
				row.Bucket = &bt
			}
			rows[k] = row
		}
		row.Biflows += int(u.Biflows)
		row.Packets = consolidate.SatAdd(row.Packets, u.Packets)
		row.Octets = consolidate.SatAdd(row.Octets, u.Octets)
		row.Hits = consolidate.SatAdd(row.Hits, u.Hits)
		row.Merged += int(u.Merged)
		row.est.Merge(sumOf(u))
		row.sampled = row.sampled || u.Sampled
		row.pktSmp = row.pktSmp || (u.Sampled && u.PacketSampled)
	}
	n := 0
	cell := func(k *store.RollupKey, c *store.RollupCell) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if k.Kind == store.RollupRecords {
			records.Add(&c.RollupUsage)
			return nil
		}
		if k.Kind != store.RollupBiflows {
			return nil
		}
		merged += c.Merged
		if !(anyAgg || k.Aggregate == agg) || (p.Category != "" && k.Category != p.Category) {
			return nil
		}
		u := &c.RollupUsage
		if p.Symptom != "" {
			u = nil
			for i := range c.Symptoms {
				if c.Symptoms[i].Name == p.Symptom {
					x := c.Symptoms[i].RollupUsage
					x.Hits = 0
					u = &x
					break
				}
			}
			if u == nil {
				return nil
			}
		}
		total.Add(u)
		uk := ukey{agg: k.Aggregate, cat: k.Category, bucket: k.Bucket}
		switch p.By {
		case ByAggregate:
			uk.cat = ""
		case ByCategory:
			uk.agg = ""
		case ByProbe:
			uk = ukey{probe: k.Probe, bucket: k.Bucket}
		case ByAS:
			uk = ukey{src: k.SrcAS, dst: k.DstAS, bucket: k.Bucket}
		case BySymptom:
			for i := range c.Symptoms {
				addRow(ukey{symptom: c.Symptoms[i].Name, bucket: k.Bucket}, &c.Symptoms[i].RollupUsage)
			}
			return nil
		}
		addRow(uk, u)
		return nil
	}
	// An open range reads from the oldest bucket kept: cells the
	// collector holds (src.Live) of pruned buckets are not counted
	// either (RollupInfo.CoveredFrom).
	lo := max(from, meta.PrunedBeforeAt(res))
	scan := func(pending map[time.Duration]map[store.RollupKey]*store.RollupCell) error {
		if err := s.Rollups(res, lo, to, cell); err != nil {
			return err
		}
		for k, c := range pending[res] {
			if k.Bucket >= lo && k.Bucket < to {
				if err := cell(&k, c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if src.Live != nil {
		err = src.Live(scan)
	} else {
		err = scan(nil)
	}
	if err != nil {
		return nil, err
	}

	conf := p.Confidence
	if conf <= 0 || conf >= 1 {
		conf = 0.95
	}
	z := consolidate.NormalQuantile(0.5 + conf/2)
	s2.Biflows = int(total.Biflows)
	s2.Packets, s2.Octets = total.Packets, total.Octets
	// The duplicates of the report's biflows: of those kept, filtered.
	s2.Merged = int(merged)
	if keep {
		s2.Merged = int(total.Merged)
	}
	s2.SamplingUnknown = records.Unscaled
	span := records
	s2.Flows = int(records.Flows)
	if keep {
		span = total
		s2.Flows = int(total.Flows)
	}
	if span.Biflows > 0 || span.Flows > 0 {
		f, l := Timestamp(span.First), Timestamp(span.Last)
		s2.First, s2.Last = &f, &l
	}
	est := sumOf(&total).Estimate()
	s2.EstimatedOctets = max(consolidate.Round(est.Octets), s2.Octets)
	if total.Sampled {
		s2.Estimate = makeEstimate(&est, z, conf, s2.Biflows, s2.Packets, s2.Octets, total.PacketSampled)
	}
	for _, row := range rows {
		est := row.est.Estimate()
		row.EstimatedOctets = max(consolidate.Round(est.Octets), row.Octets)
		if row.sampled {
			row.Estimate = makeEstimate(&est, z, conf, row.Biflows, row.Packets, row.Octets, row.pktSmp)
		}
		rep.Usage = append(rep.Usage, *row)
	}
	sortUsage(rep.Usage)
	s2.EstimatedPackets, s2.EstimatedPacketsLow, s2.EstimatedPacketsHigh = s2.Packets, s2.Packets, s2.Packets
	s2.EstimatedOctetsLow, s2.EstimatedOctetsHigh = s2.EstimatedOctets, s2.EstimatedOctets
	if e := s2.Estimate; e != nil {
		s2.EstimatedPackets, s2.EstimatedPacketsLow, s2.EstimatedPacketsHigh = e.Packets, e.PacketsLow, e.PacketsHigh
		s2.EstimatedOctetsLow, s2.EstimatedOctetsHigh = min(e.OctetsLow, s2.EstimatedOctets), max(e.OctetsHigh, s2.EstimatedOctets)
	}

	// What the store keeps besides the records: counters, ledgers,
	// sampling changes (as StoreInputs reads them).
	opts := Options{}
	if opts.Announcements, err = s.Announcements(); err != nil {
		return nil, err
	}
	st, err := s.Stats()
	if err != nil {
		return nil, err
	}
	if !st.Updated.IsZero() {
		opts.Stats = &st
		s2.Messages, s2.Records, s2.Lost = &st.Messages, &st.Records, &st.Lost
		s2.SocketDrops, s2.Dropped = st.SocketDrops, st.Dropped
		s2.Malformed, s2.Evicted, s2.DecodeErrors = st.Malformed, st.Evicted, st.DecodeErrors
	}
	if e := s.DecodeErrors(); len(e) > 0 {
		opts.StoreErrors = e
		s2.StoreErrors = e
	}
	if opts.Ledgers, err = s.Ledgers(); err != nil {
		return nil, err
	}
	s2.Loss, s2.Ledgers = lossLedger(&opts)
	s2.RegulationChanges = regulationChanges(opts.Announcements, opts.Ledgers)
	s2.QueueLossScaled = queueLossScaled(s2.Ledgers)
	s2.Rollup = &RollupInfo{Resolution: res.String(), Late: records.Late, Complete: to <= meta.CompleteBefore || src.Live != nil}
	if pb := meta.PrunedBeforeAt(res); from == math.MinInt64 && pb != math.MinInt64 {
		// An open range covers what retention kept: say where it starts.
		t := Timestamp(pb)
		s2.Rollup.CoveredFrom = &t
		s2.Rollup.Note = fmt.Sprintf("rollups kept from %s (retention): biflows that started earlier are not counted", t.RFC3339())
	}
	if meta.CompleteBefore != math.MaxInt64 && src.Live == nil {
		t := Timestamp(meta.CompleteBefore)
		s2.Rollup.CompleteBefore = &t
	}
	return rep, nil
}

// checkRollupMeta reads the meta of s's rollups and checks they were
// made as p needs (window, rules, AS table), else a *RollupError.
func checkRollupMeta(s *store.Store, p *Params, src RollupSource) (store.RollupMeta, error) {
	meta, err := s.RollupMeta()
	if errors.Is(err, store.ErrNoRollups) {
		return meta, &RollupError{"the store keeps no rollups (mira rollup --db FILE makes them)"}
	}
	if err != nil {
		return meta, err
	}
	window := p.Window
	if window <= 0 {
		window = DefaultWindow
	}
	switch {
	case meta.Window != window:
		return meta, &RollupError{fmt.Sprintf("they pair with a window of %v, not %v", meta.Window, window)}
	case meta.Rules != src.RulesID:
		return meta, &RollupError{"they were classified with other rules, or made by an older build's consolidation (mira rollup remakes them)"}
	case p.By == ByAS && (src.ASID == "" || meta.AS != src.ASID):
		return meta, &RollupError{"they were made with another AS table (collector.yaml as:)"}
	}
	return meta, nil
}

// RollupInfo says a report was answered from the rollups (Summary.Rollup).
type RollupInfo struct {
	// Resolution of the cells read: "1m0s" or "1h0m0s".
	Resolution string `json:"resolution"`
	// CompleteBefore: biflows that started later may still be pending in
	// the collector (absent: every stored record is in the rollups).
	CompleteBefore *Timestamp `json:"complete_before,omitempty"`
	// Complete: every biflow that started in the range is in the
	// rollups (the range ends before CompleteBefore).
	Complete bool `json:"complete"`
	// Late counts the records of the range that reached the rollups
	// after their horizon (see Roller): complete and 0 late, the answer
	// equals the report over the records.
	Late uint64 `json:"late_records"`
	// CoveredFrom, for a range without --from whose oldest buckets
	// rollup retention (minute_retention, hour_retention) deleted: the
	// start of the oldest bucket kept, where the report actually starts
	// (absent: nothing of the range was pruned). Note says it in words
	// and whether stored records reach further back. Complete and Late
	// speak of the range from CoveredFrom on.
	CoveredFrom *Timestamp `json:"covered_from,omitempty"`
	Note        string     `json:"note,omitempty"`
	// Edges, when set, says the report was composed: the cells of the
	// whole minutes inside --from and --to, corrected by the records
	// around the bounds (auto, when records lie across a bound or the
	// bounds are inside minutes). Its usage table and summary equal
	// the report over the records.
	Edges *EdgeInfo `json:"edges,omitempty"`
}

// Notes appended to RollupInfo.Note when the rollups were cut
// (CoveredFrom): whether the records reach further back.
const (
	noteNoEarlierRecords = "; no stored record started earlier"
	noteEarlierRecords   = "; stored records reach further back (--source records counts them)"
)

// RecordsBefore says whether s holds a record that started before t
// (ns).
func RecordsBefore(s *store.Store, t int64) (bool, error) {
	found := false
	err := s.Flows(store.Query{To: time.Unix(0, t), Field: store.ByStart}, func(store.StoredFlow) error {
		found = true
		return store.ErrStop
	})
	return found, err
}

// PreferRecords is the cut rollups' rule, for a single collector and a
// cluster alike: when rep came from rollups that retention cut
// (CoveredFrom) and earlier says whether stored records started before
// that, it notes it; for auto it says whether the records should
// answer instead (they reach further back).
func PreferRecords(rep *Report, source string, earlier bool) bool {
	ri := rep.Summary.Rollup
	if ri == nil || ri.CoveredFrom == nil {
		return false
	}
	if earlier && source == SourceAuto {
		return true
	}
	if earlier {
		ri.Note += noteEarlierRecords
	} else {
		ri.Note += noteNoEarlierRecords
	}
	return false
}

// BoundsCrossed says whether a record of s lies across --from or --to,
// or ends within the pairing window before one: then the rollups, which
// count whole biflows by their start, may differ from the report over
// the records, which takes the records active in [--from, --to) (a
// biflow that started before --from but has records after it, or that
// has records starting after --to: continuations, the other direction).
// Auto then answers from the records. The scan stops at the first such
// record; it reads at most the records that end within a window and the
// longest flow around each bound.
//
// With --started the report selects whole biflows by their start too:
// no bound is crossed.
func (p *Params) BoundsCrossed(s *store.Store) (bool, error) {
	if p.Started {
		return false, nil
	}
	window := p.Window
	if window <= 0 {
		window = DefaultWindow
	}
	for _, b := range []time.Time{p.Query.From, p.Query.To} {
		if b.IsZero() {
			continue
		}
		found := false
		err := s.Flows(store.Query{From: b.Add(-window), To: b, Exporter: p.Query.Exporter, Domain: p.Query.Domain, HasDomain: p.Query.HasDomain},
			func(store.StoredFlow) error {
				found = true
				return store.ErrStop
			})
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// Sources of a report (Params.Source).
const (
	SourceRecords = "records"
	SourceRollups = "rollups"
	SourceAuto    = "auto"
	// SourceComposed is not a source one asks for: /api/rollups says
	// it when auto composes (RollupInfo.Edges).
	SourceComposed = "composed"
)

// Report builds the report p describes over s with opts: from the
// records, from the rollups (SourceRollups: a *RollupError when they
// cannot answer), or from the rollups when they can answer exactly
// (complete for the range, no late record, no record across a bound of
// the range (BoundsCrossed) and, for a range retention cut, no record
// older than the rollups kept), else, when only a record across a
// bound or bounds inside minutes kept them from it, composed from the
// rollups of the whole minutes inside the range and the records around
// its bounds (see compose.go; RollupInfo.Edges), and else from the
// records (SourceAuto; with RollupsOnly, the *RollupError saying why
// instead of the records' report).
func (p *Params) Report(ctx context.Context, s *store.Store, opts Options, src RollupSource) (*Report, error) {
	if p.Source == SourceRollups || p.Source == SourceAuto {
		rep, err := p.rollupsAnswer(ctx, s, src)
		var re *RollupError
		switch {
		case err == nil:
			return rep, nil
		case p.Source == SourceRollups || !errors.As(err, &re):
			return nil, err
		}
		if re.Reason == reasonCrossed || re.Reason == reasonUnaligned {
			rep, cerr := p.composed(ctx, s, opts, src)
			var ce *RollupError
			switch {
			case cerr == nil:
				return rep, nil
			case !errors.As(cerr, &ce):
				return nil, cerr
			}
			err = &RollupError{re.Reason + "; not composed: " + ce.Reason}
		}
		if p.RollupsOnly {
			return nil, err
		}
	}
	return FromStoreQuery(ctx, s, p.Query, opts)
}

// rollupsAnswer is the report from the rollups p.Source (SourceRollups
// or SourceAuto) takes, or a *RollupError saying why it takes none (for
// auto: why the records answer).
func (p *Params) rollupsAnswer(ctx context.Context, s *store.Store, src RollupSource) (*Report, error) {
	rep, err := FromRollups(ctx, s, p, src)
	if err != nil {
		return nil, err
	}
	ri := rep.Summary.Rollup
	if ri.CoveredFrom != nil {
		earlier, err := RecordsBefore(s, int64(*ri.CoveredFrom))
		if err != nil {
			return nil, err
		}
		if PreferRecords(rep, p.Source, earlier) {
			return nil, &RollupError{"retention pruned rollups the records reach before (" + ri.CoveredFrom.RFC3339() + ")"}
		}
	}
	switch {
	case p.Source == SourceRollups:
		return rep, nil
	case !ri.Complete:
		return nil, &RollupError{"biflows of the range may still be pending (not rolled up yet)"}
	case ri.Late > 0:
		return nil, &RollupError{fmt.Sprintf("%d records of the range reached them late", ri.Late)}
	}
	crossed, err := p.BoundsCrossed(s)
	if err != nil {
		return nil, err
	}
	if crossed {
		return nil, &RollupError{reasonCrossed}
	}
	return rep, nil
}

// sumOf returns the estimator sums of u.
func sumOf(u *store.RollupUsage) *consolidate.EstimateSum {
	return &consolidate.EstimateSum{Biflows: u.EstBiflows, Packets: u.EstPackets, Octets: u.EstOctets,
		VarBiflows: u.VarBiflows, VarPackets: u.VarPackets, VarOctets: u.VarOctets}
}
