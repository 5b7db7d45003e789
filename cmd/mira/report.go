package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/cluster"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
)

// parseFlags parses args; help goes to stdout and ends the command
// successfully (done is true).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		_, err = stdout.Write(out.Bytes())
		return true, err
	}
	if err != nil {
		return true, &cli.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return true, &cli.UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return false, nil
}

// openStore opens the store of --db read-only, saying plainly when it is
// missing or a running collector holds it. The store lets go of the file
// between its reads (store.Options.Release), so a mira-collector writing
// it commits while a report or listing is being built: holding the file
// for the whole report made the collector skip its commits ("store busy")
// until the report was done.
func openStore(path string) (*store.Store, error) {
	if path == "" {
		return nil, errors.New("--db FILE is required")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("database %s does not exist", path)
	}
	s, err := store.Open(path, &store.Options{ReadOnly: true, Release: true, Timeout: 2 * time.Second})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w (a running mira-collector holds it; stop it or use its HTTP API)", err)
	}
	return s, err
}

// DefaultTableLimit is how many biflows mira report's table lists when
// --limit is not given; the table then says how many were left out.
const DefaultTableLimit = 50

// runReport is `mira report`: it reads the store named by --db, pairs the
// flows into biflows, classifies them with --rules (default: the
// embedded rule set) and writes the report; --export also sends the
// biflows to another collector.
func runReport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mira report", flag.ContinueOnError)
	var p report.Params
	p.Register(fs)
	db := fs.String("db", "", "flow store written by mira-collector (this or --nats)")
	natsURL := fs.String("nats", "", "merge the results of the consolidation workers on this NATS server (nats://host:port)")
	rulesFile := fs.String("rules", "", "classification rules (default: the embedded ones)")
	export := fs.String("export", "", "also send the biflows as RFC 5103 IPFIX to this URL (udp://, tcp://, file:///dir)")
	mergeStats := fs.Bool("merge-stats", false, "with --nats: say on stderr how the report was merged (partitions consolidated at the workers and at the reporter, records and bytes moved)")
	fs.Lookup("limit").Usage = fmt.Sprintf("list at most N biflows (default: the %d largest in the table, all in json and csv; 0: all; the usage and summary cover every flow)", DefaultTableLimit)
	// The table's default order is bytes, json and csv's time: the
	// flag's own default ("time") said otherwise for the table.
	order := fs.Lookup("order")
	order.Usage, order.DefValue = "order of the listing: time (by start) or bytes (largest first) (default: bytes in the table without --limit, else time)", ""

	if done, err := parseFlags(fs, args, stdout); done {
		return err
	}
	limitSet, orderSet := false, false
	fs.Visit(func(f *flag.Flag) {
		limitSet = limitSet || f.Name == "limit"
		orderSet = orderSet || f.Name == "order"
	})
	tableLimit := 0
	if !limitSet && p.Format == "table" {
		// A table is read by people: the top rows (the largest biflows,
		// unless --order says otherwise) and the totals. Scripts read
		// json and csv, which stay complete and in time order.
		p.Limit = DefaultTableLimit
		if !orderSet {
			p.Order = report.OrderBytes
		}
		if *export != "" {
			// --export sends every biflow; the table shows the top
			// rows of them (writeReport).
			tableLimit, p.Limit = p.Limit, 0
		}
	}
	if err := p.Check(); err != nil {
		return err
	}
	if err := p.AS.Skipped(); err != nil {
		fmt.Fprintf(os.Stderr, "mira report: warning: --as: %v\n", err)
	}
	rules := classify.Default()
	if *rulesFile != "" {
		var err error
		if rules, err = classify.Load(*rulesFile); err != nil {
			return err
		}
	}
	var rep *report.Report
	if *natsURL != "" {
		if *db != "" {
			return &cli.UsageError{Err: errors.New("--db and --nats exclude each other")}
		}
		dir, err := os.MkdirTemp("", "mira-report-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if p.Source == report.SourceRollups {
			// Refused before the cluster is asked anything.
			if err := p.CanUseRollups(); err != nil {
				return &cli.UsageError{Err: fmt.Errorf("--source rollups: %w", err)}
			}
		}
		// The workers consolidate what they alone hold, or send the
		// rollups they keep (--source rollups or auto).
		var yaml []byte
		if *rulesFile != "" {
			if yaml, err = os.ReadFile(*rulesFile); err != nil {
				return err
			}
		}
		nc, js, err := cluster.Connect(*natsURL, "mira report")
		if err != nil {
			return err
		}
		defer nc.Close()
		var rs cluster.ReportStats
		if rep, rs, err = cluster.Report(ctx, nc, js, &p, yaml, dir); err != nil {
			return err
		}
		if *mergeStats {
			fmt.Fprintln(os.Stderr, rs)
		}
		return writeReport(rep, *export, stdout, p.Format, tableLimit)
	}
	s, err := openStore(*db)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := p.Options()
	opts.Rules = rules
	if p.Source == report.SourceRecords {
		rep, err = report.FromStoreQuery(ctx, s, p.Query, opts)
	} else {
		_, src, lerr := report.LoadRollupConfig(*rulesFile, p.ASFile)
		if lerr != nil {
			return lerr
		}
		rep, err = p.Report(ctx, s, opts, src)
	}
	if err != nil {
		return err
	}
	return writeReport(rep, *export, stdout, p.Format, tableLimit)
}

