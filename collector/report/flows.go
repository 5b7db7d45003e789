package report

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Flow is one unidirectional flow record as `mira flows` shows it.
type Flow struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	Sport   uint16     `json:"sport"`
	Dport   uint16     `json:"dport"`
	Proto   uint8      `json:"proto"`
	VLAN    uint16     `json:"vlan,omitempty"`
	VPI     uint16     `json:"vpi,omitempty"` // ATM virtual circuit, when captured on ATM
	VCI     uint16     `json:"vci,omitempty"`
	Packets uint64     `json:"packets"`
	Octets  uint64     `json:"octets"`
	// ScannedOctets are the payload octets the probe's symptom matcher
	// was given (IPFIX scannedOctetDeltaCount): fewer than the payload
	// when scanning stopped early (a TLS direction after its handshake,
	// the scan limit, shedding); 0 when not scanned or not known (another
	// exporter, a record stored before they were kept).
	ScannedOctets uint64            `json:"scanned_octets"`
	First         Timestamp         `json:"first"`
	Last          Timestamp         `json:"last"`
	TCPFlags      string            `json:"tcp_flags"`
	EndReason     string            `json:"end_reason"`
	Symptoms      map[string]uint64 `json:"symptoms"`
	Category      string            `json:"category"`
	Aggregate     string            `json:"aggregate"`
	// Sampling is the fraction of the traffic the record stands for
	// (1 / packet interval / flow interval): its own intervals, else the
	// announcement in force for its origin, as the report scales it.
	Sampling float64 `json:"sampling"`
	// SamplingUnknown: its origin never announced its sampling while its
	// exporter did for another domain (the report counts it the same).
	SamplingUnknown bool   `json:"sampling_unknown,omitempty"`
	Exporter        string `json:"exporter"`
	Domain          uint32 `json:"domain"`
}

// FlowSummary totals the flows a listing matched (not only those listed).
type FlowSummary struct {
	Flows  int `json:"flows"`
	Listed int `json:"listed"`
	// Offset is where the listed page starts (Options.Offset); NextOffset,
	// when more flows follow the page, is the --offset of the next one.
	Offset     int    `json:"offset,omitempty"`
	NextOffset int    `json:"next_offset,omitempty"`
	Packets    uint64 `json:"packets"`
	Octets     uint64 `json:"octets"`
	// ScannedOctets sums the flows' scanned octets (Flow.ScannedOctets).
	ScannedOctets uint64            `json:"scanned_octets"`
	First         *Timestamp        `json:"first,omitempty"`
	Last          *Timestamp        `json:"last,omitempty"`
	StoreErrors   map[string]uint64 `json:"store_errors,omitempty"`
}

// FlowList is the listing of unidirectional flows for `mira flows`.
type FlowList struct {
	Flows   []Flow      `json:"flows"`
	Summary FlowSummary `json:"summary"`
}

// ListFlows makes the flow listing: sorted by opts.Order, cut to
// opts.Limit, named with opts' lookup functions. With opts.Rules, each
// flow's category is that of the biflow it belongs to in the report over
// the same flows (what mira report shows), not the probe's.
func ListFlows(flows []store.StoredFlow, opts Options) *FlowList {
	l := &FlowList{Flows: []Flow{}}
	s := &l.Summary
	s.Flows = len(flows)
	idx := make([]int, len(flows))
	for i := range flows {
		idx[i] = i
		r := &flows[i].Record
		s.Packets = consolidate.SatAdd(s.Packets, r.Packets)
		s.Octets = consolidate.SatAdd(s.Octets, r.Octets)
		s.ScannedOctets = consolidate.SatAdd(s.ScannedOctets, r.ScannedOctets)
		first, last := Timestamp(r.First), Timestamp(r.Last)
		if s.First == nil || first < *s.First {
			s.First = &first
		}
		if s.Last == nil || last > *s.Last {
			s.Last = &last
		}
	}
	slices.SortStableFunc(idx, func(i, j int) int {
		a, b := &flows[i].Record, &flows[j].Record
		if opts.Order == OrderBytes {
			if c := cmp.Compare(b.Octets, a.Octets); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.First, b.First)
	})
	idx, s.Offset, s.NextOffset = page(idx, opts.Offset, opts.Limit)
	var cats *biflowIndex
	if opts.Rules != nil {
		cats = indexBiflows(flows, opts)
	}
	smp := newSamplingIndex(opts.Announcements, opts.Names) // before install clears Names
	nm := newNamer(&opts)
	nm.install(&opts)
	var named flow.Record
	for _, i := range idx {
		f := flows[i]
		f.Record = *nm.rename(f.Origin, &f.Record, &named)
		fl := makeFlow(&f, &opts, smp)
		if b := cats.find(&f.Record); b != nil {
			fl.Category = b.Category
		}
		l.Flows = append(l.Flows, fl)
	}
	s.Listed = len(l.Flows)
	if len(opts.StoreErrors) > 0 {
		s.StoreErrors = opts.StoreErrors
	}
	return l
}

