package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mira-project/mira/flow"
)

// WriteJSON writes the report as JSON (ARCHITECTURE.md §3 "Report JSON").
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report json: %w", err)
	}
	return nil
}

var biflowCSVHeader = []string{
	"first", "last", "src", "dst", "sport", "dport", "proto",
	"packets", "octets", "rpackets", "roctets",
	"symptoms", "category", "aggregate", "sampling", "probes", "flows", "app",
	"scanned_octets", "rscanned_octets", // added last: the columns before keep their positions
}

// WriteCSV writes the biflows as CSV with a header row. Symptoms are
// "name=count" joined by ";" in name order; probes are joined by ";".
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(biflowCSVHeader)
	for i := range r.Biflows {
		b := &r.Biflows[i]
		cw.Write([]string{
			Timestamp(b.First).RFC3339(), Timestamp(b.Last).RFC3339(), addrString(b.Src), addrString(b.Dst),
			strconv.Itoa(int(b.Sport)), strconv.Itoa(int(b.Dport)), strconv.Itoa(int(b.Proto)),
			u64(b.Packets), u64(b.Octets), u64(b.RPackets), u64(b.ROctets),
			symptomList(b.Symptoms), b.Category, b.Aggregate,
			strconv.FormatFloat(b.Sampling, 'g', -1, 64), strings.Join(b.Probes, ";"),
			strconv.Itoa(b.Flows), b.App, u64(b.ScannedOctets), u64(b.RScannedOctets),
		})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write report csv: %w", err)
	}
	return nil
}

