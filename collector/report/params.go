package report

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Selection are the parameters a flow listing and a report share: which
// stored flows, in which order, how many listed and in which format. They
// are the flags of `mira flows` and `mira report` and the query
// parameters of the collector's HTTP API (Register binds them to a flag
// set; both parse through it).
type Selection struct {
	Format   string // table, json or csv
	From, To string // RFC 3339 or "2006-01-02 15:04:05" (UTC); empty: open
	// Started selects by start instead of activity: a report's biflows
	// that started in [From, To) (as --bucket and the rollups count
	// them), a listing's records that started in it. Without it a range
	// selects the records active in it (store.Overlap).
	Started  bool
	Order    string // OrderTime or OrderBytes
	Exporter string // only this exporter's records ("": all)
	Domain   int    // only this observation domain (-1: all)
	Limit    int    // list at most this many rows (0: all)
	Offset   int    // skip this many rows first (pages with Limit)
	// Host, Port and Proto keep the records of one address or prefix
	// (either endpoint), one port (either side) and one protocol (""
	// and -1: all). Both directions of a connection match alike, so
	// the biflows are those of the unfiltered report with these
	// endpoints.
	Host  string
	Port  int
	Proto string

	// Query is the store query Check builds, Match the record filter.
	Query store.Query
	Match func(*flow.Record) bool
}

// Register defines the selection's flags on fs.
func (c *Selection) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Format, "format", "table", "output format: table, json or csv")
	fs.StringVar(&c.From, "from", "", `only flows active at or after T (RFC 3339 or "2006-01-02 15:04:05" UTC)`)
	fs.StringVar(&c.To, "to", "", "only flows active before T")
	fs.BoolVar(&c.Started, "started", false, "with --from/--to: only biflows (mira flows: records) that started in [from, to), as --bucket and the rollups count them, instead of those active in it")
	fs.StringVar(&c.Order, "order", OrderTime, "order of the listing: time (by start) or bytes (largest first)")
	fs.StringVar(&c.Exporter, "exporter", "", "only records from this exporter")
	fs.IntVar(&c.Domain, "domain", -1, "only records of this observation domain")
	fs.IntVar(&c.Limit, "limit", 0, "list at most N rows (0: all; totals still cover every flow)")
	fs.IntVar(&c.Offset, "offset", 0, "skip the first N rows of the listing (pages: --offset N --limit M; the summary's next_offset starts the next page)")
	fs.StringVar(&c.Host, "host", "", "only flows with an endpoint at this address or in this prefix")
	fs.IntVar(&c.Port, "port", -1, "only flows with this source or destination port")
	fs.StringVar(&c.Proto, "proto", "", "only flows of this IP protocol (number, tcp, udp, icmp or icmpv6)")
}

// FlowOptions returns the listing options the selection selects.
func (c *Selection) FlowOptions() Options {
	return Options{Order: c.Order, Limit: c.Limit, Offset: c.Offset, Match: c.Match}
}

var protoNumbers = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}

