package report

import (
	"math"
	"strconv"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Names in flow records are ids that mean something only for their
// origin (exporter and observation domain) and only while the origin's
// announcement that named them was in force: two probes may run
// different symptom databases. Build and ListFlows therefore name each
// record by its origin first (Options.Names), and only then pair and
// classify: the consolidated biflows carry report-wide ids, one per
// distinct name, that namer hands out.

// namer resolves records' ids by origin and interns the names into
// report-wide ids. Category and aggregate id 0 mean none.
type namer struct {
	names              *store.NameIndex
	symptom, category  func(uint16) string
	aggregate          func(uint32) string
	symIDs, catIDs     map[string]uint16
	aggIDs             map[string]uint32
	symNames, catNames []string
	aggNames           []string
	scratch            []flow.SymptomCount
}

// tooManyNames names the symptoms and categories beyond the 65535
// distinct names a report can tell apart (garbage options can announce
// that many).
const tooManyNames = "(too many names)"

func newNamer(opts *Options) *namer {
	return &namer{
		names: opts.Names, symptom: opts.SymptomName, category: opts.CategoryName, aggregate: opts.AggregateName,
		symIDs: map[string]uint16{}, catIDs: map[string]uint16{}, aggIDs: map[string]uint32{},
		symNames: []string{""}, catNames: []string{""}, aggNames: []string{""},
	}
}

// install makes opts name the report-wide ids.
func (n *namer) install(opts *Options) {
	opts.SymptomName = func(id uint16) string { return n.symNames[id] }
	opts.CategoryName = func(id uint16) string { return n.catNames[id] }
	opts.AggregateName = func(id uint32) string { return n.aggNames[id] }
	opts.Names = nil
}

// at returns the names in force for o's records ending at t, nil when
// there are none.
func (n *namer) at(o store.Origin, t int64) *store.Names {
	if n.names == nil {
		return nil
	}
	return n.names.At(o, t)
}

func intern16(ids map[string]uint16, names *[]string, name string) uint16 {
	if id, ok := ids[name]; ok {
		return id
	}
	if len(*names) >= math.MaxUint16 {
		// The last id is tooManyNames.
		name = tooManyNames
		if id, ok := ids[name]; ok {
			return id
		}
	}
	id := uint16(len(*names))
	*names = append(*names, name)
	ids[name] = id
	return id
}

func (n *namer) symptomID(nm *store.Names, id uint16) uint16 {
	var name string
	if nm != nil {
		name = nm.Symptoms[id]
	}
	if name == "" && n.symptom != nil {
		name = n.symptom(id)
	}
	if name == "" {
		name = strconv.Itoa(int(id))
	}
	return intern16(n.symIDs, &n.symNames, name)
}

func (n *namer) categoryID(nm *store.Names, id uint16) uint16 {
	if id == 0 {
		return 0
	}
	var name string
	if nm != nil {
		name = nm.Categories[id]
	}
	if name == "" && n.category != nil {
		name = n.category(id)
	}
	if name == "" {
		return 0 // DefaultCategory
	}
	return intern16(n.catIDs, &n.catNames, name)
}

func (n *namer) aggregateID(nm *store.Names, id uint32) uint32 {
	if id == 0 {
		return 0
	}
	var name string
	if nm != nil {
		name = nm.Aggregates[id]
	}
	if name == "" && n.aggregate != nil {
		name = n.aggregate(id)
	}
	if name == "" {
		return 0
	}
	if x, ok := n.aggIDs[name]; ok {
		return x
	}
	x := uint32(len(n.aggNames))
	n.aggNames = append(n.aggNames, name)
	n.aggIDs[name] = x
	return x
}

// rename returns r, a record of o, with report-wide ids: a copy in *tmp
// when any id changes. The copy's Symptoms are valid until the next
// call.
func (n *namer) rename(o store.Origin, r *flow.Record, tmp *flow.Record) *flow.Record {
	nm := n.at(o, r.Last)
	cat := n.categoryID(nm, r.Category)
	agg := n.aggregateID(nm, r.Aggregate)
	same := cat == r.Category && agg == r.Aggregate
	n.scratch = n.scratch[:0]
	for _, s := range r.Symptoms {
		id := n.symptomID(nm, s.ID)
		same = same && id == s.ID
		n.scratch = append(n.scratch, flow.SymptomCount{ID: id, Count: s.Count})
	}
	if same {
		return r
	}
	*tmp = *r
	tmp.Category, tmp.Aggregate = cat, agg
	if len(r.Symptoms) > 0 {
		tmp.Symptoms = n.scratch
	}
	return tmp
}