// WriteTable writes the biflows as an aligned table in the manner of
// nfdump, then the usage table, then the summary.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	t := table{
		header: []string{"Date first seen", "Duration", "Proto", "Src IP Addr:Port", "", "Dst IP Addr:Port",
			"Out Pkt", "In Pkt", "Out Byte", "In Byte", "Flows", "Category", "Aggregate", "Symptoms"},
		right: []bool{false, false, false, true, false, false, true, true, true, true, true, false, false, false},
	}
	for i := range r.Biflows {
		b := &r.Biflows[i]
		t.add(Timestamp(b.First).String(), duration(Timestamp(b.First), Timestamp(b.Last)), protoName(b.Proto),
			endpoint(b.Src, b.Sport, b.Proto, false), "<->", endpoint(b.Dst, b.Dport, b.Proto, true),
			u64(b.Packets), u64(b.RPackets), u64(b.Octets), u64(b.ROctets), strconv.Itoa(b.Flows),
			b.Category, dash(b.Aggregate), dash(symptomList(b.Symptoms)))
	}
	if ri := r.Summary.Rollup; ri != nil {
		if e := ri.Edges; e != nil {
			// Composed: not the rollups' selection (whole biflows by
			// start) but the records' report, whatever it selects.
			fmt.Fprintf(bw, "Composed from the rollups (%s cells of %s - %s) and the %d records around the range's bounds: as the records answer it (--source records lists the biflows)",
				ri.Resolution, e.From, e.To, e.Records)
		} else {
			fmt.Fprintf(bw, "Answered from the rollups (%s cells; biflows by their start; --source records lists them)", ri.Resolution)
		}
		if cb := ri.CompleteBefore; cb != nil && int64(*cb) == math.MinInt64 {
			// The horizon has passed no record yet: not a time to print
			// (it read "complete before 1677-09-21 00:12:43.145").
			fmt.Fprint(bw, "; no biflow complete yet (the running collector still holds them: its HTTP API counts them, --source records reads them)")
		} else if cb != nil {
			fmt.Fprintf(bw, "; complete before %s", cb)
		}
		if ri.Late > 0 {
			fmt.Fprintf(bw, "; %d records arrived late", ri.Late)
		}
		fmt.Fprintln(bw)
		if ri.Note != "" {
			fmt.Fprintf(bw, "Range cut: %s\n", ri.Note)
		}
	} else {
		t.write(bw)
	}
	if r.Summary.RecordsNote != "" {
		fmt.Fprintf(bw, "Range cut: %s\n", r.Summary.RecordsNote)
	}
	if left := r.Summary.Biflows - r.Summary.Listed; left > 0 && r.Summary.Listed >= 0 && r.Summary.Rollup == nil {
		fmt.Fprintf(bw, "... %d more biflows not listed (%d of %d shown; --limit N shows N, --limit 0 all; the usage and summary cover all)\n",
			left, r.Summary.Listed, r.Summary.Biflows)
	}

	title := "Usage by aggregate and category:"
	switch r.by {
	case ByAggregate:
		title = "Usage by aggregate:"
	case ByCategory:
		title = "Usage by category:"
	case ByProbe:
		title = "Usage by probe:"
	case ByAS:
		title = "Usage by source and destination AS:"
	case ByHost:
		title = "Usage by host (a biflow counts for both its endpoints):"
	case BySymptom:
		title = "Usage by symptom (biflows carrying it; hits):"
	case ByApp:
		title = "Usage by application (server name, HTTP host or DNS name through the service list):"
	}
	fmt.Fprintf(bw, "\n%s\n", title)
	h1, h2 := "Aggregate", "Category"
	switch r.by {
	case ByProbe:
		h1, h2 = "Probes", "Merged"
	case ByAS:
		h1, h2 = "Src AS", "Dst AS"
	case ByHost:
		h1, h2 = "Host", "Merged"
	case BySymptom:
		h1, h2 = "Symptom", "Hits"
	case ByApp:
		h1, h2 = "Application", "Merged"
	}
	u := table{
		header: []string{h1, h2, "Biflows", "Packets", "Bytes", "Est. bytes"},
		right:  []bool{false, false, true, true, true, true},
	}
	bucketed := len(r.Usage) > 0 && r.Usage[0].Bucket != nil
	if bucketed {
		u.header = append([]string{"Bucket"}, u.header...)
		u.right = append([]bool{false}, u.right...)
	}
	for _, row := range r.Usage {
		agg, cat := dash(row.Aggregate), row.Category
		switch r.by {
		case ByAggregate:
			cat = "*"
		case ByCategory:
			agg = "*"
		case ByProbe:
			agg, cat = dash(row.Probe), strconv.Itoa(row.Merged)
		case ByAS:
			agg, cat = asName(row.SrcAS), asName(row.DstAS)
		case ByHost:
			agg, cat = row.Host, strconv.Itoa(row.Merged)
		case BySymptom:
			agg, cat = row.Symptom, u64(row.Hits)
		case ByApp:
			agg, cat = row.App, strconv.Itoa(row.Merged)
		}
		cells := []string{agg, cat, strconv.Itoa(row.Biflows), u64(row.Packets), u64(row.Octets), u64(row.EstimatedOctets)}
		if bucketed {
			cells = append([]string{row.Bucket.String()}, cells...)
		}
		u.add(cells...)
	}
	u.write(bw)
	writeEstimates(bw, r)

	s := &r.Summary
	fmt.Fprintf(bw, "\nSummary: flows %d, biflows %d (listed %d), packets %d, bytes %d, estimated bytes %d\n",
		s.Flows, s.Biflows, s.Listed, s.Packets, s.Octets, s.EstimatedOctets)
	writeWindow(bw, s.First, s.Last)
	if s.SamplingUnknown > 0 {
		fmt.Fprintf(bw, "Sampling unknown: %d records of sampling exporters whose domain announced no sampling are not scaled\n", s.SamplingUnknown)
	}
	if s.Merged > 0 {
		fmt.Fprintf(bw, "Duplicates: %d observations of flows seen by several probes were counted once\n", s.Merged)
	}
	if s.Messages != nil {
		fmt.Fprintf(bw, "Collector: messages %d, records %d, lost %d", *s.Messages, *s.Records, *s.Lost)
		if s.SocketDrops > 0 {
			fmt.Fprintf(bw, ", datagrams dropped by the socket %d", s.SocketDrops)
		}
		if s.Dropped > 0 {
			fmt.Fprintf(bw, ", records dropped (store busy) %d", s.Dropped)
		}
		fmt.Fprintln(bw)
	}
	writeCounts(bw, "Malformed", s.Malformed)
	writeCounts(bw, "Collector evictions", s.Evicted)
	writeLoss(bw, s)
	writeCounts(bw, "Probe decode errors", s.DecodeErrors)
	writeCounts(bw, "Store decode errors", s.StoreErrors)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report table: %w", err)
	}
	return nil
}

func writeWindow(w io.Writer, first, last *Timestamp) {
	if first != nil && last != nil {
		fmt.Fprintf(w, "Time window: %s - %s\n", first, last)
	}
}

func writeCounts(w io.Writer, title string, m map[string]uint64) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(w, "%s:", title)
	for i, k := range keys {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, k, m[k])
	}
	fmt.Fprintln(w)
}

