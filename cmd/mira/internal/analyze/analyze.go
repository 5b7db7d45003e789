// Package analyze runs `mira analyze`: a probe and a collector in one
// process, joined by real IPFIX bytes (the exporter writes a byte stream
// that the collecting process reads, exactly as over TCP), storing into a
// bbolt store and printing the report built from it. It runs the code
// paths of mira-probe and mira-collector, so what it reports is what the
// daemons would.
package analyze

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/probe"
	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/synth"
)

// Options configure an analysis (the command's flags).
type Options struct {
	Format        string // table, json or csv
	Files         []string
	DB            string // keep the store here (default: a temporary file)
	Workers       int
	IdleTimeout   time.Duration
	ActiveTimeout time.Duration
	Symptoms      string
	Rules         string
	Progress      io.Writer // progress line target (a terminal), nil: none
}

// Run parses args and runs the analysis, writing the report to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.Format, "format", "table", "output format: table, json or csv")
	fs.StringVar(&o.DB, "db", "", "keep the collector store in this file (default: temporary)")
	fs.IntVar(&o.Workers, "workers", 0, "flow-table shards")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "flow idle timeout (default 30s)")
	fs.DurationVar(&o.ActiveTimeout, "active-timeout", 0, "flow active timeout, the aggregation period (default 120s)")
	fs.StringVar(&o.Symptoms, "symptoms", "", "symptom database (default: the embedded one)")
	fs.StringVar(&o.Rules, "rules", "", "classification rules (default: the embedded ones)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	o.Files = files
	switch o.Format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("unknown --format %q (want table, json or csv)", o.Format)
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		o.Progress = stderr
	}
	rep, err := Analyze(ctx, o)
	if err != nil {
		return err
	}
	switch o.Format {
	case "json":
		return rep.WriteJSON(stdout)
	case "csv":
		return rep.WriteCSV(stdout)
	}
	return rep.WriteTable(stdout)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// SampleName is the name the built-in sample capture is reported under.
const SampleName = "built-in sample"

// Analyze runs probe and collector over the files (the built-in sample
// when there are none) and returns the report.
func Analyze(ctx context.Context, o Options) (*report.Report, error) {
	var srcs []drivers.Source
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	if len(o.Files) == 0 {
		var buf bytes.Buffer
		if _, err := synth.WritePcap(synth.Default(), &buf); err != nil {
			return nil, fmt.Errorf("built-in sample: %w", err)
		}
		r, err := pcapfile.NewReader(bytes.NewReader(buf.Bytes()), SampleName)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, r)
	}
	for _, f := range o.Files {
		r, err := probe.OpenFile(f)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, r)
	}

	dbPath := o.DB
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "mira-analyze-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "mira.db")
	}
	st, err := store.Open(dbPath, &store.Options{NoSync: o.DB == ""})
	if err != nil {
		return nil, err
	}
	defer st.Close()

	// Classification rules: loaded first, so that a bad file fails fast.
	rules := classify.Default()
	if o.Rules != "" {
		r, err := classify.Load(o.Rules)
		if err != nil {
			return nil, err
		}
		rules = r
	}
	cfg, err := config.LoadProbe("")
	if err != nil {
		return nil, err
	}
	cfg.Probe.Name = "analyze"
	if o.Workers > 0 {
		cfg.Pipeline.Workers = o.Workers
	}
	if o.IdleTimeout > 0 {
		cfg.Meter.IdleTimeout = o.IdleTimeout
	}
	if o.ActiveTimeout > 0 {
		cfg.Meter.ActiveTimeout = o.ActiveTimeout
	}

	// The IPFIX byte stream between the probe's exporter and the
	// collecting process.
	pr, pw := io.Pipe()
	sink := &storeSink{st: st}
	coll := collector.New(sink, nil)
	origin := collector.Origin{Exporter: netip.MustParseAddrPort("127.0.0.1:4739"), Domain: cfg.Probe.ObservationDomain, Transport: "stream"}
	collDone := make(chan error, 1)
	go func() {
		err := coll.ServeStream(ctx, pr, origin)
		pr.CloseWithError(err) // unblock the exporter if the collector failed
		collDone <- err
	}()

	var prog *progress
	if o.Progress != nil {
		prog = &progress{w: o.Progress, start: time.Now()}
	}
	pb := probe.New(cfg, probe.Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sources:  srcs,
		Streams:  []io.Writer{pw},
		Progress: prog.update,
	})
	runErr := pb.Run(ctx) // closes the exporter: everything is flushed into pw
	pw.Close()
	collErr := <-collDone
	prog.done()
	if runErr != nil {
		return nil, runErr
	}
	if collErr != nil && !errors.Is(collErr, io.EOF) {
		return nil, fmt.Errorf("collector: %w", collErr)
	}
	if sink.err != nil {
		return nil, sink.err
	}
	ps := pb.Pipeline().Stats()
	cs := coll.Stats()
	if err := st.AddStats(statsFor(cs, ps.DecodeErrors)); err != nil {
		return nil, err
	}
	return report.FromStoreQuery(ctx, st, store.Query{}, report.Options{Rules: rules})
}

