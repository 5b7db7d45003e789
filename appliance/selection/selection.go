package selection

import (
	"sync/atomic"

	"github.com/mira-project/mira/appliance/aggregate"
	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/sampling"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// Config is the probe.yaml part: the `aggregates` and `sampling`
// sections. The zero value keeps and meters everything.
type Config struct {
	Aggregates aggregate.Config `yaml:"aggregates"`
	Sampling   sampling.Config  `yaml:"sampling"`
}

// Stats count what the selection dropped, by reason.
type Stats struct {
	Seen       uint64 // packets offered
	OutOfScope uint64 // dropped: aggregate or direction not in the scope
	Unsampled  uint64 // dropped: not selected by sampling
}

// Selection is a compiled Config.
type Selection struct {
	cls  *aggregate.Classifier
	smp  *sampling.Sampler
	seen []atomic.Uint64
	oos  []atomic.Uint64
	uns  []atomic.Uint64
}

// New compiles cfg; ifNames are the capture interfaces in source order.
func New(cfg *Config, ifNames []string) (*Selection, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	cls, err := aggregate.New(&c.Aggregates, ifNames)
	if err != nil {
		return nil, err
	}
	smp, err := sampling.New(&c.Sampling)
	if err != nil {
		return nil, err
	}
	return &Selection{cls: cls, smp: smp}, nil
}

// Active says whether the selection does anything per packet (scope or
// sampling); when it does not, the pipeline need not call a Filter.
func (s *Selection) Active() bool {
	return s.smp.Mode() != sampling.None || !s.cls.Empty()
}

// Label gives a new flow its aggregate id (meter.Config.Label); nil when
// no aggregate rules are configured.
func (s *Selection) Label() func(p *decode.Packet, ifIndex uint32) uint32 {
	if len(s.cls.Names()) == 0 {
		return nil
	}
	return s.cls.Classify
}

// Filters prepares per-worker filters for n workers; Filter(i) returns
// worker i's. They must be called before the workers start.
func (s *Selection) Filters(n int) {
	s.seen = make([]atomic.Uint64, n)
	s.oos = make([]atomic.Uint64, n)
	s.uns = make([]atomic.Uint64, n)
}

// Filter returns worker w's packet filter: it reports whether the packet
// is metered. It allocates nothing.
func (s *Selection) Filter(w int) func(p *decode.Packet, ifIndex uint32) bool {
	if len(s.seen) <= w {
		panic("selection: Filter before Filters")
	}
	smp := s.smp.Clone(w)
	cls := s.cls
	scoped := !cls.Empty()
	seen, oos, uns := &s.seen[w], &s.oos[w], &s.uns[w]
	return func(p *decode.Packet, ifIndex uint32) bool {
		seen.Add(1)
		if scoped && !cls.InScope(p, ifIndex) {
			oos.Add(1)
			return false
		}
		if !smp.Keep(p) {
			uns.Add(1)
			return false
		}
		return true
	}
}

// Stats sums the workers' counters.
func (s *Selection) Stats() Stats {
	var st Stats
	for i := range s.seen {
		st.Seen += s.seen[i].Load()
		st.OutOfScope += s.oos[i].Load()
		st.Unsampled += s.uns[i].Load()
	}
	return st
}

// Stamp sets the sampling intervals on exported records, 1 where the
// probe does not sample: every record states its own sampling, so that
// neither the collecting process nor a report scales it by what the
// observation domain announced at another time (a probe reloaded or
// restarted from 1 in 4 to unsampled under the same domain had its
// unsampled records scaled by 4, and the other way round its unsampled
// records before the change by the first announcement).
func (s *Selection) Stamp(recs []flow.Record) {
	pi, fi := max(s.smp.PacketInterval(), 1), max(s.smp.FlowInterval(), 1)
	for i := range recs {
		recs[i].SamplingPacketInterval = pi
		// Self-regulation may have selected flows too, with an
		// independent hash: the intervals multiply. The meter's 0
		// (regulation never acted) is every flow kept.
		recs[i].SamplingFlowInterval = max(recs[i].SamplingFlowInterval, 1) * fi
	}
}

// ExportSampling is the sampling configuration the exporter announces
// (exporter.Config.Sampling); nil when unsampled.
func (s *Selection) ExportSampling() *ipfix.Sampling {
	if s.smp.Mode() == sampling.None {
		return nil
	}
	smp := &ipfix.Sampling{
		Interval:          s.smp.Interval(),
		Flow:              s.smp.Mode() == sampling.Flow,
		SelectorAlgorithm: s.smp.SelectorAlgorithm(),
		LegacyAlgorithm:   s.smp.LegacyAlgorithm(),
	}
	if init, lo, hi, ok := s.smp.HashRange(); ok {
		smp.Hash = ipfix.HashSelection{
			Initialiser: uint64(init),
			OutputMin:   0, OutputMax: sampling.HashOutputRangeSize - 1,
			SelectedMin: uint64(lo), SelectedMax: uint64(hi),
		}
	}
	return smp
}

// AggregateNames are the aggregate id -> name options
// (exporter.Config.AggregateNames).
func (s *Selection) AggregateNames() map[uint32]string { return s.cls.Names() }
