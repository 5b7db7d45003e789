package report

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
)

// MergeParts is the one Part of parts (BuildPart's, not aggregated; of
// record sets sharing no address pair): their biflows together and their
// counts added, so that Assemble over it is Assemble over parts.
func MergeParts(parts []*Part) *Part {
	m := &Part{Biflows: []Biflow{}}
	for _, p := range parts {
		m.Biflows = append(m.Biflows, p.Biflows...)
		m.Flows += p.Flows
		m.Merged += p.Merged
		m.SamplingUnknown += p.SamplingUnknown
		for _, e := range p.Exporters {
			if !slices.Contains(m.Exporters, e) {
				m.Exporters = append(m.Exporters, e)
			}
		}
		if p.HasSpan {
			m.span(p.First, p.Last)
		}
	}
	slices.Sort(m.Exporters)
	return m
}

// partWire is a Part's encoding (MarshalBinary): the biflows with the
// estimates Assemble sums.
type partWire struct {
	Agg             *usageWire
	Biflows         []biflowWire
	Flows           int
	First, Last     int64
	HasSpan         bool
	Merged          int
	SamplingUnknown uint64
	Exporters       []string
}

type usageWire struct {
	Rows            []rowWire
	Total           consolidate.EstimateSum
	Sampled, PktSmp bool
	Packets, Octets uint64
	Biflows         int
}

type rowWire struct {
	Key             ukey
	Row             UsageRow
	Est             consolidate.EstimateSum
	Sampled, PktSmp bool
}

type biflowWire struct {
	B          Biflow
	Est        consolidate.Estimate
	PktSampled bool
}

// MarshalBinary encodes p (gob) for another process's Assemble.
func (p *Part) MarshalBinary() ([]byte, error) {
	w := partWire{Biflows: make([]biflowWire, len(p.Biflows)), Flows: p.Flows, First: p.First, Last: p.Last,
		HasSpan: p.HasSpan, Merged: p.Merged, SamplingUnknown: p.SamplingUnknown, Exporters: p.Exporters}
	for i := range p.Biflows {
		w.Biflows[i] = biflowWire{B: p.Biflows[i], Est: p.Biflows[i].est, PktSampled: p.Biflows[i].pktSampled}
	}
	if a := p.agg; a != nil {
		w.Agg = &usageWire{Total: a.total, Sampled: a.sampled, PktSmp: a.pktSmp, Packets: a.packets, Octets: a.octets, Biflows: a.biflows}
		for k, r := range a.rows {
			w.Agg.Rows = append(w.Agg.Rows, rowWire{Key: k, Row: *r, Est: r.est, Sampled: r.sampled, PktSmp: r.pktSmp})
		}
	}
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(&w)
	return buf.Bytes(), err
}

// UnmarshalBinary decodes what MarshalBinary encoded. Gob leaves empty
// maps and lists out; they come back empty, not nil, as BuildPart made
// them (a report's JSON shows "symptoms": {} and "probes": []).
func (p *Part) UnmarshalBinary(data []byte) error {
	var w partWire
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&w); err != nil {
		return fmt.Errorf("report: part: %w", err)
	}
	*p = Part{Biflows: make([]Biflow, len(w.Biflows)), Flows: w.Flows, First: w.First, Last: w.Last,
		HasSpan: w.HasSpan, Merged: w.Merged, SamplingUnknown: w.SamplingUnknown, Exporters: w.Exporters}
	for i := range w.Biflows {
		b := w.Biflows[i].B
		b.est, b.pktSampled = w.Biflows[i].Est, w.Biflows[i].PktSampled
		if b.Symptoms == nil {
			b.Symptoms = map[string]uint64{}
		}
		if b.Probes == nil {
			b.Probes = []string{}
		}
		if b.Origins == nil {
			b.Origins = []string{}
		}
		p.Biflows[i] = b
	}
	if a := w.Agg; a != nil {
		p.agg = &usageAcc{rows: make(map[ukey]*UsageRow, len(a.Rows)), total: a.Total, sampled: a.Sampled, pktSmp: a.PktSmp,
			packets: a.Packets, octets: a.Octets, biflows: a.Biflows}
		for i := range a.Rows {
			r := a.Rows[i].Row
			r.est, r.sampled, r.pktSmp = a.Rows[i].Est, a.Rows[i].Sampled, a.Rows[i].PktSmp
			p.agg.rows[a.Rows[i].Key] = &r
		}
	}
	return nil
}

