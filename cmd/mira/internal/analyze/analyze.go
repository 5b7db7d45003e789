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
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/cmd/internal/cli"
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
	Progress      io.Writer // progress line target (stderr), nil: none
}

// Run parses args and runs the analysis, writing the report to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira analyze", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.Format, "format", "table", "output format: table, json or csv")
	fs.StringVar(&o.DB, "db", "", "keep the collector store in this new file (default: temporary; one that holds records is refused)")
	fs.Var((*cli.Count)(&o.Workers), "workers", "flow-table shards (0: the default)")
	// Negative timeouts are refused (cli.Duration), as mira-probe's
	// meter.idle_timeout and active_timeout: they were taken as the
	// defaults, silently.
	var idle, active cli.Duration
	fs.Var(&idle, "idle-timeout", "flow idle timeout (default 30s)")
	fs.Var(&active, "active-timeout", "flow active timeout, the aggregation period (default 120s)")
	fs.StringVar(&o.Symptoms, "symptoms", "", "symptom database (default: the embedded one)")
	fs.StringVar(&o.Rules, "rules", "", "classification rules (default: the embedded ones)")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mira analyze [flags] [FILE...]\n\nprobe and collector in one process over pcap/pcapng/ERF files (no FILE: the built-in sample)\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	o.Files = files
	o.IdleTimeout, o.ActiveTimeout = idle.D, active.D
	switch o.Format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("unknown --format %q (want table, json or csv)", o.Format)
	}
	if o.Workers > config.MaxWorkers {
		return fmt.Errorf("--workers %d: more than %d", o.Workers, config.MaxWorkers)
	}
	o.Progress = cli.ProgressTarget(stderr, *progress)
	rep, err := Analyze(ctx, o)
	if rep == nil {
		return err
	}
	if err != nil {
		// A source failed part way (a truncated capture): the report
		// covers what was read, then the error is the command's.
		err = fmt.Errorf("the report covers only what was read before: %w", err)
	}
	var werr error
	switch o.Format {
	case "json":
		werr = rep.WriteJSON(stdout)
	case "csv":
		werr = rep.WriteCSV(stdout)
	default:
		werr = rep.WriteTable(stdout)
	}
	return errors.Join(err, werr)
}

// SampleName is the name the built-in sample capture is reported under.
const SampleName = "built-in sample"

// Analyze runs probe and collector over the files (the built-in sample
// when there are none) and returns the report. When reading a source
// fails part way (a truncated capture), it returns the report of what
// was read together with the error, as mira-probe exports what it read
// and then fails; other errors come without a report.
func Analyze(ctx context.Context, o Options) (*report.Report, error) {
	// The symptom database and the rules are loaded first, so that a bad
	// file fails before any work.
	if o.Symptoms != "" {
		if _, err := symptom.Load(o.Symptoms); err != nil {
			return nil, fmt.Errorf("--symptoms: %w", err)
		}
	}
	rules := classify.Default()
	if o.Rules != "" {
		r, err := classify.Load(o.Rules)
		if err != nil {
			return nil, fmt.Errorf("--rules: %w", err)
		}
		rules = r
	}
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
	if o.DB != "" {
		// The report is the store's: over a store that already holds
		// records it added this run's to them (the same capture
		// analysed twice into one --db reported twice its packets).
		errFound := errors.New("found")
		if err := st.Flows(store.Query{}, func(store.StoredFlow) error { return errFound }); errors.Is(err, errFound) {
			return nil, fmt.Errorf("--db %s already holds flow records (mira report --db reads them); mira analyze reports the files it reads: give a new file", o.DB)
		} else if err != nil {
			return nil, err
		}
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
	cfg.Symptoms.File = o.Symptoms

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

	prog := cli.NewProgress(o.Progress)
	began := time.Now()
	pb := probe.New(cfg, probe.Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sources: srcs,
		Streams: []io.Writer{pw},
		Progress: func(packets uint64) {
			el := time.Since(began)
			prog.Update("analysed %d packets in %s (%.0f packets/s)", packets, el.Round(time.Second), float64(packets)/el.Seconds())
		},
	})
	runErr := pb.Run(ctx) // closes the exporter: everything is flushed into pw
	pw.Close()
	collErr := <-collDone
	if pipe := pb.Pipeline(); pipe != nil {
		prog.Done("analysed %d packets in %s", pipe.Stats().Packets, prog.Elapsed())
	}
	if runErr != nil && (ctx.Err() != nil || pb.Pipeline() == nil) {
		return nil, runErr // cancelled, or nothing was read
	}
	if collErr != nil && !errors.Is(collErr, io.EOF) {
		return nil, errors.Join(runErr, fmt.Errorf("collector: %w", collErr))
	}
	if sink.err != nil {
		return nil, errors.Join(runErr, sink.err)
	}
	ps := pb.Pipeline().Stats()
	cs := coll.Stats()
	if err := st.AddStats(statsFor(cs, ps.DecodeErrors)); err != nil {
		return nil, errors.Join(runErr, err)
	}
	stop := prog.Phase(fmt.Sprintf("building the report from %d flow records", cs.Records))
	rep, err := report.FromStoreQuery(ctx, st, store.Query{}, report.Options{Rules: rules})
	stop()
	if err != nil {
		return nil, errors.Join(runErr, err)
	}
	return rep, runErr
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
// (symptoms, categories, aggregates: per origin, store.NameAnnouncement)
// and changes of a domain's sampling
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
	so := storeOrigin(o)
	if opts.HaveLedger {
		// The probe's loss ledger, for the report's Loss section.
		l := opts.Ledger
		if s.err = s.st.PutLedgers([]store.Ledger{{Origin: so, SystemInit: l.SystemInit, Messages: l.Messages,
			Records: l.Records, Loss: l.Loss, Updated: time.Now()}}); s.err != nil {
			return
		}
	}
	n := store.Names{Aggregates: opts.Aggregates, Symptoms: opts.Symptoms, Categories: opts.Categories}
	if a, changed := s.smp.Names(so, n, time.Now()); changed {
		s.err = s.st.PutNameAnnouncements(map[store.Origin][]store.NameAnnouncement{so: {a}})
	}
}

func (s *storeSink) Consume(o collector.Origin, recs []flow.Record) {
	if s.err != nil || len(recs) == 0 {
		return
	}
	so := storeOrigin(o)
	s.smp.Records(so, recs)
	s.err = s.st.Put(so, recs)
}

// parseInterspersed parses args like fs.Parse but lets flags follow the
// file names too (`mira analyze day.pcap --format json`, as nfdump and
// tcpdump users type it); "--" ends the flags. It returns the file names
// in order.
func parseInterspersed(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, error) {
	var files []string
	for {
		if err := cli.Parse(fs, args, stdout, stderr); err != nil {
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