// writeReport writes rep in format, after sending its biflows to export
// (--export) when set; then it lists the first tableLimit (0: all).
// Before, the table's default limit applied to --export too: a table
// report sent the 50 largest biflows and said nothing of the others.
func writeReport(rep *report.Report, export string, stdout io.Writer, format string, tableLimit int) error {
	if export != "" {
		if err := reexport(rep.Biflows, export, nil); err != nil {
			return fmt.Errorf("--export: %w", err)
		}
	}
	if s := &rep.Summary; tableLimit > 0 && len(rep.Biflows) > tableLimit {
		rep.Biflows = rep.Biflows[:tableLimit]
		s.Listed, s.NextOffset = tableLimit, s.Offset+tableLimit
	}
	return rep.Write(stdout, format)
}

// runRollup is `mira rollup`: it rebuilds the rollups of the store named
// by --db from its records, with the rules and AS table a collector
// would use (a collector rebuilds them itself at start when they do not
// fit its configuration).
func runRollup(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mira rollup", flag.ContinueOnError)
	db := fs.String("db", "", "flow store written by mira-collector (required; not while a collector holds it)")
	rulesFile := fs.String("rules", "", "classification rules (default: the embedded ones; as the collector's rules:)")
	asFile := fs.String("as", "", "`FILE`: prefix to AS table (as the collector's as:)")
	if done, err := parseFlags(fs, args, stdout); done {
		return err
	}
	if *db == "" {
		return &cli.UsageError{Err: errors.New("--db FILE is required")}
	}
	if _, err := os.Stat(*db); err != nil {
		return err
	}
	cfg, _, err := report.LoadRollupConfig(*rulesFile, *asFile)
	if err != nil {
		return err
	}
	s, err := store.Open(*db, &store.Options{Timeout: 2 * time.Second})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (a running mira-collector holds it and keeps its rollups)", err)
	}
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := report.Rebuild(ctx, s, cfg)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "rollups of %s rebuilt from %d records in %v\n", *db, m.Records, time.Since(t0).Round(time.Millisecond))
	return err
}

// reexport sends biflows to another collector at url as RFC 5103 records
// (exporter.ExportSampledBiflows): the initiator's counters forward, the
// responder's as reverse counters; a sampled biflow as records of one
// sampling each, naming it (consolidate.SplitRates), so that the other
// collector scales them to the report's estimates.
func reexport(bs []report.Biflow, url string, cfg *exporter.Config) error {
	e, err := exporter.New(url, cfg)
	if err != nil {
		return err
	}
	out := make([]flow.SampledBiflow, 0, len(bs))
	for i := range bs {
		out = consolidate.SplitRates(out, &bs[i].Biflow, bs[i].Rates)
	}
	err = e.ExportSampledBiflows(0, out)
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	return err
}

// runFlows is `mira flows`: it lists the unidirectional flow records of
// the store named by --db.
func runFlows(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mira flows", flag.ContinueOnError)
	var sel report.Selection
	sel.Register(fs)
	db := fs.String("db", "", "flow store written by mira-collector (required)")
	rulesFile := fs.String("rules", "", "classification rules naming each flow's category, as mira report does (default: the embedded ones)")
	if done, err := parseFlags(fs, args, stdout); done {
		return err
	}
	if err := sel.Check(); err != nil {
		return err
	}
	rules := classify.Default()
	if *rulesFile != "" {
		var err error
		if rules, err = classify.Load(*rulesFile); err != nil {
			return err
		}
	}
	s, err := openStore(*db)
	if err != nil {
		return err
	}
	defer s.Close()
	// A flow's category is its biflow's in the report over the same
	// flows: the collector's classification, as mira report shows it.
	l, err := report.FlowsFromStore(ctx, s, sel.Query, flowOptions(&sel, rules))
	if err != nil {
		return err
	}
	return l.Write(stdout, sel.Format)
}

// flowOptions are the listing options of sel with the rules.
func flowOptions(sel *report.Selection, rules *classify.Rules) report.Options {
	o := sel.FlowOptions()
	o.Rules = rules
	return o
}
