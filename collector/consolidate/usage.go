package consolidate

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// UsageKey is one usage statistics cell: aggregate × category × time
// bucket (the bucket of the biflow's start).
type UsageKey struct {
	Aggregate uint32
	Category  uint16
	Bucket    int64 // bucket start, ns since the Unix epoch
}

// ASKey is one per-AS statistics cell.
type ASKey struct {
	SrcAS, DstAS uint32 // of the initiator and the responder; 0 unknown
	Bucket       int64
}

// Usage are the statistics of one cell.
type Usage struct {
	Biflows         int
	Packets, Octets uint64 // observed
	Est             Estimate
	// PacketSampled says some biflows were packet-sampled: their count is
	// a lower bound (connections with no sampled packet are unseen).
	PacketSampled bool
	// Unscaled counts biflows whose sampling was unknown.
	Unscaled int
	// Merged counts duplicate observations dropped.
	Merged int
}

func (u *Usage) add(b *Biflow) {
	u.Biflows++
	u.Packets = SatAdd(u.Packets, SatAdd(b.Packets, b.RPackets))
	u.Octets = SatAdd(u.Octets, SatAdd(b.Octets, b.ROctets))
	u.Est.Add(&b.Est)
	u.PacketSampled = u.PacketSampled || b.PacketSampled
	if b.SamplingUnknown {
		u.Unscaled++
	}
	u.Merged += b.Merged
}

// Interval returns est ± z·sqrt(variance), the lower end clamped at the
// observed value (a total is never below what was seen).
//
// The interval always holds max(est, observed): an estimate below what
// was seen (an
// estimate below what was seen is a rounding artefact): lo <= est <= hi,
// even for sums so large that float64 rounds them.
func Interval(est, variance, z float64, observed uint64) (lo, hi float64) {
	if !(est >= float64(observed)) { // NaN too
		est = float64(observed)
	}
	if !(variance > 0) {
		variance = 0
	}
	h := z * math.Sqrt(variance)
	lo = est - h
	if !(lo >= float64(observed)) { // NaN (est and h infinite) too
		lo = float64(observed)
	}
	lo = min(lo, est)
	hi = est + h
	if !(hi >= est) {
		hi = est
	}
	return lo, hi
}

// SatAdd adds counters, saturating at the uint64 maximum instead of
// wrapping: the inputs come from the network.
func SatAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// Round converts a non-negative estimate to a counter, saturating at the
// uint64 maximum (a float64 conversion beyond it is undefined).
func Round(v float64) uint64 {
	switch {
	case !(v > 0): // NaN too
		return 0
	case v >= math.MaxUint64:
		return math.MaxUint64
	}
	return uint64(v + 0.5)
}

func (c *Consolidator) bucket(t int64) int64 {
	b := int64(c.cfg.Bucket)
	r := t % b
	if r < 0 {
		r += b
	}
	return t - r
}

func (c *Consolidator) account(b *Biflow) {
	bk := c.bucket(b.First)
	k := UsageKey{Aggregate: b.Aggregate, Category: b.Category, Bucket: bk}
	u := c.usage[k]
	if u == nil {
		u = &Usage{}
		c.usage[k] = u
	}
	u.add(b)
	if c.cfg.AS != nil {
		ak := ASKey{SrcAS: c.cfg.AS.Lookup(b.Src), DstAS: c.cfg.AS.Lookup(b.Dst), Bucket: bk}
		au := c.asUsage[ak]
		if au == nil {
			au = &Usage{}
			c.asUsage[ak] = au
		}
		au.add(b)
	}
}

// UsageRow is one row of the usage table.
type UsageRow struct {
	UsageKey
	Usage
}

// ASRow is one row of the per-AS table.
type ASRow struct {
	ASKey
	Usage
}

// Usage returns the usage table so far, by bucket, aggregate, category.
func (c *Consolidator) Usage() []UsageRow {
	out := make([]UsageRow, 0, len(c.usage))
	for k, u := range c.usage {
		out = append(out, UsageRow{k, *u})
	}
	slices.SortFunc(out, func(a, b UsageRow) int {
		if r := cmp.Compare(a.Bucket, b.Bucket); r != 0 {
			return r
		}
		if r := cmp.Compare(a.Aggregate, b.Aggregate); r != 0 {
			return r
		}
		return cmp.Compare(a.Category, b.Category)
	})
	return out
}

// ASUsage returns the per-AS table so far (empty without Config.AS).
func (c *Consolidator) ASUsage() []ASRow {
	out := make([]ASRow, 0, len(c.asUsage))
	for k, u := range c.asUsage {
		out = append(out, ASRow{k, *u})
	}
	slices.SortFunc(out, func(a, b ASRow) int {
		if r := cmp.Compare(a.Bucket, b.Bucket); r != 0 {
			return r
		}
		if r := cmp.Compare(a.SrcAS, b.SrcAS); r != 0 {
			return r
		}
		return cmp.Compare(a.DstAS, b.DstAS)
	})
	return out
}

// BucketTime returns a bucket start as a time.
func BucketTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// NormalQuantile returns the standard normal quantile of p (0 < p < 1),
// by bisection on math.Erf: exact to 1e-12 (1.959964 for 0.975).
func NormalQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for i := 0; i < 200; i++ {
		m := (lo + hi) / 2
		if 0.5*(1+math.Erf(m/math.Sqrt2)) < p {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}
