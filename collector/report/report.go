package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// DefaultWindow is the default pairing window.
const DefaultWindow = 120 * time.Second

// DefaultCategory names biflows that no category applies to.
const DefaultCategory = "Unclassified"

// Usage groupings (Options.By).
const (
	ByAggregateCategory = ""
	ByAggregate         = "aggregate"
	ByCategory          = "category"
	ByProbe             = "probe" // the probes (exporter/domain) whose observations were kept, ";"-joined
	ByAS                = "as"    // source (initiator) AS × destination AS, from Options.AS
	// ByHost groups by endpoint address: a biflow counts in the rows of
	// both its endpoints, so the rows sum to twice the totals.
	ByHost = "host"
	// BySymptom groups by symptom name: a biflow counts in the row of each
	// symptom it carries (Hits sums the symptom's counts); biflows
	// without symptoms are in no row.
	BySymptom = "symptom"
	// ByApp groups by application: the biflow's application name (server
	// name, else HTTP host, else DNS question name) mapped through
	// Options.Services, else its registered domain, else service.Unknown.
	ByApp = "app"
)

// Biflow orders (Options.Order).
const (
	OrderTime  = "time"
	OrderBytes = "bytes"
)

// Options control Build and ListFlows. The zero value means defaults.
type Options struct {
	// Window is how far apart in time two opposite flows may be and still
	// pair (and how close a continuation record must start); 0 means
	// DefaultWindow.
	Window time.Duration
	// Names names each record's ids by its origin and time (see
	// store.NameIndex; StoreInputs fills it from the store).
	Names *store.NameIndex
	// SymptomName, CategoryName and AggregateName turn ids into names
	// where Names has none for a record. Nil or an empty result means:
	// the decimal id for symptoms, DefaultCategory for categories, ""
	// for aggregates.
	SymptomName   func(id uint16) string
	CategoryName  func(id uint16) string
	AggregateName func(id uint32) string
	// Rules, when set, name a biflow's category: the first rule that
	// holds (classify.Rules.Classify, with the pair context of every
	// biflow of the report when the rules use pair); when none holds, or
	// without rules, the probes' category id names it.
	Rules *classify.Rules
	// By selects the usage grouping: ByAggregateCategory (default),
	// ByAggregate or ByCategory.
	By string
	// Order sorts the listed biflows or flows: OrderTime (default, by
	// start) or OrderBytes (largest first).
	Order string
	// Limit caps the number of listed biflows or flows (0: all). Usage and
	// summary always cover everything.
	Limit int
	// Offset skips that many of the sorted biflows or flows before the
	// listed ones (pages: --offset N --limit M, then the summary's
	// next_offset).
	Offset int
	// Collector counters to show in the summary, when known.
	Stats *store.Stats
	// StoreErrors are records the store could not decode, by reason.
	StoreErrors map[string]uint64
	// AS maps addresses to AS numbers for ByAS.
	AS *consolidate.ASTable
	// Confidence is the level of the estimate intervals (default 0.95).
	Confidence float64
	// NoDedup keeps duplicate observations: every probe's observation of
	// a direction is summed (consolidate.Config.KeepDuplicates).
	NoDedup bool
	// Bucket, when positive, splits the usage table into time buckets of
	// this length (by biflow start), e.g. 5 minutes.
	Bucket time.Duration
	// Overrides replace the sampling of the named exporters' records
	// (operator override, by store.Origin.Exporter).
	Overrides map[string]consolidate.Override
	// Announcements are the sampling configurations the store kept per
	// origin (store.Store.Announcements; StoreInputs fills it). Records
	// without a sampling interval of their own are scaled by them; see
	// the package documentation.
	Announcements map[store.Origin][]store.Announcement
	// Match, when set, keeps only the stored records it accepts (before
	// pairing; see Selection's --host, --port and --proto).
	Match func(*flow.Record) bool
	// Keep, when set, keeps only the biflows it accepts (after pairing
	// and naming; see Params' --aggregate, --category and --symptom):
	// the usage table and the summary then cover the kept biflows, and
	// the summary's flows, first and last their records.
	Keep func(*Biflow) bool
	// Ledgers are the probes' loss ledgers the store kept
	// (store.Store.Ledgers; StoreInputs fills it).
	Ledgers []store.Ledger
	// Services name each biflow's App from its application name (nil:
	// service.Default()).
	Services *service.List

	// lean: makeBiflow leaves App and Probes empty (biflows only
	// classified or indexed, or added to a Roller's cells, which use
	// neither).
	lean bool
	// originNames, when set, caches exporterName's names of origins.
	originNames map[consolidate.Origin]string
	// symLists, when set, holds emptied symptom lists for makeBiflow
	// to reuse (the Roller's, of biflows accounted and not indexed).
	symLists *[][]classify.NamedCount
	// usageOnly: Assemble lists no biflow (a composed report's
	// parts carry their usage only).
	usageOnly bool
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// originName is exporterName of a consolidated biflow's origin.
func (o *Options) originName(x consolidate.Origin) string {
	if o.originNames == nil {
		return exporterName(x.Probe, x.Domain)
	}
	n, ok := o.originNames[x]
	if !ok {
		n = exporterName(x.Probe, x.Domain)
		o.originNames[x] = n
	}
	return n
}

func (o *Options) window() int64 {
	if o.Window <= 0 {
		return int64(DefaultWindow)
	}
	return int64(o.Window)
}

func (o *Options) symptomName(id uint16) string {
	if o.SymptomName != nil {
		if n := o.SymptomName(id); n != "" {
			return n
		}
	}
	return strconv.Itoa(int(id))
}

func (o *Options) categoryName(id uint16) string {
	if o.CategoryName != nil && id != 0 {
		if n := o.CategoryName(id); n != "" {
			return n
		}
	}
	return DefaultCategory
}

func (o *Options) aggregateName(id uint32) string {
	if o.AggregateName != nil && id != 0 {
		return o.AggregateName(id)
	}
	return ""
}

// CheckBy reports whether by is a usage grouping this package implements.
func CheckBy(by string) error {
	switch by {
	case ByAggregateCategory, ByAggregate, ByCategory, ByProbe, ByAS, ByHost, BySymptom, ByApp:
		return nil
	}
	return fmt.Errorf("unknown report grouping %q (want aggregate, category, as, probe, host, symptom or app)", by)
}

// Timestamp is a time in ns since the Unix epoch. In JSON it is RFC 3339
// in UTC with milliseconds; as a string it is nfdump's "2006-01-02
// 15:04:05.000" in UTC.
type Timestamp int64

// Time returns t as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.Unix(0, int64(t)).UTC() }

func (t Timestamp) String() string { return t.Time().Format("2006-01-02 15:04:05.000") }

// RFC3339 formats t as in the report JSON.
func (t Timestamp) RFC3339() string { return t.Time().Format("2006-01-02T15:04:05.000Z07:00") }

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, t.RFC3339()), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	*t = Timestamp(v.UnixNano())
	return nil
}

