package classify

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mira-project/mira/flow"
)

// Input is what the rules read of a biflow: the connection, its symptom
// occurrences by name (both directions) and its aggregate's name. The
// report (collector/report) names a consolidated biflow and hands it in.
type Input struct {
	*flow.Biflow
	Symptoms map[string]uint64
	// Counts are the symptom occurrences when Symptoms is nil, each name
	// at most once (a list is cheaper to make than a map: the rollups'
	// biflows carry one).
	Counts    []NamedCount
	Aggregate string
	// App is the biflow's application metadata (nil: none); the pair
	// context reads the FTP data ports a control connection announced.
	App *flow.App
}

// NamedCount is a symptom's occurrences (Input.Counts).
type NamedCount struct {
	Name  string
	Count uint64
}

// symCounts are a biflow's symptom occurrences: Input.Symptoms (m) or,
// when it is nil, Input.Counts (l).
type symCounts struct {
	m map[string]uint64
	l []NamedCount
}

func countsOf(in *Input) symCounts { return symCounts{in.Symptoms, in.Counts} }

// get returns name's occurrences (0 when absent).
func (s symCounts) get(name string) uint64 {
	if s.m != nil {
		return s.m[name]
	}
	for i := range s.l {
		if s.l[i].Name == name {
			return s.l[i].Count
		}
	}
	return 0
}

func (s symCounts) len() int {
	if s.m != nil {
		return len(s.m)
	}
	return len(s.l)
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
// span, symptoms and the FTP data ports it announced.
type indexed struct {
	key         flow.Key
	first, last int64
	symptoms    symCounts
	ftpData     string
}

// Index is the pair context of a set of biflows: per address pair, the
// biflows between them with their time spans and symptoms.
type Index struct {
	pairs map[hostPair][]indexed
	// names, when not nil, are the only symptoms of the context that
	// the rules it was made for read (Rules.NewIndex): a biflow with
	// none of them and no FTP data ports is left out.
	names []string
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{pairs: make(map[hostPair][]indexed)}
}

// NewIndex returns an empty index for classifying with r: it keeps
// only the biflows whose symptoms or FTP data ports r's rules can read
// in a context (when every rule that reads pair is compiled, so names
// them: pair.X), which leaves most biflows out. Its Pair maps may then
// lack symptoms no rule of r reads.
func (r *Rules) NewIndex() *Index {
	ix := NewIndex()
	if !r.pairAny {
		ix.names = r.pairNames
		if ix.names == nil {
			ix.names = []string{}
		}
	}
	return ix
}

// Add indexes in, keeping its Symptoms map or Counts (do not change
// them afterwards); false when in adds nothing to any context (not
// kept).
func (ix *Index) Add(in *Input) bool {
	ftp := ""
	if in.App != nil {
		ftp = in.App.FTPData
	}
	syms := countsOf(in)
	if syms.len() == 0 && ftp == "" {
		return false // adds nothing to any context
	}
	if ix.names != nil && ftp == "" && !hasAny(syms, ix.names) {
		return false // nothing the rules read
	}
	k := pairOf(in.Biflow)
	ix.pairs[k] = append(ix.pairs[k], indexed{in.Key, in.First, in.Last, syms, ftp})
	return true
}

// hasAny reports whether syms counts one of names.
func hasAny(syms symCounts, names []string) bool {
	for _, n := range names {
		if syms.get(n) > 0 {
			return true
		}
	}
	return false
}

// span is what the pair context of a biflow depends on: its key and
// time span (a copy: evaluations keep it, not the Input).
type span struct {
	key         flow.Key
	first, last int64
}

func spanOf(in *Input) span { return span{in.Key, in.First, in.Last} }

func (s *span) pair() hostPair {
	if s.key.Dst.Less(s.key.Src) {
		return hostPair{s.key.Dst, s.key.Src}
	}
	return hostPair{s.key.Src, s.key.Dst}
}

// near reports whether indexed biflow o is another biflow than s whose
// time span comes within PairWindow of s's.
func near(o *indexed, s *span) bool {
	w := int64(PairWindow)
	return !(o.key == s.key && o.first == s.first) && o.first <= s.last+w && o.last+w >= s.first
}

// FTPData reports whether another indexed biflow between in's two
// addresses, within PairWindow of it, announced one of in's ports as an
// FTP data port (flow.App.FTPData: the client's PORT or EPRT, the
// server's 227 or 229 reply); false when ix is nil. In passive mode the
// client connects to the port the server's reply named, in active mode
// the server to the port the client's PORT named: either way the data
// connection's responder port, but both ports are tried (a capture that
// misses the SYN may not know the initiator).
func (ix *Index) FTPData(in *Input) bool {
	if ix == nil {
		return false
	}
	s := spanOf(in)
	return ix.ftpData(&s)
}

func (ix *Index) ftpData(s *span) bool {
	if len(ix.pairs) == 0 {
		return false
	}
	l := ix.pairs[s.pair()]
	for i := range l {
		o := &l[i]
		if o.ftpData == "" || !near(o, s) {
			continue
		}
		found := false
		a := flow.App{FTPData: o.ftpData}
		a.FTPDataPorts(func(p uint16) { found = found || p == s.key.Dport || p == s.key.Sport })
		if found {
			return true
		}
	}
	return false
}

// Pair returns the symptom counts of the indexed biflows between in's two
// addresses, other than in itself (same key and start), whose time spans
// come within PairWindow of in's; nil when there are none or ix is nil.
func (ix *Index) Pair(in *Input) map[string]int {
	if ix == nil {
		return nil
	}
	var out map[string]int
	s := spanOf(in)
	l := ix.pairs[s.pair()]
	for i := range l {
		o := &l[i]
		if !near(o, &s) {
			continue
		}
		if out == nil {
			out = make(map[string]int)
		}
		for name, n := range o.symptoms.m {
			out[name] += clampInt(n)
		}
		if o.symptoms.m == nil {
			for _, c := range o.symptoms.l {
				out[c.Name] += clampInt(c.Count)
			}
		}
	}
	return out
}

// Classify returns the category of the first rule that holds for in with
// the pair context from ix (nil: empty), or "" when none does (so that
// the probe's fast-class category or the report's default applies).
func (r *Rules) Classify(in *Input, ix *Index) string {
	c, _, _ := r.match(in, Context{}, ix)
	return c
}

// appendNear appends the indexed biflows of in's pair context (those
// Pair sums) to dst.
func (ix *Index) appendNear(dst []*indexed, s *span) []*indexed {
	if len(ix.pairs) == 0 {
		return dst
	}
	l := ix.pairs[s.pair()]
	for i := range l {
		if near(&l[i], s) {
			dst = append(dst, &l[i])
		}
	}
	return dst
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

// Clone returns a copy of ix that biflows can be added to (or
// forgotten from) without changing ix.
func (ix *Index) Clone() *Index {
	n := &Index{pairs: make(map[hostPair][]indexed, len(ix.pairs)), names: ix.names}
	for k, l := range ix.pairs {
		n.pairs[k] = slices.Clone(l)
	}
	return n
}
