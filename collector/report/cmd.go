package report

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
)

// commonFlags are the flags `mira flows` and `mira report` share.
type commonFlags struct {
	db, format, from, to, order, exporter string
	limit, domain                         int

	q store.Query
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.db, "db", "", "flow store written by mira-collector (required)")
	fs.StringVar(&c.format, "format", "table", "output format: table, json or csv")
	fs.StringVar(&c.from, "from", "", `only flows active at or after T (RFC 3339 or "2006-01-02 15:04:05" UTC)`)
	fs.StringVar(&c.to, "to", "", "only flows active before T")
	fs.StringVar(&c.order, "order", OrderTime, "order of the listing: time (by start) or bytes (largest first)")
	fs.StringVar(&c.exporter, "exporter", "", "only records from this exporter")
	fs.IntVar(&c.domain, "domain", -1, "only records of this observation domain")
	fs.IntVar(&c.limit, "limit", 0, "list at most N rows (0: all; totals still cover every flow)")
}

// check validates the shared flags and builds the store query.
func (c *commonFlags) check() error {
	switch c.format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("--format %q: want table, json or csv", c.format)
	}
	switch c.order {
	case OrderTime, OrderBytes:
	default:
		return fmt.Errorf("--order %q: want time or bytes", c.order)
	}
	if c.limit < 0 {
		return fmt.Errorf("--limit %d: must not be negative", c.limit)
	}
	var err error
	if c.q.From, err = parseTime("--from", c.from); err != nil {
		return err
	}
	if c.q.To, err = parseTime("--to", c.to); err != nil {
		return err
	}
	if !c.q.From.IsZero() && !c.q.To.IsZero() && !c.q.From.Before(c.q.To) {
		return fmt.Errorf("--from %s is not before --to %s", c.from, c.to)
	}
	c.q.Field = store.Overlap
	c.q.Exporter = c.exporter
	if c.domain >= 0 {
		if c.domain > 0xffffffff {
			return fmt.Errorf("--domain %d: out of range", c.domain)
		}
		c.q.Domain, c.q.HasDomain = uint32(c.domain), true
	}
	return nil
}

// parseTime accepts RFC 3339 or "2006-01-02 15:04:05" (UTC, fractional
// seconds allowed) or a bare date. An empty value is the zero time.
func parseTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`%s %q: want RFC 3339 (2019-03-14T19:03:54Z) or "2019-03-14 19:03:54" (UTC)`, flagName, v)
}

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
		return true, err
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

func openStore(path string) (*store.Store, error) {
	if path == "" {
		return nil, errors.New("--db FILE is required")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("database %s does not exist", path)
	}
	s, err := store.Open(path, &store.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w (a running mira-collector holds it; stop it or use its HTTP API)", err)
	}
	return s, err
}

// readFlows loads the flows q selects, stopping when ctx is done.
func readFlows(ctx context.Context, s *store.Store, q store.Query) ([]store.StoredFlow, error) {
	var flows []store.StoredFlow
	err := s.Flows(q, func(f store.StoredFlow) error {
		if len(flows)%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		flows = append(flows, f)
		return nil
	})
	return flows, err
}

// namedOptions fills the name lookups o lacks from the store's names.
func namedOptions(s *store.Store, o *Options) error {
	n, err := s.Names()
	if err != nil {
		return err
	}
	if o.SymptomName == nil {
		o.SymptomName = func(id uint16) string { return n.Symptoms[id] }
	}
	if o.CategoryName == nil {
		o.CategoryName = func(id uint16) string { return n.Categories[id] }
	}
	if o.AggregateName == nil {
		o.AggregateName = func(id uint32) string { return n.Aggregates[id] }
	}
	return nil
}

// FromStore builds the report over every flow in s (see FromStoreQuery).
func FromStore(s *store.Store, opts Options) (*Report, error) {
	return FromStoreQuery(context.Background(), s, store.Query{}, opts)
}

// FromStoreQuery builds the report over the flows of s that q selects,
// with the options StoreInputs fills from the store.
func FromStoreQuery(ctx context.Context, s *store.Store, q store.Query, opts Options) (*Report, error) {
	flows, err := StoreInputs(ctx, s, q, &opts)
	if err != nil {
		return nil, err
	}
	return Build(flows, opts), nil
}

