package pipeline

import (
	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/flow"
)

// Reconfig is what a configuration reload changes in a running
// pipeline: what the flow tables classify and scan with, and the
// workers' packet filters.
type Reconfig struct {
	Symptoms  *symptom.DB
	FastClass func(*flow.Key) uint16
	Label     func(*decode.Packet, uint32) uint32
	// Filter returns worker i's packet filter, as Config.Filter (nil:
	// every packet is metered).
	Filter func(worker int) func(*decode.Packet, uint32) bool
}

// swap is a reconfiguration under way.
type swap struct {
	seq     uint64
	rc      Reconfig
	need    int           // running workers that have not flushed yet
	flushed chan struct{} // closed when need reaches 0
	apply   chan struct{} // closed once between has run
}

// Reconfigure applies rc to the running pipeline without losing a
// packet the pipeline has taken: each worker, at its next batch
// boundary, ends its flows (flushed to the sink, flowEndReason forced
// end, metered under the old configuration) and waits; once every
// worker has flushed, between runs (the probe announces the new names
// to its collectors there, after the last record of the old
// configuration and before the first of the new), then the workers go
// on under rc. While they wait, packets queue up in the worker queues
// or kernel rings; what these cannot hold is dropped and counted there
// (Stats.QueueDrops, the sources' drops), as under any overload.
// Where the cut falls: a file has one reader, and the packets it read
// before it saw the reconfiguration are metered under the old
// configuration, every later one under rc, whichever worker a packet
// goes to (the reader hands its partly filled batches over, then each
// worker a batch of the new configuration, batch.swap; workers join when
// they meet it). Live sockets have no common order: there each worker
// joins at its next batch, so the cut is per socket, within a batch
// (about 100 ms) of the call.
// Workers started later use rc from the start. Calls are serialised.
// Hazard: Reconfigure returns only once every running worker has
// reached a batch boundary, and a file's workers wait for its reader; the
// inline file path (one worker, files at full speed) looks every 4096
// packets, so a file source that blocks (a pipe given as -r) holds the
// reconfiguration until it delivers.
func (p *Pipeline) Reconfigure(rc Reconfig, between func()) {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	p.swapMu.Lock()
	p.cfg.Meter.Symptoms, p.cfg.Meter.FastClass, p.cfg.Meter.Label = rc.Symptoms, rc.FastClass, rc.Label
	p.cfg.Filter = rc.Filter
	p.reloads.Add(1)
	if p.running == 0 {
		p.swapMu.Unlock()
		if between != nil {
			between()
		}
		return
	}
	s := &swap{seq: p.swapSeq.Load() + 1, rc: rc, need: p.running, flushed: make(chan struct{}), apply: make(chan struct{})}
	p.swapCur = s
	p.swapSeq.Store(s.seq)
	wake := p.wake
	if p.readWake != nil {
		wake = append(wake[:len(wake):len(wake)], p.readWake)
	}
	p.swapMu.Unlock()
	for _, w := range wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	<-s.flushed
	if between != nil {
		between()
	}
	close(s.apply)
	p.swapMu.Lock()
	p.swapCur = nil
	p.swapMu.Unlock()
}

// workerState is what a worker keeps of the reconfigurations.
type workerState struct {
	i    int
	seq  uint64 // the reconfiguration the worker runs under
	keep func(*decode.Packet, uint32) bool
	// headersOnly: nothing reads payloads (no scanning, no labels, no
	// application metadata), so the inline path may meter packets
	// decoded ahead.
	headersOnly bool
}

// startWorker registers worker i as running and returns its flow table
// and state, under the configuration in force.
func (p *Pipeline) startWorker(i int) (*meter.Table, *workerState) {
	p.swapMu.Lock()
	defer p.swapMu.Unlock()
	p.running++
	tab := meter.New(&p.cfg.Meter, p.sink)
	tab.SetObservationDomain(p.cfg.Domain)
	return tab, &workerState{i: i, seq: p.swapSeq.Load(), keep: p.filter(i),
		headersOnly: p.headersOnly(p.cfg.Meter.Symptoms, p.cfg.Meter.Label)}
}

// headersOnly says the meter reads no payload byte under these symptoms
// and label (application metadata, when on, reads the first ones).
func (p *Pipeline) headersOnly(sym *symptom.DB, label func(*decode.Packet, uint32) uint32) bool {
	return sym == nil && label == nil && !p.cfg.Meter.AppMetadata
}

// reconfigured says a reconfiguration waits for the worker (cheap: one
// atomic load; workers look once per batch).
func (p *Pipeline) reconfigured(w *workerState) bool {
	return p.swapSeq.Load() != w.seq
}

// join takes part in the reconfiguration under way: it flushes tab,
// waits for the others, then applies the new configuration.
func (p *Pipeline) join(w *workerState, tab *meter.Table) {
	p.swapMu.Lock()
	s := p.swapCur
	p.swapMu.Unlock()
	if s == nil || s.seq == w.seq {
		return
	}
	tab.Flush()
	p.publishMeter(w.i, tab)
	p.swapMu.Lock()
	if s.need--; s.need == 0 {
		close(s.flushed)
	}
	p.swapMu.Unlock()
	<-s.apply
	tab.Reconfigure(s.rc.Symptoms, s.rc.FastClass, s.rc.Label)
	w.keep = nil
	if s.rc.Filter != nil {
		w.keep = s.rc.Filter(w.i)
	}
	w.headersOnly = p.headersOnly(s.rc.Symptoms, s.rc.Label)
	w.seq = s.seq
}

// stopWorker unregisters a worker that has flushed its table for the
// last time: a reconfiguration under way no longer waits for it.
func (p *Pipeline) stopWorker(w *workerState) {
	p.swapMu.Lock()
	defer p.swapMu.Unlock()
	p.running--
	if s := p.swapCur; s != nil && s.seq != w.seq {
		if s.need--; s.need == 0 {
			close(s.flushed)
		}
	}
}