// statsFor turns the collecting process's counters, and the probe's
// decode errors, into the counters the store keeps for the report.
func statsFor(cs collector.Stats, decodeErrs map[string]uint64) store.Stats {
	return store.Stats{
		Messages:     cs.Messages,
		Records:      cs.Records,
		Lost:         cs.LostRecords,
		Malformed:    cs.Malformed,
		DecodeErrors: decodeErrs,
	}
}

// storeSink stores what the collecting process decodes.
type storeSink struct {
	st  *store.Store
	err error
	smp store.AnnouncementTracker[store.Origin]
}

func storeOrigin(o collector.Origin) store.Origin {
	return store.Origin{Exporter: o.Exporter.Addr().String(), Domain: o.Domain}
}

// ConsumeOptions stores the names the probe announces in options records
// (symptoms, categories, aggregates) and changes of a domain's sampling
// (store.Announcement), as mira-collector does.
func (s *storeSink) ConsumeOptions(o collector.Origin, opts ipfix.DomainOptions) {
	if s.err != nil {
		return
	}
	if opts.HaveSampling {
		so := storeOrigin(o)
		if a, changed := s.smp.Sampling(so, opts.Sampling.Interval, opts.Sampling.Flow, time.Now()); changed {
			if s.err = s.st.PutAnnouncements(map[store.Origin][]store.Announcement{so: {a}}); s.err != nil {
				return
			}
		}
	}
	if len(opts.Aggregates)+len(opts.Symptoms)+len(opts.Categories) == 0 {
		return
	}
	s.err = s.st.PutNames(store.Names{Aggregates: opts.Aggregates, Symptoms: opts.Symptoms, Categories: opts.Categories})
}

func (s *storeSink) Consume(o collector.Origin, recs []flow.Record) {
	if s.err != nil || len(recs) == 0 {
		return
	}
	so := storeOrigin(o)
	s.smp.Records(so, recs)
	s.err = s.st.Put(so, recs)
}

type progress struct {
	w     io.Writer
	start time.Time
	shown bool
}

func (p *progress) update(packets uint64) {
	if p == nil {
		return
	}
	el := time.Since(p.start)
	if el < 2*time.Second {
		return
	}
	p.shown = true
	fmt.Fprintf(p.w, "\ranalysed %d packets in %s (%.0f packets/s)   ", packets, el.Round(time.Second), float64(packets)/el.Seconds())
}

func (p *progress) done() {
	if p != nil && p.shown {
		fmt.Fprintln(p.w)
	}
}

// parseInterspersed parses args like fs.Parse but lets flags follow the
// file names too (`mira analyze day.pcap --format json`, as nfdump and
// tcpdump users type it); "--" ends the flags. It returns the file names
// in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return files, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(files, rest...), nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}