// Biflow is one connection of the report: the connection (flow.Biflow:
// the forward counters are the initiator's, Src to Dst, the R-prefixed
// ones the responder's) named for the reader. Its JSON is the report
// contract of ARCHITECTURE.md (flat, times as RFC 3339; see biflowJSON).
type Biflow struct {
	flow.Biflow
	Symptoms  map[string]uint64
	Category  string
	Aggregate string
	// Sampling is the fraction of traffic the counters saw: 1.0 when
	// unsampled, 0.01 for 1-in-100 packet sampling.
	Sampling float64
	Probes   []string
	// Origins name the probes exactly: exporter/observation domain
	// (two domains of one exporter are two probes but one entry of
	// Probes), sorted.
	Origins []string
	// Flows is how many unidirectional records were merged.
	Flows int
	// Merged counts duplicate observations of this connection by other
	// probes that were dropped (consolidate's duplicate policy).
	Merged int
	// SamplingUnknown marks a biflow with records of an exporter known
	// to sample whose domain never announced its sampling: its counters
	// and estimates are not scaled.
	SamplingUnknown bool
	// App is the application the biflow is about (Options.Services over
	// Meta; see ByApp), Meta the application metadata of its records.
	App  string
	Meta flow.App
	// Rates break a sampled biflow's counters down by direction and
	// sampling (consolidate.Biflow.Rates), for --export to state each
	// one's (consolidate.SplitRates); nil when unsampled.
	Rates []consolidate.Rate

	est        consolidate.Estimate
	pktSampled bool
	// probeKey is Origins ";"-joined (store.RollupKey.Probe), made
	// instead of Origins for a biflow of one origin (Options.lean).
	probeKey string
	// counts are the symptoms instead of Symptoms (Options.lean).
	counts []classify.NamedCount
	// indexed: a classify.Index keeps counts (the Roller does not reuse
	// the list).
	indexed bool
}

// biflowJSON is a Biflow's JSON form (the TCP flags are not part of it).
type biflowJSON struct {
	Src             netip.Addr        `json:"src"`
	Dst             netip.Addr        `json:"dst"`
	Sport           uint16            `json:"sport"`
	Dport           uint16            `json:"dport"`
	Proto           uint8             `json:"proto"`
	VLAN            uint16            `json:"vlan,omitempty"`
	Packets         uint64            `json:"packets"`
	Octets          uint64            `json:"octets"`
	RPackets        uint64            `json:"rpackets"`
	ROctets         uint64            `json:"roctets"`
	ScannedOctets   uint64            `json:"scanned_octets"`  // payload octets scanned, initiator to responder
	RScannedOctets  uint64            `json:"rscanned_octets"` // and responder to initiator
	First           Timestamp         `json:"first"`
	Last            Timestamp         `json:"last"`
	Symptoms        map[string]uint64 `json:"symptoms"`
	Category        string            `json:"category"`
	Aggregate       string            `json:"aggregate"`
	Sampling        float64           `json:"sampling"`
	Probes          []string          `json:"probes"`
	Origins         []string          `json:"origins,omitempty"`
	Flows           int               `json:"flows"`
	Merged          int               `json:"merged,omitempty"`
	SamplingUnknown bool              `json:"sampling_unknown,omitempty"`
	App             string            `json:"app"`
	ServerName      string            `json:"server_name,omitempty"`
	HTTPHost        string            `json:"http_host,omitempty"`
	ALPN            string            `json:"alpn,omitempty"`
	DNSName         string            `json:"dns_name,omitempty"`
	DNSRcode        *uint8            `json:"dns_rcode,omitempty"` // of a DNS response
	FTPData         string            `json:"ftp_data,omitempty"`  // data ports announced on an FTP control connection
}