// checkMatch builds Match from Host, Port and Proto.
func (c *Selection) checkMatch() error {
	c.Match = nil
	var pfx netip.Prefix
	hasHost := c.Host != ""
	if hasHost {
		var err error
		if pfx, err = netip.ParsePrefix(c.Host); err != nil {
			a, aerr := netip.ParseAddr(c.Host)
			if aerr != nil {
				return fmt.Errorf("--host %q: want an address or a prefix (192.0.2.1, 2001:db8::/32)", c.Host)
			}
			a = a.Unmap()
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		pfx = pfx.Masked()
	}
	if c.Port < -1 || c.Port > 65535 {
		return fmt.Errorf("--port %d: want 0 to 65535", c.Port)
	}
	proto, hasProto := -1, c.Proto != ""
	if hasProto {
		if n, ok := protoNumbers[strings.ToLower(c.Proto)]; ok {
			proto = int(n)
		} else if n, err := strconv.ParseUint(c.Proto, 10, 8); err == nil {
			proto = int(n)
		} else {
			return fmt.Errorf("--proto %q: want a number (0-255), tcp, udp, icmp, icmpv6 or sctp", c.Proto)
		}
	}
	if !hasHost && c.Port < 0 && !hasProto {
		return nil
	}
	port := c.Port
	c.Match = func(r *flow.Record) bool {
		if hasHost && !pfx.Contains(r.Src.Unmap()) && !pfx.Contains(r.Dst.Unmap()) {
			return false
		}
		if port >= 0 && int(r.Sport) != port && int(r.Dport) != port {
			return false
		}
		return !hasProto || int(r.Proto) == proto
	}
	return nil
}

// Check validates the selection and builds Query.
func (c *Selection) Check() error {
	switch c.Format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("--format %q: want table, json or csv", c.Format)
	}
	switch c.Order {
	case OrderTime, OrderBytes:
	default:
		return fmt.Errorf("--order %q: want time or bytes", c.Order)
	}
	if c.Limit < 0 {
		return fmt.Errorf("--limit %d: must not be negative", c.Limit)
	}
	if c.Offset < 0 {
		return fmt.Errorf("--offset %d: must not be negative", c.Offset)
	}
	var err error
	if c.Query.From, err = ParseTime("--from", c.From); err != nil {
		return err
	}
	if c.Query.To, err = ParseTime("--to", c.To); err != nil {
		return err
	}
	if !c.Query.From.IsZero() && !c.Query.To.IsZero() && !c.Query.From.Before(c.Query.To) {
		return fmt.Errorf("--from %s is not before --to %s", c.From, c.To)
	}
	c.Query.Field = store.Overlap
	if c.Started {
		c.Query.Field = store.ByStart
	}
	c.Query.Exporter = c.Exporter
	if c.Domain >= 0 {
		if c.Domain > 0xffffffff {
			return fmt.Errorf("--domain %d: out of range", c.Domain)
		}
		c.Query.Domain, c.Query.HasDomain = uint32(c.Domain), true
	}
	return c.checkMatch()
}

// ParseTime accepts RFC 3339 or "2006-01-02 15:04:05" (UTC, fractional
// seconds allowed, or without seconds: "2006-01-02 15:04", as the web
// UI's range fields take it) or a bare date. An empty value is the zero
// time. flagName names the value in errors.
func ParseTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`%s %q: want RFC 3339 (2019-03-14T19:03:54Z) or "2019-03-14 19:03:54" (UTC)`, flagName, v)
}

// Params are the parameters of a report: the selection plus grouping,
// pairing, estimation and sampling overrides (the flags of `mira
// report`, the query parameters of /api/report).
type Params struct {
	Selection
	By         string
	Window     time.Duration
	ASFile     string // prefix to AS table (CSV or `bgpdump -m` output)
	Confidence float64
	NoDedup    bool
	Bucket     time.Duration
	Overrides  Overrides
	// Aggregate, Category and Symptom keep the biflows of one aggregate,
	// one category and carrying one symptom ("": all); Aggregate "-"
	// keeps the biflows of no aggregate.
	Aggregate string
	Category  string
	Symptom   string
	// App keeps the biflows of one application (Biflow.App; "": all).
	App string
	// Source says what answers: SourceRecords (default), SourceRollups
	// or SourceAuto (Params.Report).
	Source string
	// RollupsOnly, with SourceAuto, makes Params.Report return the
	// *RollupError saying why the records answer instead of their
	// report (/api/rollups: what auto answers from, at the rollups'
	// cost).
	RollupsOnly bool

	// ServicesFile is the service list of the app grouping (empty: the
	// embedded default, service.Default).
	ServicesFile string

	// AS is the table Check loads from ASFile, Services the list it
	// loads from ServicesFile (nil: the default).
	AS       *consolidate.ASTable
	Services *service.List
}

