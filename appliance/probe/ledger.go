package probe

import (
	"sync/atomic"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
)

// Ledger holds the probe's loss counters that no component below it
// keeps (the pipeline, the sources and the exporters count their own;
// Probe.Loss sums everything). Code that drops packets or records on the
// probe's behalf (self-regulation, reloads) adds to these fields.
type Ledger struct {
	// Regulation counts packets self-regulation sampled out.
	Regulation atomic.Uint64
	// Queue counts packets dropped before the pipeline's queues (for
	// example while a configuration is swapped).
	Queue atomic.Uint64
}

// Ledger returns the probe's own loss counters, for components that drop
// on its behalf to count into.
func (p *Probe) Ledger() *Ledger { return &p.ledger }

// exportStatser is an exporter that reports its counters (*exporter.Exporter).
type exportStatser interface{ Stats() exporter.Stats }

// Loss returns the probe's loss ledger: every place between the kernel
// ring and the export target where a packet or record was lost, summed
// over sources, workers and export targets. Socket, sequence, malformed
// and store losses happen at the collector and stay zero here.
func (p *Probe) Loss() flow.Loss {
	l := p.captureLoss()
	p.mu.Lock()
	all := p.all
	p.mu.Unlock()
	for _, t := range all {
		if x, ok := t.e.(exportStatser); ok {
			st := x.Stats()
			l.Export += st.Dropped
			l.Spool += st.SpoolDropped
		}
	}
	return l
}

// captureLoss is the ledger up to the exporters. It takes no lock, so
// that an exporter can call it while the probe hands it records.
func (p *Probe) captureLoss() flow.Loss {
	var l flow.Loss
	if pipe := p.pipe.Load(); pipe != nil {
		s := pipe.Stats()
		for _, src := range s.Sources {
			l.Ring += src.Stats.Drops
		}
		l.Queue += s.QueueDrops
		l.Regulation += s.Regulation.RegulatedOut
		l.Eviction += s.Meter.Expired[flow.EndResource]
	}
	l.Regulation += p.ledger.Regulation.Load()
	l.Queue += p.ledger.Queue.Load()
	return l
}
