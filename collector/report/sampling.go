package report

import (
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

func isICMP(proto uint8) bool { return proto == 1 || proto == 58 }

// samplingIndex applies the sampling announcements the store kept to
// records that carry no sampling interval of their own.
type samplingIndex struct {
	ann map[store.Origin][]store.Announcement
	// samples lists exporters that announced sampling for some domain.
	samples map[string]bool
	// states lists the origins that announced MIRA names: MIRA probes,
	// which state their sampling in every record they sample (an
	// interval of 0 is their word that the record was not sampled).
	states map[store.Origin]bool
}

func newSamplingIndex(ann map[store.Origin][]store.Announcement, names *store.NameIndex) *samplingIndex {
	x := &samplingIndex{ann: ann, samples: map[string]bool{}, states: map[store.Origin]bool{}}
	if names != nil {
		for o, l := range names.Origins {
			x.states[o] = len(l) > 0
		}
	}
	for o, l := range ann {
		for _, a := range l {
			if a.Sampled() {
				x.samples[o.Exporter] = true
			}
		}
	}
	return x
}

// resolve returns the sampling intervals that apply to r, a record of
// o, and whether its sampling is unknown. A record with an interval of
// its own (1 included) (a MIRA probe's, or one the collecting process stamped from
// options it already had) keeps it. Otherwise the origin's announcement
// in force at the record's end applies: the latest whose Since is
// before it (a record ending at Since came before that announcement), or the first one, which thus applies retroactively to the
// records that arrived before any options. An origin that never
// announced its sampling, of an exporter that announced sampling for
// another domain, leaves the record unscaled and unknown, unless the
// origin is a MIRA probe (it announced names): a MIRA probe stamps every
// record it samples and announces nothing when it does not sample, so
// its record is unsampled (an unsampled probe beside a sampled one on
// the same address is not "sampling unknown").
func (x *samplingIndex) resolve(o store.Origin, r *flow.Record) (pkt, fl uint32, unknown bool) {
	pkt, fl = r.SamplingPacketInterval, r.SamplingFlowInterval
	// An interval of 1 stated in the record is its own too: a regulated
	// MIRA probe states 1 while it meters every flow, so that records
	// metered just before a change of rate are not scaled by the
	// announcement of the new one.
	if pkt > 0 || fl > 0 || len(x.samples) == 0 {
		return pkt, fl, false
	}
	list := x.ann[o]
	if len(list) == 0 {
		return pkt, fl, x.samples[o.Exporter] && !x.states[o]
	}
	a := list[0]
	for _, y := range list[1:] {
		if y.Since < r.Last {
			a = y
		}
	}
	if !a.Sampled() {
		return pkt, fl, false
	}
	if a.Flow {
		return pkt, a.Interval, false
	}
	return a.Interval, fl, false
}