// Register defines the report's flags on fs.
func (p *Params) Register(fs *flag.FlagSet) {
	p.Selection.Register(fs)
	fs.StringVar(&p.By, "by", "aggregate,category", "usage grouping: aggregate, category, aggregate,category, probe, host, symptom, app, or as (needs --as)")
	fs.StringVar(&p.ServicesFile, "services", "", "`FILE`: service list (YAML, domain suffixes to service names) naming each biflow's app (default: the embedded list)")
	fs.DurationVar(&p.Window, "window", DefaultWindow, "pairing window: how far apart opposite flows may be and still pair")
	fs.StringVar(&p.ASFile, "as", "", "`FILE`: prefix to AS table for --by as, CSV (prefix,asn) or bgpdump -m output")
	fs.Float64Var(&p.Confidence, "confidence", 0.95, "confidence level of the intervals of sampled estimates")
	fs.BoolVar(&p.NoDedup, "no-dedup", false, "keep flows that several probes reported (default: counted once)")
	fs.DurationVar(&p.Bucket, "bucket", 0, "split the usage table into time buckets of this length (e.g. 5m; 0: one table)")
	if p.Overrides == nil {
		p.Overrides = Overrides{}
	}
	fs.StringVar(&p.Aggregate, "aggregate", "", `only biflows of this aggregate ("-": of none)`)
	fs.StringVar(&p.Category, "category", "", "only biflows of this category")
	fs.StringVar(&p.Symptom, "symptom", "", "only biflows carrying this symptom")
	fs.StringVar(&p.App, "app", "", "only biflows of this application (as --by app names it: a service, a name, or unknown)")
	fs.StringVar(&p.Source, "source", SourceRecords, "what answers: records (pair the stored records), rollups (the usage cells kept at ingest: biflows by their start, no biflow list; refused when a filter needs the records) or auto (rollups when they answer exactly, else records)")
	fs.Var(p.Overrides, "sampling", "override an exporter's sampling: EXPORTER=packet:N, EXPORTER=flow:N or EXPORTER=none (repeatable)")
}

// Check validates the parameters, builds the store query and loads the
// AS table.
func (p *Params) Check() error {
	if err := p.Selection.Check(); err != nil {
		return err
	}
	if p.By == "aggregate,category" || p.By == "category,aggregate" {
		p.By = ByAggregateCategory
	}
	if err := CheckBy(p.By); err != nil {
		return fmt.Errorf("--by: %w", err)
	}
	switch p.Source {
	case "", SourceRecords, SourceRollups, SourceAuto:
	default:
		return fmt.Errorf("--source %q: want records, rollups or auto", p.Source)
	}
	if p.Window <= 0 {
		return fmt.Errorf("--window %v: must be positive", p.Window)
	}
	if p.Bucket < 0 {
		return fmt.Errorf("--bucket %v: must not be negative", p.Bucket)
	}
	if p.Confidence <= 0 || p.Confidence >= 1 {
		return fmt.Errorf("--confidence %v: want a level between 0 and 1 (0.95)", p.Confidence)
	}
	if p.By == ByAS && p.ASFile == "" {
		return errors.New("--by as needs --as FILE (a prefix to AS table)")
	}
	p.Services = nil
	if p.ServicesFile != "" {
		l, err := service.Load(p.ServicesFile)
		if err != nil {
			return fmt.Errorf("--services: %w", err)
		}
		p.Services = l
	}
	if p.ASFile != "" {
		f, err := os.Open(p.ASFile)
		if err != nil {
			return fmt.Errorf("--as: %w", err)
		}
		p.AS, err = consolidate.ParseAS(f, p.ASFile)
		f.Close()
		if err != nil {
			return fmt.Errorf("--as: %w", err)
		}
	}
	return nil
}

// Options returns the build options the parameters select.
func (p *Params) Options() Options {
	o := Options{Window: p.Window, By: p.By, Order: p.Order, Limit: p.Limit, Offset: p.Offset, AS: p.AS,
		Confidence: p.Confidence, NoDedup: p.NoDedup, Bucket: p.Bucket, Overrides: p.Overrides,
		Match: p.Match, Services: p.Services}
	if p.Aggregate != "" || p.Category != "" || p.Symptom != "" || p.App != "" {
		agg, cat, sym, app := p.Aggregate, p.Category, p.Symptom, p.App
		anyAgg := agg == ""
		if agg == "-" {
			agg = ""
		}
		o.Keep = func(b *Biflow) bool {
			return (anyAgg || b.Aggregate == agg) && (cat == "" || b.Category == cat) &&
				(sym == "" || b.Symptoms[sym] > 0) && (app == "" || b.App == app)
		}
	}
	return o
}

// Overrides are operator overrides of exporters' sampling, by exporter;
// as a flag.Value it collects EXPORTER=packet:N|flow:N|none.
type Overrides map[string]consolidate.Override

func (f Overrides) String() string { return "" }

// Set adds one EXPORTER=packet:N, EXPORTER=flow:N or EXPORTER=none.
func (f Overrides) Set(v string) error {
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
