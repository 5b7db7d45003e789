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

	// The names of the last origin at asked for (atO, atList, of
	// names atIx), and, by the Names in force, the report-wide ids
	// their ids were given (tabs, for names tabsIx; a lookup by origin
	// and two by name per record were a tenth of the Roller's work).
	atO    store.Origin
	atIx   *store.NameIndex
	atList []store.NameAnnouncement
	tabsIx *store.NameIndex
	tabs   map[*store.Names]*idTab
	lastNm *store.Names
	lastT  *idTab
}

// idTab maps the ids of one set of names to report-wide ids (0: not
// looked up yet; a symptom's report-wide id is never 0).
type idTab struct {
	sym, cat []uint16
	agg      map[uint32]uint32
}

// tab returns nm's id table.
func (n *namer) tab(nm *store.Names) *idTab {
	if nm == n.lastNm && n.lastT != nil && n.tabsIx == n.names {
		return n.lastT
	}
	if n.tabs == nil || n.tabsIx != n.names {
		n.tabs, n.tabsIx = map[*store.Names]*idTab{}, n.names
	}
	t := n.tabs[nm]
	if t == nil {
		t = &idTab{agg: map[uint32]uint32{}}
		n.tabs[nm] = t
	}
	n.lastNm, n.lastT = nm, t
	return t
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
	if n.atIx != n.names || o != n.atO {
		n.atIx, n.atO, n.atList = n.names, o, n.names.Origins[o]
	}
	// As store.NameIndex.At.
	list := n.atList
	if len(list) == 0 {
		return &n.names.Fallback
	}
	a := &list[0]
	for i := range list[1:] {
		if list[1+i].Since < t {
			a = &list[1+i]
		}
	}
	return &a.Names
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

func (t *idTab) symptomID(n *namer, nm *store.Names, id uint16) uint16 {
	if int(id) < len(t.sym) && t.sym[id] != 0 {
		return t.sym[id]
	}
	x := n.symptomID(nm, id)
	setID(&t.sym, id, x)
	return x
}

// setID sets (*tab)[id] to x, growing the table to hold id.
func setID(tab *[]uint16, id, x uint16) {
	if int(id) >= len(*tab) {
		*tab = append(*tab, make([]uint16, int(id)+1-len(*tab))...)
	}
	(*tab)[id] = x
}

func (t *idTab) categoryID(n *namer, nm *store.Names, id uint16) uint16 {
	if id == 0 {
		return 0
	}
	if int(id) < len(t.cat) && t.cat[id] != 0 {
		return t.cat[id]
	}
	x := n.categoryID(nm, id)
	if x == 0 {
		return 0 // DefaultCategory: not cached (0 means not looked up)
	}
	setID(&t.cat, id, x)
	return x
}

func (t *idTab) aggregateID(n *namer, nm *store.Names, id uint32) uint32 {
	if id == 0 {
		return 0
	}
	if x, ok := t.agg[id]; ok {
		return x
	}
	x := n.aggregateID(nm, id)
	t.agg[id] = x
	return x
}

// rename returns r, a record of o, with report-wide ids: a copy in *tmp
// when any id changes. The copy's Symptoms are valid until the next
// call.
func (n *namer) rename(o store.Origin, r *flow.Record, tmp *flow.Record) *flow.Record {
	nm := n.at(o, r.Last)
	tab := n.tab(nm)
	cat := tab.categoryID(n, nm, r.Category)
	agg := tab.aggregateID(n, nm, r.Aggregate)
	same := cat == r.Category && agg == r.Aggregate
	n.scratch = n.scratch[:0]
	for _, s := range r.Symptoms {
		id := tab.symptomID(n, nm, s.ID)
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