// StoreInputs reads what a report over store s needs: the flows q
// selects, and what opts leaves unset from the store: name lookups from
// its names, Announcements from its sampling announcements, Stats from
// its saved collector counters (when any were saved), StoreErrors from
// the records the scan could not decode. Every builder that reads a
// store (FromStoreQuery, a classifier's FromStore) goes through it.
func StoreInputs(ctx context.Context, s *store.Store, q store.Query, opts *Options) ([]store.StoredFlow, error) {
	flows, err := readFlows(ctx, s, q)
	if err != nil {
		return nil, err
	}
	if err := namedOptions(s, opts); err != nil {
		return nil, err
	}
	if opts.Announcements == nil {
		if opts.Announcements, err = s.Announcements(); err != nil {
			return nil, err
		}
	}
	if opts.Stats == nil {
		st, err := s.Stats()
		if err != nil {
			return nil, err
		}
		if !st.Updated.IsZero() {
			opts.Stats = &st
		}
	}
	if opts.StoreErrors == nil {
		opts.StoreErrors = s.DecodeErrors()
	}
	return flows, nil
}

// RunReport implements `mira report`: it reads the store named by --db,
// pairs the flows into biflows and writes the report.
func RunReport(ctx context.Context, args []string, stdout io.Writer) error {
	return reportOn(ctx, args, stdout, nil, nil)
}

// BuildFunc builds a report from a store; FromStoreQuery is one, and a
// classifier's FromStore another.
type BuildFunc func(ctx context.Context, s *store.Store, q store.Query, opts Options) (*Report, error)