// table pads columns to their widest cell; right-aligned columns hold
// numbers. The last column is never padded.
type table struct {
	header []string
	right  []bool
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w *bufio.Writer) {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, row := range t.rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var sb strings.Builder
		for i, c := range cells {
			if i > 0 {
				sb.WriteByte(' ')
			}
			pad := width[i] - utf8.RuneCountInString(c)
			if t.right[i] {
				sb.WriteString(strings.Repeat(" ", pad))
				sb.WriteString(c)
			} else {
				sb.WriteString(c)
				if i < len(cells)-1 {
					sb.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		w.WriteString(strings.TrimRight(sb.String(), " "))
		w.WriteByte('\n')
	}
	line(t.header)
	for _, row := range t.rows {
		line(row)
	}
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// symptomList formats symptom counts as "name=count;..." in name order.
func symptomList(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(';')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(u64(m[k]))
	}
	return sb.String()
}

// endpoint formats an address and port; for ICMP the destination "port"
// is shown as type.code, as nfdump does.
func endpoint(a netip.Addr, port uint16, proto uint8, dst bool) string {
	p := strconv.Itoa(int(port))
	if isICMP(proto) && dst {
		p = strconv.Itoa(int(port>>8)) + "." + strconv.Itoa(int(port&0xff))
	}
	switch {
	case !a.IsValid():
		return "-:" + p
	case a.Is6() && !a.Is4In6():
		return "[" + a.String() + "]:" + p
	}
	return a.String() + ":" + p
}

var protoNames = map[uint8]string{
	1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE",
	50: "ESP", 51: "AH", 58: "ICMP6", 89: "OSPF", 103: "PIM", 132: "SCTP",
}

func protoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// duration formats last-first as nfdump does: "00:00:08.479".
func duration(first, last Timestamp) string {
	d := time.Duration(last - first)
	if d < 0 {
		d = 0
	}
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// tcpFlags formats TCP flags as nfdump does: CWR ECE URG ACK PSH RST SYN
// FIN, a dot for each flag not set.
func tcpFlags(f uint8) string {
	const names = "CEUAPRSF"
	var b [8]byte
	for i := range b {
		if f&(0x80>>i) != 0 {
			b[i] = names[i]
		} else {
			b[i] = '.'
		}
	}
	return string(b[:])
}

func asName(n uint32) string {
	if n == 0 {
		return "?"
	}
	return "AS" + strconv.FormatUint(uint64(n), 10)
}

// writeEstimates lists the sampled rows' estimates with their intervals;
// nothing when no row was sampled.
func writeEstimates(w *bufio.Writer, r *Report) {
	if r.Summary.Estimate == nil {
		return
	}
	fmt.Fprintf(w, "\nEstimated totals (sampled rows, %.0f%% confidence):\n", 100*r.Summary.Estimate.Confidence)
	t := table{
		header: []string{"Row", "Est. biflows", "Est. packets", "Packets interval", "Est. bytes", "Bytes interval"},
		right:  []bool{false, true, true, true, true, true},
	}
	add := func(name string, e *Estimate) {
		bf := strconv.FormatFloat(e.Biflows, 'f', 1, 64)
		if e.BiflowsLowerBound {
			bf = ">= " + bf
		} else if e.BiflowsHigh > e.BiflowsLow {
			bf += fmt.Sprintf(" [%.1f, %.1f]", e.BiflowsLow, e.BiflowsHigh)
		}
		t.add(name, bf, u64(e.Packets), fmt.Sprintf("[%d, %d]", e.PacketsLow, e.PacketsHigh),
			u64(e.Octets), fmt.Sprintf("[%d, %d]", e.OctetsLow, e.OctetsHigh))
	}
	for _, row := range r.Usage {
		if row.Estimate == nil {
			continue
		}
		var name string
		switch r.by {
		case ByProbe:
			name = dash(row.Probe)
		case ByAS:
			name = asName(row.SrcAS) + " > " + asName(row.DstAS)
		case ByHost:
			name = row.Host
		case BySymptom:
			name = row.Symptom
		case ByApp:
			name = row.App
		case ByAggregate:
			name = dash(row.Aggregate)
		case ByCategory:
			name = row.Category
		default:
			name = dash(row.Aggregate) + " / " + row.Category
		}
		add(name, row.Estimate)
	}
	add("total", r.Summary.Estimate)
	t.write(w)
}

// writeLoss prints the loss ledger: every stage in data-path order, then
// each probe process's own stages.
func writeLoss(w io.Writer, s *Summary) {
	if s.Loss == nil {
		return
	}
	fmt.Fprint(w, "Loss:")
	for i, st := range flow.LossStages {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, st, s.Loss[st])
	}
	fmt.Fprintln(w)
	for _, l := range s.Ledgers {
		fmt.Fprintf(w, "  probe %s domain %d (started %s): exported %d records in %d messages; lost:",
			l.Probe, l.Domain, l.Started.Format(time.RFC3339), l.Records, l.Messages)
		for _, st := range flow.LossStages[:6] {
			fmt.Fprintf(w, " %s %d", st, l.Loss[st])
		}
		if l.RegulationChanges > 0 {
			fmt.Fprintf(w, "; %d regulation changes", l.RegulationChanges)
		}
		fmt.Fprintln(w)
	}
	if q := s.Loss["queue"]; s.QueueLossScaled > q {
		fmt.Fprintf(w, "Queue losses: %d packets dropped stood for %d packets of the wire (self-regulation kept 1 in N)\n", q, s.QueueLossScaled)
	}
	if s.RegulationChanges > 0 {
		fmt.Fprintf(w, "Regulation: %d changes of state or sampling rate\n", s.RegulationChanges)
	}
}