// MarshalJSON implements json.Marshaler.
func (b Biflow) MarshalJSON() ([]byte, error) {
	var rcode *uint8
	if b.Meta.DNSResponse {
		rcode = &b.Meta.DNSRcode
	}
	return json.Marshal(biflowJSON{
		App: b.App, ServerName: b.Meta.ServerName, HTTPHost: b.Meta.HTTPHost, ALPN: b.Meta.ALPN,
		DNSName: b.Meta.DNSName, DNSRcode: rcode, FTPData: b.Meta.FTPData,
		Src: b.Src, Dst: b.Dst, Sport: b.Sport, Dport: b.Dport, Proto: b.Proto, VLAN: b.VLAN,
		Packets: b.Packets, Octets: b.Octets, RPackets: b.RPackets, ROctets: b.ROctets,
		ScannedOctets: b.ScannedOctets, RScannedOctets: b.RScannedOctets,
		First: Timestamp(b.First), Last: Timestamp(b.Last),
		Symptoms: b.Symptoms, Category: b.Category, Aggregate: b.Aggregate, Sampling: b.Sampling,
		Probes: b.Probes, Origins: b.Origins, Flows: b.Flows, Merged: b.Merged, SamplingUnknown: b.SamplingUnknown,
	})
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Biflow) UnmarshalJSON(data []byte) error {
	var j biflowJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = Biflow{
		Biflow: flow.Biflow{
			Key:     flow.Key{Src: j.Src, Dst: j.Dst, Sport: j.Sport, Dport: j.Dport, Proto: j.Proto, VLAN: j.VLAN},
			Packets: j.Packets, Octets: j.Octets, RPackets: j.RPackets, ROctets: j.ROctets,
			ScannedOctets: j.ScannedOctets, RScannedOctets: j.RScannedOctets,
			First: int64(j.First), Last: int64(j.Last),
		},
		Symptoms: j.Symptoms, Category: j.Category, Aggregate: j.Aggregate, Sampling: j.Sampling,
		Probes: j.Probes, Origins: j.Origins, Flows: j.Flows, Merged: j.Merged, SamplingUnknown: j.SamplingUnknown,
		App:  j.App,
		Meta: flow.App{ServerName: j.ServerName, HTTPHost: j.HTTPHost, ALPN: j.ALPN, DNSName: j.DNSName, FTPData: j.FTPData},
	}
	if j.DNSRcode != nil {
		b.Meta.DNSResponse, b.Meta.DNSRcode = true, *j.DNSRcode
	}
	return nil
}

// UsageRow is one row of the usage table.
type UsageRow struct {
	Aggregate       string `json:"aggregate"`
	Category        string `json:"category"`
	Biflows         int    `json:"biflows"`
	Packets         uint64 `json:"packets"`
	Octets          uint64 `json:"octets"`
	EstimatedOctets uint64 `json:"estimated_octets"`
	// Probe, SrcAS and DstAS are set by the probe and as groupings.
	Probe string `json:"probe,omitempty"`
	SrcAS uint32 `json:"src_as,omitempty"`
	DstAS uint32 `json:"dst_as,omitempty"`
	// Host is set by the host grouping, Symptom and Hits (the sum of the
	// symptom's counts) by the symptom grouping.
	Host    string `json:"host,omitempty"`
	Symptom string `json:"symptom,omitempty"`
	Hits    uint64 `json:"hits,omitempty"`
	// App is set by the app grouping (Biflow.App).
	App string `json:"app,omitempty"`
	// Bucket is the start of the row's time bucket (Options.Bucket), by
	// the biflows' start times.
	Bucket *Timestamp `json:"bucket,omitempty"`
	// Merged counts duplicate observations dropped.
	Merged int `json:"merged,omitempty"`
	// Estimate extrapolates sampled traffic, with confidence intervals;
	// absent when nothing in the row was sampled.
	Estimate *Estimate `json:"estimate,omitempty"`

	est     consolidate.EstimateSum // exact: the same in any order of the biflows
	sampled bool
	pktSmp  bool
}

// Estimate is an extrapolated total with its confidence interval:
// estimate ± z·sqrt(variance) (consolidate's package documentation gives
// the estimators and variances). The lower ends never go below what was
// observed. Under packet sampling the biflow count is a lower bound
// (BiflowsLowerBound) and has no interval.
type Estimate struct {
	Confidence        float64 `json:"confidence"`
	Biflows           float64 `json:"biflows"`
	BiflowsLow        float64 `json:"biflows_low"`
	BiflowsHigh       float64 `json:"biflows_high"`
	BiflowsLowerBound bool    `json:"biflows_lower_bound,omitempty"`
	Packets           uint64  `json:"packets"`
	PacketsLow        uint64  `json:"packets_low"`
	PacketsHigh       uint64  `json:"packets_high"`
	Octets            uint64  `json:"octets"`
	OctetsLow         uint64  `json:"octets_low"`
	OctetsHigh        uint64  `json:"octets_high"`
}

func makeEstimate(e *consolidate.Estimate, z, conf float64, biflows int, packets, octets uint64, pktSampled bool) *Estimate {
	// The estimates are at least what was observed and inside their
	// intervals (consolidate.Interval), converted with saturation
	// (consolidate.Round): low <= estimate <= high always.
	r := consolidate.Round
	out := &Estimate{Confidence: conf}
	lo, hi := consolidate.Interval(e.Biflows, e.VarBiflows, z, uint64(biflows))
	out.Biflows, out.BiflowsLow, out.BiflowsHigh = min(max(e.Biflows, lo), hi), lo, hi
	if pktSampled {
		out.BiflowsLowerBound = true
	}
	lo, hi = consolidate.Interval(e.Packets, e.VarPackets, z, packets)
	out.Packets, out.PacketsLow, out.PacketsHigh = r(min(max(e.Packets, lo), hi)), r(lo), r(hi)
	lo, hi = consolidate.Interval(e.Octets, e.VarOctets, z, octets)
	out.Octets, out.OctetsLow, out.OctetsHigh = r(min(max(e.Octets, lo), hi)), r(lo), r(hi)
	return out
}