// reportOn is `mira report` on the store named by --db, or on st when
// it is not nil (the collector's HTTP API), built by build
// (FromStoreQuery when nil).
func reportOn(ctx context.Context, args []string, stdout io.Writer, st *store.Store, build BuildFunc) error {
	fs := flag.NewFlagSet("mira report", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	by := fs.String("by", "aggregate,category", "usage grouping: aggregate, category, aggregate,category, probe, or as (needs --as)")
	window := fs.Duration("window", DefaultWindow, "pairing window: how far apart opposite flows may be and still pair")
	asFile := fs.String("as", "", "prefix to AS table for --by as: CSV (prefix,asn) or `bgpdump -m` output")
	conf := fs.Float64("confidence", 0.95, "confidence level of the intervals of sampled estimates")
	noDedup := fs.Bool("no-dedup", false, "keep flows that several probes reported (default: counted once)")
	export := fs.String("export", "", "also send the biflows as RFC 5103 IPFIX to this URL (udp://, tcp://, file:///dir)")
	bucket := fs.Duration("bucket", 0, "split the usage table into time buckets of this length (e.g. 5m; 0: one table)")
	overrides := overrideFlag{}
	fs.Var(overrides, "sampling", "override an exporter's sampling: EXPORTER=packet:N, EXPORTER=flow:N or EXPORTER=none (repeatable)")
	if done, err := parseFlags(fs, args, stdout); done {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if *by == "aggregate,category" || *by == "category,aggregate" {
		*by = ByAggregateCategory
	}
	if err := CheckBy(*by); err != nil {
		return fmt.Errorf("--by: %w", err)
	}
	if *window <= 0 {
		return fmt.Errorf("--window %v: must be positive", *window)
	}
	if *bucket < 0 {
		return fmt.Errorf("--bucket %v: must not be negative", *bucket)
	}
	if *conf <= 0 || *conf >= 1 {
		return fmt.Errorf("--confidence %v: want a level between 0 and 1 (0.95)", *conf)
	}
	var as *consolidate.ASTable
	if *by == ByAS && *asFile == "" {
		return errors.New("--by as needs --as FILE (a prefix to AS table)")
	}
	if *asFile != "" {
		f, err := os.Open(*asFile)
		if err != nil {
			return fmt.Errorf("--as: %w", err)
		}
		as, err = consolidate.ParseAS(f, *asFile)
		f.Close()
		if err != nil {
			return fmt.Errorf("--as: %w", err)
		}
	}
	s := st
	if s == nil {
		var err error
		if s, err = openStore(c.db); err != nil {
			return err
		}
		defer s.Close()
	}
	if build == nil {
		build = FromStoreQuery
	}
	opts := Options{Window: *window, By: *by, Order: c.order, Limit: c.limit, AS: as, Confidence: *conf, NoDedup: *noDedup, Bucket: *bucket, Overrides: overrides}
	rep, err := build(ctx, s, c.q, opts)
	if err != nil {
		return err
	}
	if *export != "" {
		if err := Reexport(rep.Biflows, *export, nil); err != nil {
			return fmt.Errorf("--export: %w", err)
		}
	}
	switch c.format {
	case "json":
		err = rep.WriteJSON(stdout)
	case "csv":
		err = rep.WriteCSV(stdout)
	default:
		err = rep.WriteTable(stdout)
	}
	return err
}

// Reexport sends biflows to another collector at url as RFC 5103 records
// (exporter.ExportBiflows): the initiator's counters forward, the
// responder's as reverse counters.
func Reexport(bs []Biflow, url string, cfg *exporter.Config) error {
	e, err := exporter.New(url, cfg)
	if err != nil {
		return err
	}
	out := make([]exporter.Biflow, 0, len(bs))
	for i := range bs {
		b := &bs[i]
		out = append(out, exporter.Biflow{Record: flow.Record{
			Key:     flow.Key{Src: b.Src, Dst: b.Dst, Sport: b.Sport, Dport: b.Dport, Proto: b.Proto, VLAN: b.VLAN},
			Packets: b.Packets, Octets: b.Octets, TCPFlags: b.TCPFlags | b.RTCPFlags,
			First: int64(b.First), Last: int64(b.Last),
		}, RPackets: b.RPackets, ROctets: b.ROctets})
	}
	err = e.ExportBiflows(out)
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	return err
}

// RunFlows implements `mira flows`: it lists the unidirectional flow
// records of the store named by --db.
func RunFlows(ctx context.Context, args []string, stdout io.Writer) error {
	return flowsOn(ctx, args, stdout, nil)
}

func flowsOn(ctx context.Context, args []string, stdout io.Writer, st *store.Store) error {
	fs := flag.NewFlagSet("mira flows", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	if done, err := parseFlags(fs, args, stdout); done {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	s := st
	if s == nil {
		var err error
		if s, err = openStore(c.db); err != nil {
			return err
		}
		defer s.Close()
	}
	flows, err := readFlows(ctx, s, c.q)
	if err != nil {
		return err
	}
	opts := Options{Order: c.order, Limit: c.limit, StoreErrors: s.DecodeErrors()}
	if err := namedOptions(s, &opts); err != nil {
		return err
	}
	l := ListFlows(flows, opts)
	switch c.format {
	case "json":
		err = l.WriteJSON(stdout)
	case "csv":
		err = l.WriteCSV(stdout)
	default:
		err = l.WriteTable(stdout)
	}
	return err
}

// RunReportWith is RunReport building the report with build (for example
// a classification rule set's FromStore).
func RunReportWith(ctx context.Context, args []string, stdout io.Writer, build BuildFunc) error {
	return reportOn(ctx, args, stdout, nil, build)
}

// overrideFlag collects --sampling EXPORTER=packet:N|flow:N|none.
type overrideFlag map[string]consolidate.Override

func (f overrideFlag) String() string { return "" }

func (f overrideFlag) Set(v string) error {
	exp, spec, ok := strings.Cut(v, "=")
	if !ok || exp == "" {
		return fmt.Errorf("%q: want EXPORTER=packet:N, EXPORTER=flow:N or EXPORTER=none", v)
	}
	if spec == "none" {
		f[exp] = consolidate.Override{}
		return nil
	}
	kind, n, ok := strings.Cut(spec, ":")
	iv, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || iv == 0 {
		return fmt.Errorf("%q: want packet:N or flow:N with N >= 1", spec)
	}
	o := f[exp]
	switch kind {
	case "packet":
		o.PacketInterval = uint32(iv)
	case "flow":
		o.FlowInterval = uint32(iv)
	default:
		return fmt.Errorf("%q: want packet:N or flow:N", spec)
	}
	f[exp] = o
	return nil
}