// PartSpec is what BuildPart needs of a report's parameters besides the
// records, for a process that builds parts of another's report
// (collector/cluster's workers; gob-encoded): the selection, pairing and
// sampling parameters and the biflow filters of Params, the rules and
// service list as their YAML (nil: the embedded defaults), and the
// names and sampling announcements of the records' origins.
type PartSpec struct {
	From, To                          string
	Started                           bool // --started: biflows by start
	Exporter                          string
	Domain                            int
	Host                              string
	Port                              int
	Proto                             string
	Window                            time.Duration
	NoDedup                           bool
	Overrides                         map[string]consolidate.Override
	Aggregate, Category, Symptom, App string
	// By, Bucket and Order are the usage grouping and listing order
	// (Part.Aggregate); By as is left out (the AS table is the
	// reporter's).
	By              string
	Bucket          time.Duration
	Order           string
	Rules, Services []byte
	Names           *store.NameIndex
	Announcements   map[store.Origin][]store.Announcement
}

// PartSpec returns p's part parameters with the rules' YAML (nil: the
// embedded rules); Names and Announcements are left to the caller. It
// reads ServicesFile.
func (p *Params) PartSpec(rules []byte) (PartSpec, error) {
	s := PartSpec{From: p.From, To: p.To, Started: p.Started, Exporter: p.Exporter, Domain: p.Domain, Host: p.Host, Port: p.Port,
		Proto: p.Proto, Window: p.Window, NoDedup: p.NoDedup, Overrides: p.Overrides,
		Aggregate: p.Aggregate, Category: p.Category, Symptom: p.Symptom, App: p.App, Rules: rules,
		By: p.By, Bucket: p.Bucket, Order: p.Order}
	if s.By == ByAS {
		s.By = ""
	}
	if p.ServicesFile != "" {
		b, err := os.ReadFile(p.ServicesFile)
		if err != nil {
			return s, fmt.Errorf("--services: %w", err)
		}
		s.Services = b
	}
	return s, nil
}

// Options returns the build options and the store query s stands for:
// BuildPart over the records the query and Options.Match select gives
// the part the report of the same parameters would make of them.
func (s *PartSpec) Options() (Options, store.Query, error) {
	order := s.Order
	if order == "" {
		order = OrderTime
	}
	p := Params{By: s.By, Bucket: s.Bucket, Selection: Selection{Format: "json", From: s.From, To: s.To, Started: s.Started, Order: order, Exporter: s.Exporter,
		Domain: s.Domain, Host: s.Host, Port: s.Port, Proto: s.Proto},
		Window: s.Window, Confidence: 0.95, NoDedup: s.NoDedup, Overrides: s.Overrides,
		Aggregate: s.Aggregate, Category: s.Category, Symptom: s.Symptom, App: s.App, Source: SourceRecords}
	if err := p.Check(); err != nil {
		return Options{}, store.Query{}, err
	}
	o := p.Options()
	o.Rules = classify.Default()
	if s.Rules != nil {
		r, err := classify.Parse("rules", s.Rules)
		if err != nil {
			return Options{}, store.Query{}, err
		}
		o.Rules = r
	}
	if s.Services != nil {
		l, err := service.Parse("services", s.Services)
		if err != nil {
			return Options{}, store.Query{}, err
		}
		o.Services = l
	}
	o.Names = s.Names
	if o.Names == nil {
		o.Names = &store.NameIndex{Origins: map[store.Origin][]store.NameAnnouncement{}}
	}
	o.Announcements = s.Announcements
	q := p.Query
	if q.Field == store.ByStart {
		// The records from a margin before the range on; the part
		// keeps the biflows that started in it (o.Keep).
		q = StartedRead(q, &o)
	}
	return o, q, nil
}