// Summary totals a report and carries the collector's counters.
type Summary struct {
	Flows   int `json:"flows"`
	Biflows int `json:"biflows"`
	Listed  int `json:"listed"`
	// Offset is where the listed page starts; NextOffset, when more
	// biflows follow it, is the --offset of the next page.
	Offset          int        `json:"offset,omitempty"`
	NextOffset      int        `json:"next_offset,omitempty"`
	Packets         uint64     `json:"packets"`
	Octets          uint64     `json:"octets"`
	EstimatedOctets uint64     `json:"estimated_octets"`
	First           *Timestamp `json:"first,omitempty"`
	Last            *Timestamp `json:"last,omitempty"`
	// RecordsPrunedBefore and RecordsNote, for a report from the stored
	// records over a range without a start, when retention deleted
	// records: those that ended before it may be missing.
	RecordsPrunedBefore *Timestamp `json:"records_pruned_before,omitempty"`
	RecordsNote         string     `json:"records_note,omitempty"`
	// Collector counters, when the store had them.
	Messages *uint64 `json:"messages,omitempty"`
	Records  *uint64 `json:"records,omitempty"`
	Lost     *uint64 `json:"lost,omitempty"`
	// SocketDrops are datagrams the collector's kernel dropped; Dropped
	// are records it received but could not store (store busy too long).
	SocketDrops uint64            `json:"socket_drops,omitempty"`
	Dropped     uint64            `json:"dropped,omitempty"`
	Malformed   map[string]uint64 `json:"malformed,omitempty"`
	// Evicted is collector state dropped to stay within its limits, by
	// kind (templates, templates-expired, domains, exporters).
	Evicted map[string]uint64 `json:"evicted,omitempty"`
	// Merged counts duplicate observations dropped.
	Merged int `json:"merged,omitempty"`
	// SamplingUnknown counts records of exporters known to sample whose
	// domain never announced its sampling: reported unscaled, and their
	// biflows marked.
	SamplingUnknown uint64 `json:"sampling_unknown,omitempty"`
	// Estimate extrapolates sampled traffic; absent when unsampled.
	Estimate *Estimate `json:"estimate,omitempty"`
	// DecodeErrors are packets the probes could not decode, by reason.
	DecodeErrors map[string]uint64 `json:"decode_errors,omitempty"`
	// StoreErrors are stored records that could not be read, by reason.
	StoreErrors map[string]uint64 `json:"store_errors,omitempty"`
	// EstimatedPackets and EstimatedOctets extrapolate sampled or
	// regulated traffic, with their 95 % (Options.Confidence) interval;
	// unsampled, they are the observed totals.
	EstimatedPackets     uint64 `json:"estimated_packets"`
	EstimatedPacketsLow  uint64 `json:"estimated_packets_low"`
	EstimatedPacketsHigh uint64 `json:"estimated_packets_high"`
	EstimatedOctetsLow   uint64 `json:"estimated_octets_low"`
	EstimatedOctetsHigh  uint64 `json:"estimated_octets_high"`
	// Loss is the loss ledger over all probes and the collector: stage
	// (flow.LossStages) -> packets or records lost there. The probes'
	// stages come from their ledger options (all time, not only the
	// report's window); the collector's from its counters.
	Loss map[string]uint64 `json:"loss"`
	// Ledgers are the probes' ledgers, one per exporting process.
	Ledgers []ProbeLedger `json:"ledgers,omitempty"`
	// RegulationChanges counts the probes' self-regulation changes
	// (state or rate), over all origins: what their ledgers say, or for
	// an origin whose ledgers do not say, the changes of its announced
	// sampling (which cannot show shedding: the rate stays 1).
	RegulationChanges int `json:"regulation_changes"`
	// QueueLossScaled is the loss ledger's queue stage as packets of
	// the wire, over all probes: a packet a full queue dropped while
	// self-regulation kept 1 connection in N stood for N. It is what
	// the queue losses take from estimated_packets (the estimate
	// scales only what was metered); from probes that do not say, their
	// queue stage as it is.
	QueueLossScaled uint64 `json:"queue_loss_scaled"`
	// Rollup is set when the report was answered from the rollups
	// (FromRollups): no biflows are listed.
	Rollup *RollupInfo `json:"rollup,omitempty"`
}

// ProbeLedger is one exporting process's ledger as a report shows it.
type ProbeLedger struct {
	Probe    string            `json:"probe"`
	Domain   uint32            `json:"domain"`
	Started  time.Time         `json:"started"`
	Messages uint64            `json:"messages"`
	Records  uint64            `json:"records"`
	Loss     map[string]uint64 `json:"loss"`
	// RegulationChanges is the process's count of self-regulation
	// changes (state or rate).
	RegulationChanges uint64 `json:"regulation_changes"`
	// QueueLossScaled is the queue stage as packets of the wire.
	QueueLossScaled uint64 `json:"queue_loss_scaled"`
}

// Report is the biflow report of ARCHITECTURE.md §3 plus a summary.
type Report struct {
	Biflows []Biflow   `json:"biflows"`
	Usage   []UsageRow `json:"usage"`
	Summary Summary    `json:"summary"`

	by string
}

