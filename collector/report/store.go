package report

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// ReadFlows loads the flows q selects from s, stopping when ctx is done.
func ReadFlows(ctx context.Context, s *store.Store, q store.Query) ([]store.StoredFlow, error) {
	var flows []store.StoredFlow
	err := s.Flows(q, func(f store.StoredFlow) error {
		if len(flows)%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		flows = append(flows, f)
		return nil
	})
	return flows, err
}

// readMatching is ReadFlows keeping the records match accepts (all when
// match is nil).
func readMatching(ctx context.Context, s *store.Store, q store.Query, match func(*flow.Record) bool) ([]store.StoredFlow, error) {
	var flows []store.StoredFlow
	n := 0
	err := s.Flows(q, func(f store.StoredFlow) error {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		n++
		if match == nil || match(&f.Record) {
			flows = append(flows, f)
		}
		return nil
	})
	return flows, err
}

// NamedOptions sets o.Names from the store's names per origin when o has
// none.
func NamedOptions(s *store.Store, o *Options) error {
	if o.Names != nil {
		return nil
	}
	var err error
	o.Names, err = s.NameIndex()
	return err
}

// FromStore builds the report over every flow in s (see FromStoreQuery).
func FromStore(s *store.Store, opts Options) (*Report, error) {
	return FromStoreQuery(context.Background(), s, store.Query{}, opts)
}

