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
	cfg   *config.Probe
	opts  Options
	log   *slog.Logger
	pipe  atomic.Pointer[pipeline.Pipeline] // set by Run; read by Pipeline, metrics and SNMP from other goroutines
	exps  []Exporter
	names []string

	db         *symptom.DB
	sel        *selection.Selection // capture scope, aggregates, sampling
	fast       *fastclass.Table
	live       bool // given Sources are live (tests)
	liveRun    bool // this run captures live (set by Run)
	start      time.Time
	expList    []Exporter // every exporter, kept after Close for SNMP
	mu         sync.Mutex
	exported   uint64
	exportErrs []uint64
	ledger     Ledger
	lastFailed []bool // the target's last export failed
}

// samplingAnnouncer is an exporter that can announce a new sampling
// configuration mid-stream (exporter.Exporter).
type samplingAnnouncer interface {
	SetSampling(s *ipfix.Sampling)
}

// regulated announces a regulation change to every exporter that can.
func (p *Probe) regulated(r pipeline.Regulation) {
	p.log.Info("self-regulation", "state", regulationName(r.State), "interval", r.Interval, "at", time.Unix(0, r.At).UTC())
	smp := p.sel.ExportSampling()
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
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.exps {
		if a, ok := e.(samplingAnnouncer); ok {
			a.SetSampling(smp)
		}
	}
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
	if p.sel != nil {
		p.sel.Stamp(recs)
	}
	p.exported += uint64(len(recs))
	for i, e := range p.exps {
		err := e.Export(recs)
		p.lastFailed[i] = err != nil
		if err != nil {
			p.exportErrs[i]++
			if p.exportErrs[i] == 1 || p.exportErrs[i]%1000 == 0 {
				p.log.Warn("export failed", "target", p.names[i], "err", err, "failures", p.exportErrs[i])
			}
		}
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
	var ifNames []string
	if live {
		ifNames = pipeline.InterfaceNames(srcs)
	} else {
		for _, s := range srcs {
			for _, ifc := range s.Interfaces() {
				ifNames = append(ifNames, ifc.Name)
			}
		}
	}
	sel, err := selection.New(&selection.Config{Aggregates: c.Aggregates, Sampling: c.Sampling}, ifNames)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	p.sel = sel
	// The symptom database and fast-class lists come before the
	// exporters, which announce their names.
	db, err := p.symptomDB()
	if err != nil {
		return err
	}
	p.db = db
	var fast func(*flow.Key) uint16
	if len(c.FastClass.Files) > 0 {
		tb, ferr := fastclass.Load(c.FastClass.Files...)
		if ferr != nil {
			return fmt.Errorf("probe: %w", ferr)
		}
		p.fast = tb
		fast = tb.Classify
	}
	p.exps = p.opts.Exporters
	p.names = nil
	for i := range p.exps {
		p.names = append(p.names, fmt.Sprintf("exporter-%d", i))
	}
	if p.exps == nil {
		for _, e := range c.Export {
			x, err := openExporter(e, p.exporterConfig(e))
			if err != nil {
				p.closeExporters()
				return err
			}
			p.exps = append(p.exps, x)
			p.names = append(p.names, e.URL)
		}
		for i, w := range p.opts.Streams {
			p.exps = append(p.exps, exporter.NewWriter(w, p.exporterConfig(config.Export{})))
			p.names = append(p.names, fmt.Sprintf("stream-%d", i))
		}
	}
	p.mu.Lock()
	p.exportErrs = make([]uint64, len(p.exps))
	p.lastFailed = make([]bool, len(p.exps))
	p.expList = append([]Exporter(nil), p.exps...)
	p.mu.Unlock()
	p.start = time.Now()
	if len(p.exps) == 0 {
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
			Symptoms:      db,
			AppMetadata:   c.Meter.AppMetadata,
			FastClass:     fast,
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
	if sel.Active() {
		sel.Filters(pipeline.Shards(pc, srcs, live))
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
	runErr := pipe.Run(ctx, srcs, live)
	recs, _ := p.ExportStats()
	p.log.Info("capture done; closing the exporters", "records", recs)
	cerr := p.closeExporters()
	st := pipe.Stats()
	sst := sel.Stats()
	p.log.Info("capture ended", "packets", st.Packets, "flows", st.Meter.Created,
		"records", st.Meter.Exported, "decode_errors", sum(st.DecodeErrors),
		"out_of_scope", sst.OutOfScope, "unsampled", sst.Unsampled, "ring_drops", ringDrops(&st), "queue_drops", st.QueueDrops,
		"regulated_out", st.Regulation.RegulatedOut, "regulation_changes", st.Regulation.Changes,
		"elapsed", time.Since(start).Round(time.Millisecond))
	if l := p.Loss(); l.Export+l.Spool > 0 {
		// Records that reached no collector make the run a failure.
		cerr = errors.Join(cerr, fmt.Errorf("probe: %d flow records lost in export (%d not sent, %d dropped from full spools)",
			l.Export+l.Spool, l.Export, l.Spool))
	}
	return errors.Join(runErr, cerr)
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

func (p *Probe) closeExporters() error {
	// Closing may take long (spools drain to their collectors): the
	// lock is not held meanwhile, so /metrics and SNMP keep answering.
	p.mu.Lock()
	exps, names := p.exps, p.names
	p.exps = nil
	p.mu.Unlock()
	var err error
	for i, e := range exps {
		if cerr := e.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("probe: export %s: %w", names[i], cerr))
		}
	}
	return err
}

// symptomDB loads the configured symptom database (nil when disabled).
func (p *Probe) symptomDB() (*symptom.DB, error) {
	c := p.cfg.Symptoms
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
func (p *Probe) Symptoms() *symptom.DB { return p.db }

// symptomNames maps the database's symptom ids to names (nil when
// scanning is disabled).
func (p *Probe) symptomNames() map[uint16]string {
	if p.db == nil {
		return nil
	}
	m := make(map[uint16]string)
	for _, s := range p.db.Symptoms() {
		m[s.ID] = s.Name
	}
	return m
}

// categoryNames maps the fast-class category ids to names.
func (p *Probe) categoryNames() map[uint16]string {
	if p.fast == nil {
		return nil
	}
	return p.fast.Names()
}

// FastClass returns the fast-classification table in use (nil before Run
// or when no list is configured); its Names name the category ids.
func (p *Probe) FastClass() *fastclass.Table { return p.fast }

// ExportStats returns records handed to exporters and failures per target.
func (p *Probe) ExportStats() (records uint64, failures map[string]uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	failures = map[string]uint64{}
	for i, n := range p.names {
		if i < len(p.exportErrs) {
			failures[n] = p.exportErrs[i]
		}
	}
	return p.exported, failures
}

// ExportDropped returns the flow records each exporter lost (by target),
// for exporters that count them.
func (p *Probe) ExportDropped() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]uint64{}
	for i, e := range p.expList {
		if x, ok := e.(interface{ Stats() exporter.Stats }); ok {
			out[p.names[i]] = x.Stats().Dropped
		}
	}
	return out
}