// Build pairs flows into biflows and computes the usage table and summary.
// flows is not changed and the report keeps no references into it.
//
// Pairing, duplicate suppression and the estimators are package
// consolidate's, the same code that forwards biflows live: the records
// are fed to a consolidate.Consolidator (Batch) in start order.
// Build is Assemble over the one Part of all flows (BuildPart).
func Build(flows []store.StoredFlow, opts Options) *Report {
	return Assemble([]*Part{BuildPart(flows, opts)}, opts)
}

// Part is what a report takes from a set of records: their biflows
// (paired, deduplicated, named, classified and kept by Options.Keep) and
// the summary counts over them. Parts of record sets that share no
// address pair (neither a connection nor a classification's pair
// context spans two sets) add up: Assemble over the parts of such a
// split is the report over all the records (see collector/cluster).
type Part struct {
	Biflows []Biflow
	// Flows counts the records (without Keep) or the kept biflows'
	// records; First and Last (when HasSpan) are their time span.
	Flows       int
	First, Last int64
	HasSpan     bool
	// Merged is the duplicate observations dropped: the consolidator's
	// count (without Keep) or the kept biflows'; SamplingUnknown the
	// consolidator's unscaled records.
	Merged          int
	SamplingUnknown uint64
	// Exporters are the exporters of the part's records, sorted, when
	// it was built with sampling overrides (Options.Overrides; nil
	// otherwise): CheckOverrides refuses an override of an exporter no
	// part's records came from.
	Exporters []string

	// agg, when set (Aggregate), is the usage of all the part's
	// biflows, of which Biflows holds only the first in listing order.
	agg *usageAcc
}

func (p *Part) span(f, l int64) {
	if !p.HasSpan {
		p.First, p.Last, p.HasSpan = f, l, true
		return
	}
	p.First, p.Last = min(p.First, f), max(p.Last, l)
}

// BuildPart pairs flows into named and classified biflows (Build's
// first half). With rules that read the pair context, the context is
// the biflows of flows.
func BuildPart(flows []store.StoredFlow, opts Options) *Part {
	return buildPart(flows, opts, opts.Rules != nil && opts.Rules.UsesPair())
}

// exportersOf lists the exporters of flows, sorted.
func exportersOf(flows []store.StoredFlow) []string {
	seen := map[string]bool{}
	for i := range flows {
		seen[flows[i].Origin.Exporter] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// buildPart is BuildPart; pairs says the rules read the pair context.
// The pair context needs every biflow first: the biflows are kept as the
// consolidator completes them, indexed, then named and classified (one
// pairing, where the report used to pair twice).
func buildPart(flows []store.StoredFlow, opts Options, pairs bool) *Part {
	p := &Part{Biflows: []Biflow{}, Flows: len(flows)}
	if len(opts.Overrides) > 0 {
		p.Exporters = exportersOf(flows)
	}
	var done []consolidate.Biflow
	c := consolidate.New(&consolidate.Config{
		Window: time.Duration(opts.window()), Overrides: opts.Overrides,
		Batch: true, KeepDuplicates: opts.NoDedup,
		Sink: func(b *consolidate.Biflow) {
			if pairs {
				cp := *b
				cp.Symptoms = slices.Clone(b.Symptoms)
				cp.Probes = slices.Clone(b.Probes)
				cp.Origins = slices.Clone(b.Origins)
				cp.Rates = slices.Clone(b.Rates)
				done = append(done, cp)
				return
			}
			bf := makeBiflow(b, &opts, nil)
			if opts.Keep == nil || opts.Keep(&bf) {
				p.Biflows = append(p.Biflows, bf)
			}
		},
	})
	// Start order; ties by origin (exporter, domain), then in store
	// order. The start times are copied next to the indexes so that
	// the sort reads one compact array (a stable sort over indexes into
	// flows missed the cache on most comparisons and took about a tenth
	// of a large report). Ordering ties by origin makes the order of two
	// probes' records of one connection independent of how the store
	// interleaved them; within one origin, a store keeps its records in
	// end time order (store.Store.Flows), which any subset of them
	// keeps too.
	type startAt struct {
		first int64
		i     int
	}
	order := make([]startAt, len(flows))
	for i := range flows {
		order[i] = startAt{flows[i].Record.First, i}
	}
	slices.SortFunc(order, func(a, b startAt) int {
		if c := cmp.Compare(a.first, b.first); c != 0 {
			return c
		}
		if oa, ob := &flows[a.i].Origin, &flows[b.i].Origin; *oa != *ob {
			if c := cmp.Compare(oa.Exporter, ob.Exporter); c != 0 {
				return c
			}
			return cmp.Compare(oa.Domain, ob.Domain)
		}
		return cmp.Compare(a.i, b.i)
	})
	idx := make([]int, len(flows))
	for j := range order {
		idx[j] = order[j].i
	}
	smp := newSamplingIndex(opts.Announcements, opts.Names)
	nm := newNamer(&opts)
	nm.install(&opts) // before the first biflow is made
	var named flow.Record
	for _, i := range idx {
		f := &flows[i]
		r := nm.rename(f.Origin, &f.Record, &named)
		pkt, fl, unknown := smp.resolve(f.Origin, r)
		if pkt != r.SamplingPacketInterval || fl != r.SamplingFlowInterval {
			rr := *r
			rr.SamplingPacketInterval, rr.SamplingFlowInterval = pkt, fl
			r = &rr
		}
		c.AddRecord(consolidate.Origin{Probe: f.Origin.Exporter, Domain: f.Origin.Domain}, r, unknown)
	}
	c.Flush()
	if pairs {
		// Every biflow is context, not only those Keep lists: a
		// filtered report lists the unfiltered report's biflows that
		// match, classified alike.
		ctx := opts
		ctx.Rules, ctx.lean = nil, true
		ix := opts.Rules.NewIndex()
		for i := range done {
			b := makeBiflow(&done[i], &ctx, nil)
			ix.Add(b.input())
		}
		for i := range done {
			bf := makeBiflow(&done[i], &opts, ix)
			if opts.Keep == nil || opts.Keep(&bf) {
				p.Biflows = append(p.Biflows, bf)
			}
		}
	}
	st := c.Stats()
	p.Merged = int(st.Duplicates)
	p.SamplingUnknown = st.Unscaled
	if opts.Keep == nil {
		for i := range flows {
			p.span(flows[i].Record.First, flows[i].Record.Last)
		}
	} else {
		// The kept biflows' records, span and duplicates: the records
		// read around them (--started reads on to the end of the store)
		// are context, not the report's.
		p.Flows, p.Merged = 0, 0
		for i := range p.Biflows {
			p.Flows += p.Biflows[i].Flows
			p.Merged += p.Biflows[i].Merged
			p.span(p.Biflows[i].First, p.Biflows[i].Last)
		}
	}
	return p
}

// compareBiflows is the order Assemble sums biflows in (and lists them
// in by time): by start, key, then counters and probes, and, for
// biflows alike in those (connections of one key that started in the
// same millisecond), by everything else the report shows or sums, so
// that the floating-point sums of the estimates and the listing do not
// depend on how the records were split into parts or in which order
// the parts came: a total order over what a report holds of a biflow.
func compareBiflows(a, b *Biflow) int {
	if c := cmp.Compare(a.First, b.First); c != 0 {
		return c
	}
	if c := a.Key.Compare(b.Key); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Last, b.Last); c != 0 {
		return c
	}
	for _, d := range [...][2]uint64{{a.Packets, b.Packets}, {a.Octets, b.Octets}, {a.RPackets, b.RPackets}, {a.ROctets, b.ROctets}} {
		if c := cmp.Compare(d[0], d[1]); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.Flows, b.Flows); c != 0 {
		return c
	}
	if c := slices.Compare(a.Origins, b.Origins); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Category, b.Category); c != 0 {
		return c
	}
	return compareRest(a, b)
}