// FromStoreQuery builds the report over the flows of s that q selects,
// with the options StoreInputs fills from the store.
func FromStoreQuery(ctx context.Context, s *store.Store, q store.Query, opts Options) (*Report, error) {
	flows, err := StoreInputs(ctx, s, q, &opts)
	if err != nil {
		return nil, err
	}
	if err := checkOverrides(flows, opts.Overrides); err != nil {
		return nil, err
	}
	rep := Build(flows, opts)
	if q.From.IsZero() {
		if err := notePruned(s, &rep.Summary); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// checkOverrides refuses a sampling override (--sampling EXPORTER=...)
// of an exporter none of the flows came from, naming it and those they
// came from: it applied to nothing, silently (a mistyped address, or a
// probe's name where the records' exporter address is meant). A range
// without records is not refused: the report is empty anyway.
func checkOverrides(flows []store.StoredFlow, ov map[string]consolidate.Override) error {
	if len(ov) == 0 || len(flows) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for i := range flows {
		seen[flows[i].Origin.Exporter] = true
	}
	return missingOverrides(seen, ov)
}

// CheckOverrides is checkOverrides over parts BuildPart made with the
// overrides ov (a cluster's workers' and the reporter's parts): the
// exporters of their records together (Part.Exporters) must include
// every exporter ov names. Parts without records are not refused.
func CheckOverrides(parts []*Part, ov map[string]consolidate.Override) error {
	if len(ov) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, p := range parts {
		for _, e := range p.Exporters {
			seen[e] = true
		}
	}
	if len(seen) == 0 {
		return nil
	}
	return missingOverrides(seen, ov)
}

// OverrideError refuses sampling overrides (--sampling EXPORTER=...) of
// exporters none of a report's records came from (Missing), naming
// those they came from (Present). An HTTP API answers it as a bad
// parameter.
type OverrideError struct {
	Missing, Present []string
}

func (e *OverrideError) Error() string {
	return fmt.Sprintf("--sampling: no records from exporter %s in the report's range (records from: %s)",
		strings.Join(quoteAll(e.Missing), ", "), strings.Join(e.Present, ", "))
}

// missingOverrides is the OverrideError naming the exporters ov names
// that are not in seen (the exporters the report's records came from).
func missingOverrides(seen map[string]bool, ov map[string]consolidate.Override) error {
	var missing []string
	for e := range ov {
		if !seen[e] {
			missing = append(missing, e)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return &OverrideError{Missing: missing, Present: slices.Sorted(maps.Keys(seen))}
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

// notePruned says in sum where an open range over s's records starts
// when retention deleted records (store.PrunedBefore).
func notePruned(s *store.Store, sum *Summary) error {
	pb, ok, err := s.PrunedBefore()
	if err != nil || !ok {
		return err
	}
	NoteRecordsPruned(sum, pb)
	return nil
}

// NoteRecordsPruned sets sum's RecordsPrunedBefore and RecordsNote: the
// records that ended before pb (ns) may have been deleted by retention.
func NoteRecordsPruned(sum *Summary, pb int64) {
	t := Timestamp(pb)
	sum.RecordsPrunedBefore = &t
	sum.RecordsNote = fmt.Sprintf("records kept from %s (retention): records that ended earlier were deleted and are not counted", t.RFC3339())
}

// StoreInputs reads what a report over store s needs: the flows q
// selects, and what opts leaves unset from the store: Names from its
// names per origin, Announcements from its sampling announcements, Stats from
// its saved collector counters (when any were saved), StoreErrors from
// the records the scan could not decode.
//
// A query by start (store.ByStart, --started) selects the biflows that
// started in [From, To): StoreInputs reads the records active from
// StartedMargin before From on (a connection that started in the range
// may go on after it; those before the margin cannot be of such a
// biflow nor change how the later ones pair) and sets opts.Keep to keep
// only the biflows whose start is in the range, so that they are the
// report's over all the records (--bucket's cells) with that start.
func StoreInputs(ctx context.Context, s *store.Store, q store.Query, opts *Options) ([]store.StoredFlow, error) {
	if q.Field == store.ByStart {
		q = StartedRead(q, opts)
	}
	flows, err := readMatching(ctx, s, q, opts.Match)
	if err != nil {
		return nil, err
	}
	return flows, storeOptions(s, opts)
}

// storeOptions fills what opts leaves unset from s (StoreInputs).
func storeOptions(s *store.Store, opts *Options) error {
	if err := NamedOptions(s, opts); err != nil {
		return err
	}
	var err error
	if opts.Announcements == nil {
		if opts.Announcements, err = s.Announcements(); err != nil {
			return err
		}
	}
	if opts.Stats == nil {
		st, err := s.Stats()
		if err != nil {
			return err
		}
		if !st.Updated.IsZero() {
			opts.Stats = &st
		}
	}
	if opts.StoreErrors == nil {
		opts.StoreErrors = s.DecodeErrors()
	}
	if opts.Ledgers == nil {
		if opts.Ledgers, err = s.Ledgers(); err != nil {
			return err
		}
	}
	return nil
}

// StartedMargin is how long before --from a report by start
// (--started) reads the records active then: two pairing windows (a
// record joins its connection within a window of the connection's last
// end, and duplicates of other probes likewise) and the pair context of
// the classification (classify.PairWindow).
func StartedMargin(window time.Duration) time.Duration {
	if window <= 0 {
		window = DefaultWindow
	}
	return 2*window + classify.PairWindow
}

// StartedRead turns q, a query by start (store.ByStart), into the query
// the report reads (the records active from StartedMargin before From
// on) and chains to opts.Keep the check that a biflow started in
// [From, To).
func StartedRead(q store.Query, opts *Options) store.Query {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		to = q.To.UnixNano()
	}
	keep := opts.Keep
	opts.Keep = func(b *Biflow) bool {
		return int64(b.First) >= from && int64(b.First) < to && (keep == nil || keep(b))
	}
	r := q
	r.Field = store.Overlap
	if !q.From.IsZero() {
		r.From = q.From.Add(-StartedMargin(opts.Window))
	}
	r.To = time.Time{}
	return r
}

// FlowsFromStore lists the flows of s that q selects, named by their
// origins' names (the listing of `mira flows`); with opts.Rules, each
// flow's category is its biflow's in the report over the same flows.
func FlowsFromStore(ctx context.Context, s *store.Store, q store.Query, opts Options) (*FlowList, error) {
	flows, err := readMatching(ctx, s, q, opts.Match)
	if err != nil {
		return nil, err
	}
	if opts.StoreErrors == nil {
		opts.StoreErrors = s.DecodeErrors()
	}
	if err := NamedOptions(s, &opts); err != nil {
		return nil, err
	}
	if opts.Announcements == nil {
		// Each flow's sampling, and the categories of the report's
		// biflows, by the sampling announced as the report's are.
		if opts.Announcements, err = s.Announcements(); err != nil {
			return nil, err
		}
	}
	return ListFlows(flows, opts), nil
}

// Write writes the report in format: "json", "csv" or "table".
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		return r.WriteJSON(w)
	case "csv":
		return r.WriteCSV(w)
	case "table":
		return r.WriteTable(w)
	}
	return fmt.Errorf("unknown report format %q (want table, json or csv)", format)
}

// Write writes the listing in format: "json", "csv" or "table".
func (l *FlowList) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		return l.WriteJSON(w)
	case "csv":
		return l.WriteCSV(w)
	case "table":
		return l.WriteTable(w)
	}
	return fmt.Errorf("unknown flow listing format %q (want table, json or csv)", format)
}
