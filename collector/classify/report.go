package classify

import (
	"context"
	"net/netip"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
)

// PairWindow is how far apart in time two biflows between the same
// addresses may be and still be each other's pair context.
const PairWindow = 60 * time.Second

type hostPair struct{ a, b netip.Addr }

func pairOf(b *report.Biflow) hostPair {
	if b.Dst.Less(b.Src) {
		return hostPair{b.Dst, b.Src}
	}
	return hostPair{b.Src, b.Dst}
}

type biflowID struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	vlan         uint16
	first        report.Timestamp
}

func idOf(b *report.Biflow) biflowID {
	return biflowID{b.Src, b.Dst, b.Sport, b.Dport, b.Proto, b.VLAN, b.First}
}

// Index is the pair context of a set of biflows: per address pair, the
// biflows between them with their time spans and symptoms.
type Index struct {
	pairs map[hostPair][]*report.Biflow
}

// NewIndex indexes bs (which it keeps; do not change them afterwards).
func NewIndex(bs []report.Biflow) *Index {
	ix := &Index{pairs: make(map[hostPair][]*report.Biflow)}
	for i := range bs {
		b := &bs[i]
		if len(b.Symptoms) == 0 {
			continue // adds nothing to any context
		}
		k := pairOf(b)
		ix.pairs[k] = append(ix.pairs[k], b)
	}
	return ix
}

// Pair returns the symptom counts of the indexed biflows between b's two
// addresses, other than b itself, whose time spans come within PairWindow
// of b's; nil when there are none.
func (ix *Index) Pair(b *report.Biflow) map[string]int {
	if ix == nil {
		return nil
	}
	var out map[string]int
	self := idOf(b)
	w := report.Timestamp(PairWindow)
	for _, o := range ix.pairs[pairOf(b)] {
		if idOf(o) == self || o.First > b.Last+w || o.Last+w < b.First {
			continue
		}
		if out == nil {
			out = make(map[string]int)
		}
		for name, n := range o.Symptoms {
			out[name] += clampInt(n)
		}
	}
	return out
}

// FuncWith returns a report.Options.Classify function that evaluates pair
// from ix.
func (r *Rules) FuncWith(ix *Index) func(*report.Biflow) string {
	return func(b *report.Biflow) string {
		c, _, _ := r.Match(b, ix.Pair(b))
		return c
	}
}

// Build is report.Build with the rules as opts.Classify. When the rules
// use pair it pairs the flows twice: once to index every biflow, once to
// classify with that index. opts.Classify is replaced.
func (r *Rules) Build(flows []store.StoredFlow, opts report.Options) *report.Report {
	if !r.usePair {
		opts.Classify = r.Func()
		return report.Build(flows, opts)
	}
	first := opts
	first.Classify, first.Limit, first.Stats, first.StoreErrors = nil, 0, nil, nil
	ix := NewIndex(report.Build(flows, first).Biflows)
	opts.Classify = r.FuncWith(ix)
	return report.Build(flows, opts)
}

// FromStore is report.FromStoreQuery classified by the rules (see Build):
// the flows and the options opts leaves unset come from the store
// (report.StoreInputs).
func (r *Rules) FromStore(ctx context.Context, s *store.Store, q store.Query, opts report.Options) (*report.Report, error) {
	flows, err := report.StoreInputs(ctx, s, q, &opts)
	if err != nil {
		return nil, err
	}
	return r.Build(flows, opts), nil
}
