package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/fastclass"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/pipeline"
	"github.com/mira-project/mira/appliance/sampling"
	"github.com/mira-project/mira/appliance/selection"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// Exporter receives flow records (an IPFIX exporting process).
type Exporter interface {
	Export(recs []flow.Record) error
	Close() error
}

// Options are what the command line adds to the configuration.
type Options struct {
	Logger *slog.Logger
	// Streams are IPFIX byte streams (as over TCP) the probe exports to,
	// with the same exporter configuration as its export URLs: templates,
	// sampling, and the symptom, category and aggregate names. mira
	// analyze joins probe and collector through one.
	Streams []io.Writer
	// Exporters, when set, are used instead of opening the export URLs of
	// the configuration (mira analyze joins probe and collector this way).
	Exporters []Exporter
	// Sources, when set, are read instead of opening capture.files and
	// capture.interfaces.
	Sources []drivers.Source
	// Progress is called about twice a second while files are read.
	Progress func(packets uint64)
	// Registry, when set, receives the probe's metrics (default: a new one).
	Registry *prometheus.Registry
}

// Probe is a configured probe.
type Probe struct {
	cfg  *config.Probe
	opts Options
	log  *slog.Logger
	pipe atomic.Pointer[pipeline.Pipeline] // set by Run; read by Pipeline, metrics and SNMP from other goroutines

	// What a reload replaces; read by metrics and SNMP meanwhile.
	db   atomic.Pointer[symptom.DB]
	sel  atomic.Pointer[selection.Selection] // capture scope, aggregates, sampling
	fast atomic.Pointer[fastclass.Table]

	live    bool // given Sources are live (tests)
	liveRun bool // this run captures live (set by Run)
	start   time.Time
	ifNames []string // capture interfaces, for aggregates
	shards  int      // pipeline workers, for the selection's filters

	reloadMu   sync.Mutex // serialises reloads
	mu         sync.Mutex
	targets    []*target // export targets in use
	all        []*target // every target of the run, also those a reload removed (their counters stay)
	exported   uint64
	selGone    selection.Stats // counters of selections a reload replaced
	reg        pipeline.Regulation
	ledger     Ledger
	reloads    uint64    // reloads applied
	refused    uint64    // reloads refused (bad configuration)
	lastReload time.Time // when the last reload was applied
	sum        [32]byte  // classifiers.sum of the configuration in use
	stopped    bool      // the exporters are closing: no more reloads (reloadMu)
}

// target is one export target.
type target struct {
	e          Exporter
	name       string
	conf       config.Export // as configured; zero for Options' exporters and streams
	fixed      bool          // given by Options: a reload keeps it
	errs       uint64        // failed exports
	lastFailed bool          // the last export failed
	unacked    uint64        // exporter.Stats.Unacknowledged last logged
}

// noteUnacked logs, at warn level, the flow records t's exporter sent on
// connections that ended without the collector confirming it stored
// them since the last call (exporter.Stats.Unacknowledged): without a
// spool they may be lost, and the probe cannot know.
func (p *Probe) noteUnacked(t *target) {
	x, ok := t.e.(exportStatser)
	if !ok {
		return
	}
	u := x.Stats().Unacknowledged
	if u <= t.unacked {
		return
	}
	p.log.Warn("export connection ended without the collector confirming it stored the records sent on it; they may be lost (configure a spool to keep them until confirmed)",
		"target", t.name, "unacknowledged", u-t.unacked, "unacknowledged_total", u)
	t.unacked = u
}

// samplingAnnouncer is an exporter that can announce a new sampling
// configuration mid-stream (exporter.Exporter).
type samplingAnnouncer interface {
	SetSampling(s *ipfix.Sampling)
}

// regulated announces a regulation change to every exporter that can.
func (p *Probe) regulated(r pipeline.Regulation) {
	p.log.Info("self-regulation", "state", regulationName(r.State), "interval", r.Interval, "at", time.Unix(0, r.At).UTC())
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reg = r
	smp := p.exportSampling()
	for _, t := range p.targets {
		if a, ok := t.e.(samplingAnnouncer); ok {
			a.SetSampling(smp)
		}
	}
}

// exportSampling is the sampling to announce: the configured one,
// combined with self-regulation's once it has changed anything; p.mu
// held.
func (p *Probe) exportSampling() *ipfix.Sampling { return p.exportSamplingOf(p.sel.Load()) }

