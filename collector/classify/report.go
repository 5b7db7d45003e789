package classify

import (
	"net/netip"
	"time"

	"github.com/mira-project/mira/flow"
)

// Input is what the rules read of a biflow: the connection, its symptom
// occurrences by name (both directions) and its aggregate's name. The
// report (collector/report) names a consolidated biflow and hands it in.
type Input struct {
	*flow.Biflow
	Symptoms  map[string]uint64
	Aggregate string
}

// PairWindow is how far apart in time two biflows between the same
// addresses may be and still be each other's pair context.
const PairWindow = 60 * time.Second

type hostPair struct{ a, b netip.Addr }

func pairOf(b *flow.Biflow) hostPair {
	if b.Dst.Less(b.Src) {
		return hostPair{b.Dst, b.Src}
	}
	return hostPair{b.Src, b.Dst}
}

// indexed is one biflow of an Index: its identity (key and start), time
// span and symptoms.
type indexed struct {
	key         flow.Key
	first, last int64
	symptoms    map[string]uint64
}

// Index is the pair context of a set of biflows: per address pair, the
// biflows between them with their time spans and symptoms.
type Index struct {
	pairs map[hostPair][]indexed
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{pairs: make(map[hostPair][]indexed)}
}

// Add indexes in (keeping its Symptoms map; do not change it afterwards).
func (ix *Index) Add(in *Input) {
	if len(in.Symptoms) == 0 {
		return // adds nothing to any context
	}
	k := pairOf(in.Biflow)
	ix.pairs[k] = append(ix.pairs[k], indexed{in.Key, in.First, in.Last, in.Symptoms})
}

// Pair returns the symptom counts of the indexed biflows between in's two
// addresses, other than in itself (same key and start), whose time spans
// come within PairWindow of in's; nil when there are none or ix is nil.
func (ix *Index) Pair(in *Input) map[string]int {
	if ix == nil {
		return nil
	}
	var out map[string]int
	w := int64(PairWindow)
	for _, o := range ix.pairs[pairOf(in.Biflow)] {
		if (o.key == in.Key && o.first == in.First) || o.first > in.Last+w || o.last+w < in.First {
			continue
		}
		if out == nil {
			out = make(map[string]int)
		}
		for name, n := range o.symptoms {
			out[name] += clampInt(n)
		}
	}
	return out
}

// Classify returns the category of the first rule that holds for in with
// the pair context from ix (nil: empty), or "" when none does (so that
// the probe's fast-class category or the report's default applies).
func (r *Rules) Classify(in *Input, ix *Index) string {
	c, _, _ := r.Match(in, ix.Pair(in))
	return c
}

// Forget drops the biflows that cannot be in the pair context of any
// biflow starting at or after t (they ended more than PairWindow before
// it), so that an index kept while biflows stream in stays bounded.
func (ix *Index) Forget(t int64) {
	w := int64(PairWindow)
	for k, l := range ix.pairs {
		n := 0
		for _, o := range l {
			if o.last+w >= t {
				l[n] = o
				n++
			}
		}
		if n == 0 {
			delete(ix.pairs, k)
			continue
		}
		clear(l[n:])
		ix.pairs[k] = l[:n]
	}
}
