package report

import (
	"slices"
	"strings"

	"github.com/mira-project/mira/collector/consolidate"
)

// ukey is a usage row's key.
type ukey struct {
	Agg, Cat, Probe string
	Host, Symptom   string
	App             string
	Src, Dst        uint32
	Bucket          int64
}

// usageAcc sums biflows into the usage rows and the report's totals.
type usageAcc struct {
	rows            map[ukey]*UsageRow
	total           consolidate.EstimateSum
	sampled, pktSmp bool
	packets, octets uint64
	biflows         int
	keys            []ukey
}

func newUsageAcc() *usageAcc { return &usageAcc{rows: map[ukey]*UsageRow{}} }

// add adds b to its rows (by opts.By and opts.Bucket) and the totals.
func (u *usageAcc) add(b *Biflow, opts *Options) {
	k := ukey{Agg: b.Aggregate, Cat: b.Category}
	keys := u.keys[:0]
	switch opts.By {
	case ByAggregate:
		k.Cat = ""
	case ByCategory:
		k.Agg = ""
	case ByProbe:
		k = ukey{Probe: strings.Join(b.Origins, ";")}
	case ByAS:
		k = ukey{Src: opts.AS.Lookup(b.Src), Dst: opts.AS.Lookup(b.Dst)}
	case ByApp:
		k = ukey{App: b.App}
	case ByHost:
		keys = append(keys, ukey{Host: addrString(b.Src)})
		if b.Dst != b.Src {
			keys = append(keys, ukey{Host: addrString(b.Dst)})
		}
	case BySymptom:
		for name, n := range b.Symptoms {
			if n > 0 {
				keys = append(keys, ukey{Symptom: name})
			}
		}
	}
	if opts.By != ByHost && opts.By != BySymptom {
		keys = append(keys, k)
	}
	bs := b.Sampling < 1
	for _, k := range keys {
		if opts.Bucket > 0 {
			k.Bucket = int64(b.First) - mod(int64(b.First), int64(opts.Bucket))
		}
		row := u.row(k, opts.Bucket > 0)
		row.Biflows++
		row.Packets = consolidate.SatAdd(row.Packets, consolidate.SatAdd(b.Packets, b.RPackets))
		row.Octets = consolidate.SatAdd(row.Octets, consolidate.SatAdd(b.Octets, b.ROctets))
		row.Hits = consolidate.SatAdd(row.Hits, b.Symptoms[k.Symptom])
		row.Merged += b.Merged
		row.est.Add(&b.est)
		row.sampled = row.sampled || bs
		row.pktSmp = row.pktSmp || (bs && b.pktSampled)
	}
	u.keys = keys
	u.packets = consolidate.SatAdd(u.packets, consolidate.SatAdd(b.Packets, b.RPackets))
	u.octets = consolidate.SatAdd(u.octets, consolidate.SatAdd(b.Octets, b.ROctets))
	u.total.Add(&b.est)
	u.sampled = u.sampled || bs
	u.pktSmp = u.pktSmp || (bs && b.pktSampled)
	u.biflows++
}

func (u *usageAcc) row(k ukey, bucket bool) *UsageRow {
	row := u.rows[k]
	if row == nil {
		row = &UsageRow{Aggregate: k.Agg, Category: k.Cat, Probe: k.Probe, SrcAS: k.Src, DstAS: k.Dst, Host: k.Host, Symptom: k.Symptom, App: k.App}
		if bucket {
			bt := Timestamp(k.Bucket)
			row.Bucket = &bt
		}
		u.rows[k] = row
	}
	return row
}

// merge adds o's rows and totals to u: the sums of adding o's biflows
// one by one (the estimates add exactly: consolidate.EstimateSum).
func (u *usageAcc) merge(o *usageAcc) {
	for k, r := range o.rows {
		row := u.row(k, r.Bucket != nil)
		row.Biflows += r.Biflows
		row.Packets = consolidate.SatAdd(row.Packets, r.Packets)
		row.Octets = consolidate.SatAdd(row.Octets, r.Octets)
		row.Hits = consolidate.SatAdd(row.Hits, r.Hits)
		row.Merged += r.Merged
		row.est.Merge(&r.est)
		row.sampled = row.sampled || r.sampled
		row.pktSmp = row.pktSmp || r.pktSmp
	}
	u.packets = consolidate.SatAdd(u.packets, o.packets)
	u.octets = consolidate.SatAdd(u.octets, o.octets)
	u.total.Merge(&o.total)
	u.sampled = u.sampled || o.sampled
	u.pktSmp = u.pktSmp || o.pktSmp
	u.biflows += o.biflows
}

// Aggregate replaces p's biflows by their usage (rows and totals, as
// Assemble would sum them) and the first keep of them in the listing
// order of opts (Order): Assemble then adds the rows of parts exactly
// (the estimates too: consolidate.EstimateSum) and lists the first keep
// biflows of the report from the parts' first keep. It reports whether
// it did; p is unchanged when not. By as is not aggregated (the AS table
// is the reporter's).
func (p *Part) Aggregate(opts Options, keep int) bool {
	if keep <= 0 || opts.By == ByAS || p.agg != nil {
		return false
	}
	acc := newUsageAcc()
	for i := range p.Biflows {
		acc.add(&p.Biflows[i], &opts)
	}
	bs := p.Biflows
	slices.SortFunc(bs, func(a, b Biflow) int { return compareBiflows(&a, &b) })
	if opts.Order == OrderBytes {
		sortBiflows(bs, opts.Order)
	}
	p.Biflows = slices.Clone(bs[:min(keep, len(bs))])
	p.agg = acc
	return true
}

// Aggregated reports whether p carries its usage (Aggregate).
func (p *Part) Aggregated() bool { return p.agg != nil }

// pageOf is page over a listing of n biflows of which all holds the
// first ones in order (at least offset+limit of them, or all n).
func pageOf(all []Biflow, n, offset, limit int) (rows []Biflow, off, next int) {
	off = min(max(offset, 0), n)
	listed := n - off
	if limit > 0 && listed > limit {
		listed = limit
		next = off + limit
	}
	return all[off : off+listed], off, next
}

// Count is the number of biflows p stands for (those it lists, or those
// its usage sums when aggregated).
func (p *Part) Count() int {
	if p.agg != nil {
		return p.agg.biflows
	}
	return len(p.Biflows)
}