// exportSamplingOf is exportSampling with selection sel; p.mu held.
func (p *Probe) exportSamplingOf(sel *selection.Selection) *ipfix.Sampling {
	smp := sel.ExportSampling()
	r := p.reg
	if r.State == pipeline.RegNormal && r.At == 0 {
		// Regulation never acted. Unsampled, say 1 in 1 rather than
		// nothing: a collector keeps the last sampling an exporter and
		// domain announced, so a probe restarted under the same domain
		// without sampling had its records scaled by the rate of the run
		// before (nfdump: 137,000 packets for 65,615).
		if smp == nil {
			smp = &ipfix.Sampling{Interval: 1, SelectorAlgorithm: sampling.AlgCountSystematic, LegacyAlgorithm: sampling.LegacyDeterministic}
		}
		return smp
	}
	if r.Interval > 1 {
		// Regulation selects whole connections by hash; with
		// configured flow sampling the intervals multiply.
		n := r.Interval
		if smp != nil && smp.Flow {
			n *= smp.Interval
		}
		smp = &ipfix.Sampling{Interval: n, Flow: true, SelectorAlgorithm: sampling.AlgHashBOB}
	} else if smp == nil {
		// Back to every flow: say so, the collector must not go on
		// scaling by the last rate it heard of.
		smp = &ipfix.Sampling{Interval: 1, Flow: true, SelectorAlgorithm: sampling.AlgHashBOB}
	}
	return smp
}

func regulationName(state int) string {
	switch state {
	case pipeline.RegShedding:
		return "shedding"
	case pipeline.RegSampling:
		return "sampling"
	}
	return "normal"
}

// New prepares a probe; Run starts it.
func New(cfg *config.Probe, opts Options) *Probe {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Probe{cfg: cfg, opts: opts, log: opts.Logger}
}

// Pipeline returns the probe's pipeline (nil before Run).
func (p *Probe) Pipeline() *pipeline.Pipeline { return p.pipe.Load() }

func (p *Probe) sink(recs []flow.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if sel := p.sel.Load(); sel != nil {
		sel.Stamp(recs)
	}
	p.exported += uint64(len(recs))
	for _, t := range p.targets {
		err := t.e.Export(recs)
		t.lastFailed = err != nil
		if err != nil {
			t.errs++
			if t.errs == 1 || t.errs%1000 == 0 {
				p.log.Warn("export failed", "target", t.name, "err", err, "failures", t.errs)
			}
		}
		p.noteUnacked(t)
	}
}