// compareRest orders biflows that compareBiflows' leading fields tie.
func compareRest(a, b *Biflow) int {
	for _, d := range [...][2]float64{{a.Sampling, b.Sampling},
		{a.est.Biflows, b.est.Biflows}, {a.est.Packets, b.est.Packets}, {a.est.Octets, b.est.Octets},
		{a.est.VarBiflows, b.est.VarBiflows}, {a.est.VarPackets, b.est.VarPackets}, {a.est.VarOctets, b.est.VarOctets}} {
		if c := cmp.Compare(d[0], d[1]); c != 0 {
			return c
		}
	}
	for _, d := range [...][2]uint64{{a.ScannedOctets, b.ScannedOctets}, {a.RScannedOctets, b.RScannedOctets},
		{uint64(a.TCPFlags), uint64(b.TCPFlags)}, {uint64(a.RTCPFlags), uint64(b.RTCPFlags)},
		{uint64(a.Merged), uint64(b.Merged)}, {b2u(a.SamplingUnknown), b2u(b.SamplingUnknown)}, {b2u(a.pktSampled), b2u(b.pktSampled)},
		{b2u(a.Meta.DNSResponse), b2u(b.Meta.DNSResponse)}, {uint64(a.Meta.DNSRcode), uint64(b.Meta.DNSRcode)}} {
		if c := cmp.Compare(d[0], d[1]); c != 0 {
			return c
		}
	}
	for _, d := range [...][2]string{{a.Aggregate, b.Aggregate}, {a.App, b.App}, {a.probeKey, b.probeKey},
		{a.Meta.ServerName, b.Meta.ServerName}, {a.Meta.HTTPHost, b.Meta.HTTPHost}, {a.Meta.ALPN, b.Meta.ALPN},
		{a.Meta.DNSName, b.Meta.DNSName}, {a.Meta.FTPData, b.Meta.FTPData}} {
		if c := cmp.Compare(d[0], d[1]); c != 0 {
			return c
		}
	}
	if c := slices.Compare(a.Probes, b.Probes); c != 0 {
		return c
	}
	if c := compareSymptoms(a.Symptoms, b.Symptoms); c != 0 {
		return c
	}
	return slices.CompareFunc(a.counts, b.counts, func(x, y classify.NamedCount) int {
		if c := cmp.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return cmp.Compare(x.Count, y.Count)
	})
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// compareSymptoms orders symptom counts by their names and counts in
// name order.
func compareSymptoms(x, y map[string]uint64) int {
	if len(x) == 0 && len(y) == 0 {
		return 0
	}
	kx, ky := slices.Sorted(maps.Keys(x)), slices.Sorted(maps.Keys(y))
	if c := slices.Compare(kx, ky); c != 0 {
		return c
	}
	for _, k := range kx {
		if c := cmp.Compare(x[k], y[k]); c != 0 {
			return c
		}
	}
	return 0
}

// Assemble makes the report of parts (BuildPart over record sets that
// share no address pair): the biflows in one order, the usage table and
// the summary. Parts that carry their usage already (Part.Aggregate) add
// exactly: the report is Build's over the same records, byte for byte.
func Assemble(parts []*Part, opts Options) *Report {
	rep := &Report{Biflows: []Biflow{}, Usage: []UsageRow{}, by: opts.By}
	s := &rep.Summary
	span := func(f, l int64) {
		first, last := Timestamp(f), Timestamp(l)
		if s.First == nil || first < *s.First {
			s.First = &first
		}
		if s.Last == nil || last > *s.Last {
			s.Last = &last
		}
	}
	// The biflows of full parts are summed one by one in one order;
	// those of aggregated parts came summed.
	var full []Biflow
	if len(parts) == 1 && parts[0].agg == nil {
		full = parts[0].Biflows
	}
	acc := newUsageAcc()
	var tops []Biflow
	aggregated := false
	n := 0
	for _, p := range parts {
		if p.agg != nil {
			aggregated = true
			acc.merge(p.agg)
			tops = append(tops, p.Biflows...)
			n += p.agg.biflows
		} else {
			if len(parts) > 1 {
				full = append(full, p.Biflows...)
			}
			n += len(p.Biflows)
		}
		s.Flows += p.Flows
		s.Merged += p.Merged
		s.SamplingUnknown += p.SamplingUnknown
		if p.HasSpan {
			span(p.First, p.Last)
		}
	}
	slices.SortFunc(full, func(a, b Biflow) int { return compareBiflows(&a, &b) })
	for i := range full {
		acc.add(&full[i], &opts)
	}
	total, rows := acc.total.Estimate(), acc.rows
	sampled, pktSmp := acc.sampled, acc.pktSmp
	s.Packets, s.Octets = acc.packets, acc.octets
	rep.Biflows = full
	if aggregated {
		rep.Biflows = append(slices.Clip(full), tops...)
		slices.SortFunc(rep.Biflows, func(a, b Biflow) int { return compareBiflows(&a, &b) })
	}
	conf := opts.Confidence
	if conf <= 0 || conf >= 1 {
		conf = 0.95
	}
	z := consolidate.NormalQuantile(0.5 + conf/2)
	s.EstimatedOctets = max(consolidate.Round(total.Octets), s.Octets)
	if sampled {
		s.Estimate = makeEstimate(&total, z, conf, n, s.Packets, s.Octets, pktSmp)
	}
	for _, row := range rows {
		est := row.est.Estimate()
		row.EstimatedOctets = max(consolidate.Round(est.Octets), row.Octets)
		if row.sampled {
			row.Estimate = makeEstimate(&est, z, conf, row.Biflows, row.Packets, row.Octets, row.pktSmp)
		}
		rep.Usage = append(rep.Usage, *row)
	}
	sortUsage(rep.Usage)
	s.Biflows = n
	if opts.Order == OrderBytes {
		sortBiflows(rep.Biflows, opts.Order)
	}
	if opts.usageOnly {
		rep.Biflows = []Biflow{}
	} else {
		rep.Biflows, s.Offset, s.NextOffset = pageOf(rep.Biflows, n, opts.Offset, opts.Limit)
	}
	s.Listed = len(rep.Biflows)
	if st := opts.Stats; st != nil {
		s.Messages, s.Records, s.Lost = &st.Messages, &st.Records, &st.Lost
		s.SocketDrops, s.Dropped = st.SocketDrops, st.Dropped
		s.Malformed = st.Malformed
		s.Evicted = st.Evicted
		s.DecodeErrors = st.DecodeErrors
	}
	if len(opts.StoreErrors) > 0 {
		s.StoreErrors = opts.StoreErrors
	}
	s.EstimatedPackets, s.EstimatedPacketsLow, s.EstimatedPacketsHigh = s.Packets, s.Packets, s.Packets
	s.EstimatedOctetsLow, s.EstimatedOctetsHigh = s.EstimatedOctets, s.EstimatedOctets
	if e := s.Estimate; e != nil {
		s.EstimatedPackets, s.EstimatedPacketsLow, s.EstimatedPacketsHigh = e.Packets, e.PacketsLow, e.PacketsHigh
		s.EstimatedOctetsLow, s.EstimatedOctetsHigh = min(e.OctetsLow, s.EstimatedOctets), max(e.OctetsHigh, s.EstimatedOctets)
	}
	s.Loss, s.Ledgers = lossLedger(&opts)
	s.RegulationChanges = regulationChanges(opts.Announcements, opts.Ledgers)
	s.QueueLossScaled = queueLossScaled(s.Ledgers)
	return rep
}

// sortUsage orders usage rows: by bucket, largest first, then by name.
func sortUsage(rows []UsageRow) {
	slices.SortFunc(rows, func(a, b UsageRow) int {
		if a.Bucket != nil && b.Bucket != nil && *a.Bucket != *b.Bucket {
			return cmp.Compare(*a.Bucket, *b.Bucket)
		}
		if c := cmp.Compare(b.Octets, a.Octets); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Aggregate, b.Aggregate); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Probe, b.Probe); c != 0 {
			return c
		}
		if c := cmp.Compare(a.SrcAS, b.SrcAS); c != 0 {
			return c
		}
		if c := cmp.Compare(a.DstAS, b.DstAS); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Symptom, b.Symptom); c != 0 {
			return c
		}
		if c := cmp.Compare(a.App, b.App); c != 0 {
			return c
		}
		return cmp.Compare(a.Category, b.Category)
	})
}