// page cuts the rows [offset, offset+limit) (limit 0: to the end) out of
// all and returns them with the offset and the next page's offset (0
// when none follows).
func page[T any](all []T, offset, limit int) (rows []T, off, next int) {
	off = min(max(offset, 0), len(all))
	rows = all[off:]
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
		next = off + limit
	}
	return rows, off, next
}

// biflowIndex finds the biflow of the report a flow record became part
// of: the same connection (either direction; ICMP by addresses only, as
// echo request and reply pair) whose time span holds the record's.
type biflowIndex struct {
	conns map[flow.Key][]*Biflow
}

// indexBiflows builds the report over flows with opts (its rules, the
// whole selection: no limit) and indexes its biflows, so that a flow
// listing names each flow's category as the report does.
func indexBiflows(flows []store.StoredFlow, opts Options) *biflowIndex {
	// Every biflow: a page's flows (mira flows --offset) may belong to
	// any of them (the report's own page left the flows of the biflows
	// before it without their category: "Unclassified").
	opts.Limit, opts.Offset, opts.Stats, opts.StoreErrors = 0, 0, nil, nil
	rep := Build(flows, opts)
	ix := &biflowIndex{conns: make(map[flow.Key][]*Biflow, len(rep.Biflows))}
	for i := range rep.Biflows {
		b := &rep.Biflows[i]
		k := connKey(b.Key)
		ix.conns[k] = append(ix.conns[k], b)
	}
	return ix
}

// connKey is a connection's key regardless of direction.
func connKey(k flow.Key) flow.Key {
	if k.Proto == 1 || k.Proto == 58 {
		k.Sport, k.Dport = 0, 0
	}
	if r := k.Reverse(); r.Compare(k) < 0 {
		return r
	}
	return k
}

// find returns the biflow of r (nil when there is none, or ix is nil):
// the one whose time span holds r's, else one that overlaps it.
func (ix *biflowIndex) find(r *flow.Record) *Biflow {
	if ix == nil {
		return nil
	}
	var overlap *Biflow
	for _, b := range ix.conns[connKey(r.Key)] {
		if b.First <= r.First && r.Last <= b.Last {
			return b
		}
		if overlap == nil && b.First <= r.Last && r.First <= b.Last {
			overlap = b
		}
	}
	return overlap
}

func makeFlow(f *store.StoredFlow, opts *Options, smp *samplingIndex) Flow {
	r := &f.Record
	out := Flow{
		Src: r.Src, Dst: r.Dst, Sport: r.Sport, Dport: r.Dport, Proto: r.Proto, VLAN: r.VLAN, VPI: r.VPI, VCI: r.VCI,
		Packets: r.Packets, Octets: r.Octets, ScannedOctets: r.ScannedOctets,
		First: Timestamp(r.First), Last: Timestamp(r.Last),
		TCPFlags:  tcpFlags(r.TCPFlags),
		EndReason: endReason(r.EndReason),
		Symptoms:  make(map[string]uint64, len(r.Symptoms)),
		Category:  opts.categoryName(r.Category),
		Aggregate: opts.aggregateName(r.Aggregate),
		Sampling:  1,
		Exporter:  f.Origin.Exporter,
		Domain:    f.Origin.Domain,
	}
	for _, s := range r.Symptoms {
		out.Symptoms[opts.symptomName(s.ID)] += uint64(s.Count)
	}
	pkt, fl, unknown := smp.resolve(f.Origin, r)
	if ov, ok := opts.Overrides[f.Origin.Exporter]; ok {
		pkt, fl, unknown = ov.PacketInterval, ov.FlowInterval, false
	}
	out.SamplingUnknown = unknown
	if n := float64(max(pkt, 1)) * float64(max(fl, 1)); n > 1 {
		out.Sampling = 1 / n
	}
	return out
}