// Run captures until the sources end or ctx is cancelled, then exports
// every pending flow and closes the exporters.
func (p *Probe) Run(ctx context.Context) (err error) {
	c := p.cfg
	srcs := p.opts.Sources
	live := p.live
	if srcs == nil {
		var cerr error
		srcs, live, cerr = openSources(c)
		if cerr != nil {
			return cerr
		}
	}
	if len(srcs) == 0 {
		return errors.New("probe: nothing to capture: give -r FILE or -i IFACE")
	}
	p.liveRun = live
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	// Capture scope, aggregate labels and sampling (probe.yaml
	// aggregates and sampling);
	// interface names resolve in source order (live: the sockets of one
	// interface's fanout group are one interface).
	p.ifNames = nil
	if live {
		p.ifNames = pipeline.InterfaceNames(srcs)
	} else {
		for _, s := range srcs {
			for _, ifc := range s.Interfaces() {
				p.ifNames = append(p.ifNames, ifc.Name)
			}
		}
	}
	// The symptom database and fast-class lists come before the
	// exporters, which announce their names.
	cl, err := p.classifiers(c)
	if err != nil {
		return err
	}
	sel := cl.sel
	p.sum = cl.sum
	p.sel.Store(sel)
	p.db.Store(cl.db)
	p.fast.Store(cl.fast)
	var targets []*target
	for i, e := range p.opts.Exporters {
		targets = append(targets, &target{e: e, name: fmt.Sprintf("exporter-%d", i), fixed: true})
	}
	if p.opts.Exporters == nil {
		for _, e := range c.Export {
			x, err := openExporter(e, p.exporterConfig(e))
			if err != nil {
				for _, t := range targets {
					t.e.Close()
				}
				return err
			}
			targets = append(targets, &target{e: x, name: e.URL, conf: e})
		}
		for i, w := range p.opts.Streams {
			targets = append(targets, &target{e: exporter.NewWriter(w, p.exporterConfig(config.Export{})), name: fmt.Sprintf("stream-%d", i), fixed: true})
		}
	}
	p.mu.Lock()
	p.targets = targets
	p.all = append([]*target(nil), targets...)
	p.mu.Unlock()
	p.start = time.Now()
	if len(targets) == 0 {
		p.log.Warn("no export target configured: flows are metered but not sent anywhere")
	}
	pc := pipeline.Config{
		Workers:      c.Pipeline.Workers,
		QueueBatches: c.Pipeline.QueueBatches,
		Meter: meter.Config{
			IdleTimeout:   c.Meter.IdleTimeout,
			ActiveTimeout: c.Meter.ActiveTimeout,
			TCPEndTimeout: c.Meter.TCPEndTimeout,
			MaxFlows:      c.Meter.MaxFlows,
			Symptoms:      cl.db,
			AppMetadata:   c.Meter.AppMetadata,
			FastClass:     cl.fastFunc(),
			Label:         sel.Label(),
		},
		Domain:   c.Probe.ObservationDomain,
		Progress: p.opts.Progress,
		Speed:    c.Pipeline.Speed,
		Regulation: pipeline.RegulationConfig{
			Disabled: c.Pipeline.Regulation.Disabled,
			High:     c.Pipeline.Regulation.High,
			Low:      c.Pipeline.Regulation.Low,
			Hold:     c.Pipeline.Regulation.Hold,
			// Independent of the configured flow sampling's hash, so
			// the two selections multiply.
			Seed: c.Sampling.Seed ^ 0x5bd1e9955bd1e995,
		},
		OnRegulation: p.regulated,
	}
	p.shards = pipeline.Shards(pc, srcs, live)
	if sel.Active() {
		sel.Filters(p.shards)
		pc.Filter = sel.Filter
	}
	pipe := pipeline.New(pc, p.sink)
	p.pipe.Store(pipe)

	if c.Metrics.Listen != "" {
		reg := p.opts.Registry
		if reg == nil {
			reg = prometheus.NewRegistry()
		}
		reg.MustRegister(&metrics{p: p})
		ln, lerr := net.Listen("tcp", c.Metrics.Listen)
		if lerr != nil {
			p.closeExporters()
			return fmt.Errorf("probe: metrics: %w", lerr)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		p.log.Info("metrics listening", "addr", ln.Addr().String())
	}

	if c.SNMPListen != "" {
		stop, err := p.serveSNMP(ctx, c.SNMPListen)
		if err != nil {
			p.closeExporters()
			return err
		}
		defer stop()
	}

	start := time.Now()
	// The sources are open (live: the kernel already queues frames).
	p.log.Info("capture started", "sources", len(srcs), "live", live, "workers", p.shards)
	stopFlush := func() {}
	if live {
		stopFlush = p.flushExporters(exportFlushEvery)
		// Stopping, the flow tables are flushed to the exporters at
		// once, and no capture waits on them any more: the whole flush
		// goes at the collector's pace.
		stopPace := context.AfterFunc(ctx, p.paceFully)
		defer stopPace()
	}
	runErr := pipe.Run(ctx, srcs, live)
	stopFlush()
	recs, _ := p.ExportStats()
	p.log.Info("capture done; closing the exporters", "records", recs)
	p.reloadMu.Lock() // waits for a reload under way
	p.stopped = true
	p.reloadMu.Unlock()
	cerr := p.closeExportersStoppable(ctx)
	st := pipe.Stats()
	sst := p.selStats()
	p.log.Info("capture ended", "packets", st.Packets, "flows", st.Meter.Created,
		"records", st.Meter.Exported, "decode_errors", sum(st.DecodeErrors),
		"out_of_scope", sst.OutOfScope, "unsampled", sst.Unsampled, "ring_drops", ringDrops(&st), "queue_drops", st.QueueDrops,
		"regulated_out", st.Regulation.RegulatedOut, "regulation_changes", st.Regulation.Changes, "reloads", st.Reloads,
		"scanned_octets", st.Meter.ScanBytes, "elapsed", time.Since(start).Round(time.Millisecond))
	if l := p.Loss(); l.Export+l.Spool > 0 {
		// Records that reached no collector make the run a failure.
		cerr = errors.Join(cerr, fmt.Errorf("probe: %d flow records lost in export (%d not sent, %d dropped from full spools)",
			l.Export+l.Spool, l.Export, l.Spool))
	}
	return errors.Join(runErr, cerr)
}

// paceFully lifts the bound on how long UDP pacing may hold the
// capture (exporter.Exporter.PaceFully) on every export target.
func (p *Probe) paceFully() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		if f, ok := t.e.(interface{ PaceFully() }); ok {
			f.PaceFully()
		}
	}
}

// exportFlushEvery is how often a live probe flushes its exporters.
const exportFlushEvery = time.Second

// flushExporters flushes every export target each period until the
// returned function is called (it returns once no flush runs). A spool
// saves what it holds, connects, replays what it kept (from an outage,
// or from before a reboot) and frees what its collector confirmed only
// when its exporter is called, and the exporters were called only with
// new flow records: on a quiet capture port the records spooled before
// a reboot waited for the next flow to end, however long that took.
func (p *Probe) flushExporters(period time.Duration) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p.mu.Lock()
			for _, tg := range p.targets {
				if f, ok := tg.e.(interface{ Flush() error }); ok {
					f.Flush()
				}
			}
			p.mu.Unlock()
		}
	}()
	return func() { close(done); <-finished }
}