// lossLedger sums the probes' ledgers and the collector's counters into
// the report's loss stages, and lists each probe process's ledger.
func lossLedger(opts *Options) (map[string]uint64, []ProbeLedger) {
	var total flow.Loss
	var per []ProbeLedger
	for i := range opts.Ledgers {
		l := &opts.Ledgers[i]
		total.Add(l.Loss)
		per = append(per, ProbeLedger{Probe: l.Origin.Exporter, Domain: l.Origin.Domain, Started: time.UnixMilli(l.SystemInit).UTC(),
			Messages: l.Messages, Records: l.Records, Loss: l.Loss.Map(), RegulationChanges: l.RegulationChanges,
			QueueLossScaled: max(l.QueueScaled, l.Loss.Queue)})
	}
	if st := opts.Stats; st != nil {
		total.Socket += st.SocketDrops
		total.Sequence += st.Lost
		for _, n := range st.Malformed {
			total.Malformed += n
		}
		total.Store += st.Dropped
	}
	for _, n := range opts.StoreErrors {
		total.Store += n
	}
	return total.Map(), per
}

// queueLossScaled sums the probes' queue losses as packets of the wire.
func queueLossScaled(ls []ProbeLedger) (n uint64) {
	for _, l := range ls {
		n += l.QueueLossScaled
	}
	return n
}

