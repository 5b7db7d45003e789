package consolidate

import (
	"sync"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// Consumer feeds a Consolidator from a collecting process: it implements
// collector.Consumer and collector.OptionsConsumer, serialising the
// calls (a Consolidator is single-threaded). The probe is named by the
// exporter's address; one probe per address, or distinct observation
// domains when several share one.
type Consumer struct {
	mu sync.Mutex
	c  *Consolidator
}

// NewConsumer returns a Consumer feeding c.
func NewConsumer(c *Consolidator) *Consumer { return &Consumer{c: c} }

func origin(o collector.Origin) Origin {
	return Origin{Probe: o.Exporter.Addr().String(), Domain: o.Domain}
}

// Consume implements collector.Consumer.
func (c *Consumer) Consume(o collector.Origin, recs []flow.Record) {
	c.mu.Lock()
	c.c.Add(origin(o), recs)
	c.mu.Unlock()
}

// ConsumeOptions implements collector.OptionsConsumer.
func (c *Consumer) ConsumeOptions(o collector.Origin, opts ipfix.DomainOptions) {
	c.mu.Lock()
	c.c.SetOptions(origin(o), opts)
	c.mu.Unlock()
}

// Do runs f with the Consolidator while no record is being added (to
// Flush it, or read its usage table).
func (c *Consumer) Do(f func(*Consolidator)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.c)
}

// BiflowExporter sends connections to another collector as RFC 5103
// IPFIX records in an observation domain (the encoding is
// ipfix.AppendBiflowRecord, with the selectorId of its sampling when
// sampled: ipfix.AppendBiflowSelectorRecord). *exporter.Exporter satisfies it: the
// collector does not import the probe's exporting process, the commands
// (cmd/mira-collector, cmd/mira) open one and hand it in.
type BiflowExporter interface {
	ExportSampledBiflows(domain uint32, bs []flow.SampledBiflow) error
	Close() error
}

// Forwarder re-exports completed biflows as RFC 5103 IPFIX records
// through a BiflowExporter to another collector; use its Sink as
// Config.Sink. Biflows are sent in batches; Close sends the rest.
type Forwarder struct {
	e     BiflowExporter
	buf   []flow.SampledBiflow
	batch int
	err   error
	sent  uint64
	// queued counts the biflows in buf (a sampled one may be several
	// records).
	queued uint64
}

// NewForwarder returns a Forwarder sending through e, which it closes on
// Close.
func NewForwarder(e BiflowExporter) *Forwarder {
	return &Forwarder{e: e, batch: 256}
}

// Sink queues one biflow (a Config.Sink): a sampled one as records of
// one sampling each (SplitRates), which state it, so that the receiving
// collector scales them to the biflow's estimates.
func (f *Forwarder) Sink(b *Biflow) {
	if b.PacketSampled || b.FlowSampled {
		f.buf = SplitRates(f.buf, &b.Biflow, b.Rates)
	} else {
		f.buf = append(f.buf, flow.SampledBiflow{Biflow: b.Biflow})
	}
	f.queued++
	if len(f.buf) >= f.batch {
		f.flush()
	}
}

func (f *Forwarder) flush() {
	if len(f.buf) == 0 {
		return
	}
	if err := f.e.ExportSampledBiflows(0, f.buf); err != nil && f.err == nil {
		f.err = err
	}
	f.sent += f.queued
	f.buf, f.queued = f.buf[:0], 0
}

// Sent returns the number of biflows handed to the exporter.
func (f *Forwarder) Sent() uint64 { return f.sent }

// Close sends what is queued and closes the exporter; it returns the
// first export error.
func (f *Forwarder) Close() error {
	f.flush()
	if err := f.e.Close(); err != nil && f.err == nil {
		f.err = err
	}
	return f.err
}