// ringDrops sums the packets the sources' capture mechanisms (kernel
// rings) lost.
func ringDrops(st *pipeline.Stats) (n uint64) {
	for _, s := range st.Sources {
		n += s.Stats.Drops
	}
	return n
}

func sum(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// drainStopper is an exporter whose Close can be told to stop
// delivering its spool (exporter.Exporter).
type drainStopper interface{ StopDraining() }

// closeExportersStoppable closes the exporters; a stop (ctx) ends their
// spools' drain, which reading files otherwise lasts until every record
// is delivered (drain_timeout 0), so that a probe told to stop stops:
// at once when the stop comes while they drain, after liveDrain when it
// came before (as a live probe, whose drain is bounded so already). What
// is not delivered stays spooled for the next start.
func (p *Probe) closeExportersStoppable(ctx context.Context) error {
	p.mu.Lock()
	targets := p.targets
	p.mu.Unlock()
	stopAll := func() {
		for _, t := range targets {
			if d, ok := t.e.(drainStopper); ok {
				d.StopDraining()
			}
		}
	}
	if ctx.Err() == nil {
		defer context.AfterFunc(ctx, stopAll)()
	} else if !p.liveRun && p.cfg.DrainTimeout == 0 {
		defer time.AfterFunc(liveDrain, stopAll).Stop()
	}
	return p.closeExporters()
}

func (p *Probe) closeExporters() error {
	// Closing may take long (spools drain to their collectors): the
	// lock is not held meanwhile, so /metrics and SNMP keep answering.
	p.mu.Lock()
	targets := p.targets
	p.targets = nil
	p.mu.Unlock()
	err := closeTargets(targets)
	p.mu.Lock()
	for _, t := range targets {
		p.noteUnacked(t)
		p.notePace(t)
	}
	p.mu.Unlock()
	return err
}

// notePace logs how long t's UDP pacing held the export, and how many
// messages went without their wait, when it did either.
func (p *Probe) notePace(t *target) {
	x, ok := t.e.(exportStatser)
	if !ok {
		return
	}
	if st := x.Stats(); st.PaceWait > 0 || st.Unpaced > 0 {
		p.log.Info("export paced", "target", t.name, "messages", st.Messages, "bytes", st.Bytes,
			"waited", st.PaceWait.Round(time.Millisecond), "unpaced", st.Unpaced)
	}
}

func closeTargets(targets []*target) error {
	var err error
	for _, t := range targets {
		if cerr := t.e.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("probe: export %s: %w", t.name, cerr))
		}
	}
	return err
}

// symptomDB loads the configured symptom database (nil when disabled).
func symptomDB(c config.Symptoms) (*symptom.DB, error) {
	if c.Disabled {
		return nil, nil
	}
	db := symptom.Default()
	if c.File != "" {
		var err error
		if db, err = symptom.Load(c.File); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
	}
	if c.ScanLimit > 0 {
		db = db.WithScanLimit(uint64(c.ScanLimit))
	}
	return db, nil
}

// Symptoms returns the symptom database in use (nil before Run or when
// scanning is disabled).
func (p *Probe) Symptoms() *symptom.DB { return p.db.Load() }

// symptomNames maps the database's symptom ids to names (nil when
// scanning is disabled).
func symptomNames(db *symptom.DB) map[uint16]string {
	if db == nil {
		return nil
	}
	m := make(map[uint16]string)
	for _, s := range db.Symptoms() {
		m[s.ID] = s.Name
	}
	return m
}

// categoryNames maps the fast-class category ids to names.
func categoryNames(fast *fastclass.Table) map[uint16]string {
	if fast == nil {
		return nil
	}
	return fast.Names()
}

// FastClass returns the fast-classification table in use (nil before Run
// or when no list is configured); its Names name the category ids.
func (p *Probe) FastClass() *fastclass.Table { return p.fast.Load() }

// selStats is the selection's counters over the run (reloads replace
// the selection).
func (p *Probe) selStats() selection.Stats {
	p.mu.Lock()
	st := p.selGone
	p.mu.Unlock()
	if sel := p.sel.Load(); sel != nil {
		s := sel.Stats()
		st.Seen += s.Seen
		st.OutOfScope += s.OutOfScope
		st.Unsampled += s.Unsampled
	}
	return st
}

// ExportStats returns records handed to exporters and failures per target.
func (p *Probe) ExportStats() (records uint64, failures map[string]uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	failures = map[string]uint64{}
	for _, t := range p.all {
		failures[t.name] += t.errs
	}
	return p.exported, failures
}

// ExportDropped returns the flow records each exporter lost (by target),
// for exporters that count them.
func (p *Probe) ExportDropped() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]uint64{}
	for _, t := range p.all {
		if x, ok := t.e.(exportStatser); ok {
			out[t.name] += x.Stats().Dropped
		}
	}
	return out
}