func endReason(r flow.EndReason) string {
	if r == 0 {
		return ""
	}
	return r.String()
}

// WriteJSON writes the listing as JSON: {"flows": [...], "summary": {...}}.
func (l *FlowList) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(l); err != nil {
		return fmt.Errorf("write flows json: %w", err)
	}
	return nil
}

var flowCSVHeader = []string{
	"first", "last", "src", "dst", "sport", "dport", "proto", "packets", "octets",
	"tcp_flags", "end_reason", "symptoms", "category", "aggregate", "sampling", "exporter", "domain",
	"scanned_octets", // added last: the columns before keep their positions
}

// WriteCSV writes the listed flows as CSV with a header row.
func (l *FlowList) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(flowCSVHeader)
	for i := range l.Flows {
		f := &l.Flows[i]
		cw.Write([]string{
			f.First.RFC3339(), f.Last.RFC3339(), addrString(f.Src), addrString(f.Dst),
			strconv.Itoa(int(f.Sport)), strconv.Itoa(int(f.Dport)), strconv.Itoa(int(f.Proto)),
			u64(f.Packets), u64(f.Octets), f.TCPFlags, f.EndReason, symptomList(f.Symptoms),
			f.Category, f.Aggregate, strconv.FormatFloat(f.Sampling, 'g', -1, 64),
			f.Exporter, strconv.FormatUint(uint64(f.Domain), 10), u64(f.ScannedOctets),
		})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write flows csv: %w", err)
	}
	return nil
}

// WriteTable writes the listed flows as an aligned table like nfdump's
// extended output, then a summary.
func (l *FlowList) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	t := table{
		header: []string{"Date first seen", "Duration", "Proto", "Src IP Addr:Port", "", "Dst IP Addr:Port",
			"Flags", "Packets", "Bytes", "Scanned", "End", "Category", "Symptoms", "Exporter"},
		right: []bool{false, false, false, true, false, false, false, true, true, true, false, false, false, false},
	}
	for i := range l.Flows {
		f := &l.Flows[i]
		t.add(f.First.String(), duration(f.First, f.Last), protoName(f.Proto),
			endpoint(f.Src, f.Sport, f.Proto, false), "->", endpoint(f.Dst, f.Dport, f.Proto, true),
			f.TCPFlags, u64(f.Packets), u64(f.Octets), scanned(f.ScannedOctets), dash(f.EndReason), f.Category,
			dash(symptomList(f.Symptoms)), exporterName(f.Exporter, f.Domain))
	}
	t.write(bw)
	s := &l.Summary
	fmt.Fprintf(bw, "\nSummary: flows %d (listed %d), packets %d, bytes %d, scanned bytes %d\n", s.Flows, s.Listed, s.Packets, s.Octets, s.ScannedOctets)
	writeWindow(bw, s.First, s.Last)
	writeCounts(bw, "Store decode errors", s.StoreErrors)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write flows table: %w", err)
	}
	return nil
}

// scanned is a scanned octet count as a table shows it: "-" for none
// (not scanned, or not known).
func scanned(n uint64) string {
	if n == 0 {
		return "-"
	}
	return u64(n)
}

func exporterName(e string, domain uint32) string {
	if e == "" {
		e = "-"
	}
	return e + "/" + strconv.FormatUint(uint64(domain), 10)
}