// regulationChanges counts the origins' self-regulation changes. A
// probe's ledgers (one per process) count every change; announcements
// see only changes of rate (a probe that starts shedding, or returns to
// normal from shedding, keeps rate 1, and its first announcement sets
// the rate rather than changing it), so they are the count only for an
// origin whose ledgers say less: exporters that do not send the count.
func regulationChanges(anns map[store.Origin][]store.Announcement, ledgers []store.Ledger) int {
	fromLedgers := map[store.Origin]uint64{}
	for i := range ledgers {
		fromLedgers[ledgers[i].Origin] += ledgers[i].RegulationChanges
	}
	n := uint64(0)
	for o, l := range anns {
		var a uint64
		for i := 1; i < len(l); i++ {
			if max(l[i].Interval, 1) != max(l[i-1].Interval, 1) || l[i].Flow != l[i-1].Flow {
				a++
			}
		}
		n += max(a, fromLedgers[o])
		delete(fromLedgers, o)
	}
	for _, c := range fromLedgers {
		n += c
	}
	return int(n)
}

func sortBiflows(bs []Biflow, order string) {
	slices.SortStableFunc(bs, func(a, b Biflow) int {
		if order == OrderBytes {
			if c := cmp.Compare(b.Octets+b.ROctets, a.Octets+a.ROctets); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.First, b.First); c != 0 {
			return c
		}
		return a.Key.Compare(b.Key)
	})
}

// makeBiflow names a consolidated biflow for the report.
func makeBiflow(cb *consolidate.Biflow, opts *Options, ix *classify.Index) Biflow {
	b := Biflow{
		Biflow:   cb.Biflow,
		Sampling: cb.Sampling, Flows: cb.Flows, Merged: cb.Merged,
		SamplingUnknown: cb.SamplingUnknown,
		Meta:            cb.App,
		est:             cb.Est, pktSampled: cb.PacketSampled,
	}
	if b.Sampling <= 0 {
		b.Sampling = 1
	}
	if !opts.lean && (cb.PacketSampled || cb.FlowSampled) {
		b.Rates = slices.Clone(cb.Rates)
	}
	if opts.lean {
		// A list, not a map (cheaper to make; classify.Input.Counts).
		if l := opts.symLists; l != nil && len(*l) > 0 && len(cb.Symptoms) > 0 {
			b.counts = (*l)[len(*l)-1]
			(*l)[len(*l)-1] = nil
			*l = (*l)[:len(*l)-1]
		}
	next:
		for _, sc := range cb.Symptoms {
			name := opts.symptomName(sc.ID)
			for i := range b.counts {
				if b.counts[i].Name == name {
					b.counts[i].Count += uint64(sc.Count)
					continue next
				}
			}
			b.counts = append(b.counts, classify.NamedCount{Name: name, Count: uint64(sc.Count)})
		}
	} else {
		b.Symptoms = make(map[string]uint64, len(cb.Symptoms))
		for _, sc := range cb.Symptoms {
			b.Symptoms[opts.symptomName(sc.ID)] += uint64(sc.Count)
		}
	}
	if !opts.lean {
		b.App = opts.Services.App(&b.Meta)
		b.Probes = make([]string, 0, len(cb.Probes))
		for _, p := range cb.Probes {
			if p != "" && !slices.Contains(b.Probes, p) {
				b.Probes = append(b.Probes, p)
			}
		}
		slices.Sort(b.Probes)
	}
	if opts.lean && len(cb.Origins) == 1 {
		b.probeKey = opts.originName(cb.Origins[0]) // Origins left empty
	} else {
		b.Origins = make([]string, 0, len(cb.Origins))
		for _, o := range cb.Origins {
			if n := opts.originName(o); !slices.Contains(b.Origins, n) {
				b.Origins = append(b.Origins, n)
			}
		}
		slices.Sort(b.Origins)
		if opts.lean {
			b.probeKey = strings.Join(b.Origins, ";")
		}
	}
	b.Aggregate = opts.aggregateName(cb.Aggregate)
	if opts.Rules != nil {
		b.Category = opts.Rules.Classify(b.input(), ix)
	}
	if b.Category == "" {
		b.Category = opts.categoryName(cb.Category)
	}
	return b
}

// input is what classification rules read of b.
func (b *Biflow) input() *classify.Input {
	return &classify.Input{Biflow: &b.Biflow, Symptoms: b.Symptoms, Counts: b.counts, Aggregate: b.Aggregate, App: &b.Meta}
}
