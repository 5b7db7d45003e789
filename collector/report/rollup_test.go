package report

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// rollupStore describes a synthetic store for the rollup tests.
type rollupStore struct {
	name    string
	origins []store.Origin
	// sampling per origin: packet interval stamped on the records, flow
	// interval, or announced only (records carry none).
	pkt, fl, announced []uint32
	// dup: the share of connections a second origin sees too.
	dup   float64
	conns int
	span  time.Duration
}

var rollupT0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC).UnixNano()

// rollupRecords makes the records of d: connections between a few
// hundred hosts (so that port reuse, chains of active-timeout records,
// FIN ends and the pair context of the default rules all occur), each
// direction seen by one origin or by two (duplicates), with symptoms
// from the default rules' vocabulary, named differently per origin.
func rollupRecords(d rollupStore, seed uint64) []store.StoredFlow {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []store.StoredFlow
	syms := []uint16{0, 0, 0, 1, 2, 3, 4, 5}
	for i := 0; i < d.conns; i++ {
		cl := netip.AddrFrom4([4]byte{10, 16, byte(rng.IntN(4)), byte(rng.IntN(30))})
		sv := netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(20))})
		if rng.IntN(10) == 0 {
			sv = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", rng.IntN(16)))
			cl = netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", rng.IntN(16)))
		}
		proto := uint8(6)
		if rng.IntN(4) == 0 {
			proto = 17
		}
		sport := uint16(40000 + rng.IntN(8)) // reused often
		dport := []uint16{25, 80, 443, 21, 20, 53, 5060}[rng.IntN(7)]
		start := rollupT0 + rng.Int64N(int64(d.span))
		// One to four records per direction (active timeouts), the last
		// ended by FIN for most TCP connections.
		n := 1 + rng.IntN(4)
		oi := rng.IntN(len(d.origins))
		seen := []int{oi}
		if rng.Float64() < d.dup {
			seen = append(seen, (oi+1)%len(d.origins))
		}
		sym := syms[rng.IntN(len(syms))]
		reverseToo := rng.IntN(5) != 0
		for dir := 0; dir < 2; dir++ {
			if dir == 1 && !reverseToo {
				break
			}
			t := start + int64(dir)*int64(time.Millisecond)*int64(rng.IntN(20))
			for j := 0; j < n; j++ {
				dur := int64(rng.IntN(90)) * int64(time.Second)
				r := flow.Record{Key: flow.Key{Src: cl, Dst: sv, Sport: sport, Dport: dport, Proto: proto},
					First: t, Last: t + dur, Packets: uint64(1 + rng.IntN(50)), EndReason: flow.EndActive,
					Aggregate: uint32(rng.IntN(4)), Category: uint16(rng.IntN(3))}
				if dir == 1 {
					r.Src, r.Dst, r.Sport, r.Dport = sv, cl, dport, sport
				}
				r.Octets = r.Packets * uint64(40+rng.IntN(1400))
				if proto == 6 {
					r.TCPFlags = 0x10
					if j == 0 {
						r.TCPFlags |= 0x02
					}
					if j == n-1 && rng.IntN(3) != 0 {
						r.TCPFlags |= 0x01
						r.EndReason = flow.EndDetected
					}
				} else if j == n-1 {
					r.EndReason = flow.EndIdle
				}
				if sym != 0 && rng.IntN(2) == 0 {
					r.Symptoms = []flow.SymptomCount{{ID: sym, Count: uint32(1 + rng.IntN(3))}}
				}
				for _, o := range seen {
					rr := r
					rr.Symptoms = slices.Clone(r.Symptoms)
					if d.pkt[o] > 1 {
						rr.SamplingPacketInterval = d.pkt[o]
						rr.Packets = max(1, rr.Packets/uint64(d.pkt[o]))
						rr.Octets = rr.Packets * 100
					}
					if d.fl[o] > 1 {
						rr.SamplingFlowInterval = d.fl[o]
					}
					out = append(out, store.StoredFlow{Origin: d.origins[o], Record: rr})
				}
				t += dur + int64(rng.IntN(3))*int64(time.Second)
			}
		}
	}
	return out
}

// writeRollupStore stores the records in arrival order (by end, with an
// export delay) in batches, with names per origin and the announced
// sampling; it returns the store and the records in arrival order.
func writeRollupStore(t *testing.T, d rollupStore, seed uint64) (*store.Store, []store.StoredFlow) {
	t.Helper()
	recs := rollupRecords(d, seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	type arr struct {
		at int64
		f  store.StoredFlow
	}
	arrivals := make([]arr, len(recs))
	for i, f := range recs {
		arrivals[i] = arr{f.Record.Last + int64(rng.IntN(5))*int64(time.Second), f}
	}
	slices.SortStableFunc(arrivals, func(a, b arr) int { return int(max(-1, min(1, a.at-b.at))) })
	s, err := store.Open(filepath.Join(t.TempDir(), d.name+".db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	names := map[store.Origin][]store.NameAnnouncement{}
	anns := map[store.Origin][]store.Announcement{}
	for i, o := range d.origins {
		n := store.Names{
			Symptoms:   map[uint16]string{1: "MAIL", 2: "FTP", 3: "WEB", 4: "P2P", 5: "VOIP"},
			Categories: map[uint16]string{1: "Mail", 2: "Web"},
			Aggregates: map[uint32]string{1: "campus-out", 2: "campus-in", 3: "lab"},
		}
		if i%2 == 1 {
			// Another probe's database numbers them otherwise.
			n.Symptoms = map[uint16]string{1: "WEB", 2: "MAIL", 3: "FTP", 4: "VOIP", 5: "P2P"}
		}
		names[o] = []store.NameAnnouncement{{At: time.Unix(0, rollupT0), Since: rollupT0, Names: n}}
		if d.announced[i] > 1 {
			anns[o] = []store.Announcement{{At: time.Unix(0, rollupT0+int64(time.Hour)), Since: rollupT0 + int64(time.Hour), Interval: d.announced[i]}}
		}
	}
	if err := s.PutNameAnnouncements(names); err != nil {
		t.Fatal(err)
	}
	if len(anns) > 0 {
		if err := s.PutAnnouncements(anns); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]store.StoredFlow, len(arrivals))
	for i := 0; i < len(arrivals); i += 500 {
		by := map[store.Origin][]flow.Record{}
		for j := i; j < min(i+500, len(arrivals)); j++ {
			out[j] = arrivals[j].f
			by[arrivals[j].f.Origin] = append(by[arrivals[j].f.Origin], arrivals[j].f.Record)
		}
		var bs []store.Batch
		for o, r := range by {
			bs = append(bs, store.Batch{Origin: o, Records: r})
		}
		if err := s.PutBatches(bs); err != nil {
			t.Fatal(err)
		}
	}
	return s, out
}

var rollupStores = []rollupStore{
	{name: "one-probe", origins: []store.Origin{{Exporter: "192.0.2.10", Domain: 1}},
		pkt: []uint32{0}, fl: []uint32{0}, announced: []uint32{0}, conns: 3000, span: 3 * time.Hour},
	{name: "two-probes", origins: []store.Origin{{Exporter: "192.0.2.10", Domain: 1}, {Exporter: "192.0.2.11", Domain: 2}},
		pkt: []uint32{0, 0}, fl: []uint32{0, 0}, announced: []uint32{0, 0}, dup: 0.3, conns: 3000, span: 2 * time.Hour},
	{name: "sampled", origins: []store.Origin{{Exporter: "192.0.2.10", Domain: 1}, {Exporter: "192.0.2.11", Domain: 2}, {Exporter: "192.0.2.12", Domain: 0}, {Exporter: "192.0.2.12", Domain: 5}},
		pkt: []uint32{10, 0, 0, 0}, fl: []uint32{0, 4, 0, 0}, announced: []uint32{0, 0, 8, 0}, dup: 0.2, conns: 3000, span: 150 * time.Minute},
	// Intervals whose inverses float64 rounds (1/49: 1/q is not 49):
	// the estimates and variances are not integers, and their float64
	// sums differed in the last bits between the rollups' cells and the
	// records' biflows (biflows_low and _high show them).
	{name: "sampled-odd", origins: []store.Origin{{Exporter: "192.0.2.10", Domain: 1}, {Exporter: "192.0.2.11", Domain: 2}},
		pkt: []uint32{3, 0}, fl: []uint32{0, 49}, announced: []uint32{0, 0}, dup: 0.2, conns: 3000, span: 150 * time.Minute},
}

func rollupParams(t *testing.T, args ...string) *Params {
	t.Helper()
	var p Params
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	p.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	return &p
}

// comparable is what both answers must agree on: the usage table and
// the summary's totals (the rollups list no biflows).
func comparableOf(t *testing.T, r *Report) string {
	t.Helper()
	s := r.Summary
	x := struct {
		Usage                                []UsageRow
		Flows, Biflows                       int
		Packets, Octets, EstOctets, EstPkts  uint64
		EstPktLo, EstPktHi, EstOctLo, EstOct uint64
		Merged                               int
		Unknown                              uint64
		First, Last                          *Timestamp
		Estimate                             *Estimate
	}{r.Usage, s.Flows, s.Biflows, s.Packets, s.Octets, s.EstimatedOctets, s.EstimatedPackets,
		s.EstimatedPacketsLow, s.EstimatedPacketsHigh, s.EstimatedOctetsLow, s.EstimatedOctetsHigh,
		s.Merged, s.SamplingUnknown, s.First, s.Last, s.Estimate}
	b, err := json.MarshalIndent(x, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRollupsEqualRecords checks, on stores of one probe, two probes
// with duplicates and sampled probes (packet, flow and announced-only
// sampling, and a domain of unknown sampling), that the rollups a
// Rebuild makes and those a Roller keeps while the records arrive both
// answer every grouping and filter exactly as the report over the
// records does.
func TestRollupsEqualRecords(t *testing.T) {
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	cfg := RollupConfig{Rules: rules, RulesID: src.RulesID}
	for _, d := range rollupStores {
		t.Run(d.name, func(t *testing.T) {
			s, arrivals := writeRollupStore(t, d, 1)
			// The live path: records fed as they arrive, the horizon
			// advancing after each batch, cells written as they come.
			live, err := store.Open(filepath.Join(t.TempDir(), "live.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer live.Close()
			names, _ := s.NameIndex()
			anns, _ := s.Announcements()
			// The horizon held back by 5 s of a clock that moves 1 s a
			// batch.
			wall := time.Unix(0, 0)
			lc := cfg
			lc.Hold, lc.Now = 5*time.Second, func() time.Time { return wall }
			ro := NewRoller(lc, names, anns, nil)
			var enc []byte
			for i := range arrivals {
				// Half of them in the store's encoding (the collector's path).
				if a := &arrivals[i]; i%2 == 0 {
					ro.Add(a.Origin, &a.Record)
				} else {
					enc = store.AppendRecord(enc[:0], &a.Record)
					if err := ro.AddEncoded(a.Origin, a.Record.First, a.Record.Last, enc); err != nil {
						t.Fatal(err)
					}
				}
				if i%500 == 499 {
					wall = wall.Add(time.Second)
					ro.Advance()
					if err := live.PutRollups(ro.Take()); err != nil {
						t.Fatal(err)
					}
				}
			}
			if held, _ := ro.Held(); held == len(arrivals) || held > len(arrivals)/2 {
				t.Fatalf("%d of %d records still held before Flush: the horizon did not advance", held, len(arrivals))
			}
			ro.Flush()
			if err := live.PutRollups(ro.Take()); err != nil {
				t.Fatal(err)
			}
			if held, _ := ro.Held(); held != 0 {
				t.Fatalf("%d records held after Flush", held)
			}
			meta, err := Rebuild(context.Background(), s, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if meta.Records != uint64(len(arrivals)) || meta.Late != 0 {
				t.Fatalf("rebuild fed %d records (%d late), want %d", meta.Records, meta.Late, len(arrivals))
			}
			lm, _ := live.RollupMeta()
			t.Logf("%d records; live rollups: %d late", len(arrivals), lm.Late)
			sym := "FTP"
			cases := [][]string{
				nil,
				{"--by", "aggregate"},
				{"--by", "category"},
				{"--by", "probe"},
				{"--by", "symptom"},
				{"--bucket", "1h"},
				{"--bucket", "1m", "--by", "category"},
				{"--bucket", "10m", "--by", "symptom"},
				{"--aggregate", "lab"},
				{"--category", "Web", "--by", "aggregate"},
				{"--symptom", sym, "--by", "probe"},
				{"--aggregate", "-"},
				{"--confidence", "0.9"},
			}
			for _, args := range cases {
				p := rollupParams(t, args...)
				opts := p.Options()
				opts.Rules = rules
				want, err := FromStoreQuery(context.Background(), s, p.Query, opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(want.Usage) == 0 {
					t.Fatalf("%v: empty report", args)
				}
				for name, st := range map[string]*store.Store{"rebuilt": s, "live": live} {
					got, err := FromRollups(context.Background(), st, p, src)
					if err != nil {
						t.Fatalf("%v %s: %v", args, name, err)
					}
					if g, w := comparableOf(t, got), comparableOf(t, want); g != w {
						t.Errorf("%v: %s rollups differ from the records:\n%s", args, name, firstDiff(g, w))
					}
				}
			}
			// A range on whole hours holds the biflows that started in
			// it: the full report's hourly rows of those hours.
			from := time.Unix(0, rollupT0).Add(time.Hour).UTC()
			p := rollupParams(t, "--from", from.Format(time.RFC3339), "--to", from.Add(time.Hour).Format(time.RFC3339), "--bucket", "1h", "--by", "category")
			got, err := FromRollups(context.Background(), s, p, src)
			if err != nil {
				t.Fatal(err)
			}
			full := rollupParams(t, "--bucket", "1h", "--by", "category")
			fopts := full.Options()
			fopts.Rules = rules
			all, err := FromStoreQuery(context.Background(), s, full.Query, fopts)
			if err != nil {
				t.Fatal(err)
			}
			var rows []UsageRow
			for _, r := range all.Usage {
				if r.Bucket.Time().Equal(from) {
					rows = append(rows, r)
				}
			}
			g, _ := json.Marshal(got.Usage)
			w, _ := json.Marshal(rows)
			if string(g) != string(w) || len(rows) == 0 {
				t.Errorf("hour %s: rollups\n%s\nrecords\n%s", from, g, w)
			}
		})
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			lo := max(0, i-300)
			return fmt.Sprintf("rollups: ...%s...\nrecords: ...%s...", a[lo:min(len(a), i+200)], b[lo:min(len(b), i+200)])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}

// TestRollupsRefuse checks that what the rollups cannot answer is
// refused with a reason rather than answered wrong.
func TestRollupsRefuse(t *testing.T) {
	st, err := store.Open(reporttest.DB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	if _, err := FromRollups(context.Background(), st, rollupParams(t), src); err == nil {
		t.Fatal("a store without rollups answered")
	}
	if _, err := Rebuild(context.Background(), st, RollupConfig{Rules: classify.Default(), RulesID: src.RulesID}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--host", "192.0.2.1"}, {"--port", "25"}, {"--proto", "tcp"}, {"--exporter", "x"},
		{"--no-dedup"}, {"--by", "host"}, {"--window", "60s"}, {"--from", "2019-03-14 19:03:30"},
		{"--bucket", "90s"}, {"--by", "app"}, {"--app", "dns"}, {"--sampling", "x=packet:2"}, {"--by", "symptom", "--symptom", "MAIL"},
	} {
		if _, err := FromRollups(context.Background(), st, rollupParams(t, args...), src); err == nil {
			t.Errorf("%v answered from the rollups", args)
		}
	}
	if _, err := FromRollups(context.Background(), st, rollupParams(t), RollupSource{RulesID: "other"}); err == nil {
		t.Error("rollups of other rules answered")
	}
	if _, err := FromRollups(context.Background(), st, rollupParams(t), src); err != nil {
		t.Errorf("plain report: %v", err)
	}
}

// TestRollupsLateRecords checks that a record arriving after the horizon
// passed its start is counted late, in the meta and in its range, and
// that --source auto then answers from the records, rollups otherwise.
func TestRollupsLateRecords(t *testing.T) {
	d := rollupStores[0]
	d.conns = 400
	s, arrivals := writeRollupStore(t, d, 5)
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	cfg := RollupConfig{Rules: rules, RulesID: src.RulesID}
	names, _ := s.NameIndex()
	ro := NewRoller(cfg, names, nil, nil)
	// The earliest record last: it arrives hours after its start.
	early := 0
	for i := range arrivals {
		if arrivals[i].Record.First < arrivals[early].Record.First {
			early = i
		}
	}
	for i := range arrivals {
		if i != early {
			ro.Add(arrivals[i].Origin, &arrivals[i].Record)
			ro.Advance()
		}
	}
	ro.Add(arrivals[early].Origin, &arrivals[early].Record)
	ro.Flush()
	if err := s.PutRollups(ro.Take()); err != nil {
		t.Fatal(err)
	}
	m, err := s.RollupMeta()
	if err != nil || m.Late != 1 || m.Records != uint64(len(arrivals)) {
		t.Fatalf("meta %+v, %v: want 1 late of %d", m, err, len(arrivals))
	}
	p := rollupParams(t, "--source", "auto")
	opts := p.Options()
	opts.Rules = rules
	rep, err := p.Report(context.Background(), s, opts, src)
	if err != nil || rep.Summary.Rollup != nil {
		t.Fatalf("auto with a late record answered from the rollups (%v)", err)
	}
	// A later range holds no late record: auto answers from the rollups
	// (a range no record crosses: BoundsCrossed; in this store, whose
	// records follow each other closely, the first minute from 2 hours
	// on that no record crosses is after the last record).
	var to time.Time
	for _, f := range arrivals {
		if t := time.Unix(0, f.Record.Last).Add(DefaultWindow + time.Hour).Truncate(time.Minute); t.After(to) {
			to = t
		}
	}
	from := time.Unix(0, rollupT0).Add(2 * time.Hour).UTC()
	for ; from.Before(to); from = from.Add(time.Minute) {
		p = rollupParams(t, "--source", "auto", "--from", from.Format(time.RFC3339), "--to", to.UTC().Format(time.RFC3339))
		if crossed, err := p.BoundsCrossed(s); err != nil {
			t.Fatal(err)
		} else if !crossed {
			break
		}
	}
	if !from.Before(to) {
		t.Fatal("every minute after the first two hours has a record across it")
	}
	rep, err = p.Report(context.Background(), s, opts, src)
	if err != nil || rep.Summary.Rollup == nil || rep.Summary.Rollup.Late != 0 || !rep.Summary.Rollup.Complete {
		t.Fatalf("auto over a range without late records: %+v, %v", rep.Summary.Rollup, err)
	}
}

// TestRollupsByAS: with an AS table the cells carry the AS numbers and
// --by as from the rollups equals the records' report with that table;
// another table is refused.
func TestRollupsByAS(t *testing.T) {
	dir := t.TempDir()
	asFile := filepath.Join(dir, "as.csv")
	data := []byte("10.16.0.0/16,64500\n198.51.100.0/25,64501\n198.51.100.128/25,64502\n")
	if err := os.WriteFile(asFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, src, err := LoadRollupConfig("", asFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := writeRollupStore(t, rollupStores[2], 4)
	if _, err := Rebuild(context.Background(), s, cfg); err != nil {
		t.Fatal(err)
	}
	p := rollupParams(t, "--by", "as", "--as", asFile, "--bucket", "1h")
	opts := p.Options()
	opts.Rules = cfg.Rules
	want, err := FromStoreQuery(context.Background(), s, p.Query, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromRollups(context.Background(), s, p, src)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := comparableOf(t, got), comparableOf(t, want); g != w || len(want.Usage) < 3 {
		t.Fatalf("by as: %s", firstDiff(g, w))
	}
	if _, err := FromRollups(context.Background(), s, p, RollupSource{RulesID: src.RulesID, ASID: "other"}); err == nil {
		t.Fatal("rollups of another AS table answered --by as")
	}
}

// TestRollupsLongFlow: a record longer than LongFlow does not hold the
// horizon back (the Roller's memory stays bounded); one that arrives
// after the horizon passed its start is counted late.
func TestRollupsLongFlow(t *testing.T) {
	ro := NewRoller(RollupConfig{LongFlow: time.Minute}, nil, nil, nil)
	o := store.Origin{Exporter: "192.0.2.1", Domain: 1}
	day := int64(24 * time.Hour)
	long := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: 17},
		First: rollupT0, Last: rollupT0 + day, Packets: 1, Octets: 100}
	ro.Add(o, &long)
	for i := int64(0); i < 100; i++ {
		r := long
		r.Sport = uint16(i)
		r.First, r.Last = rollupT0+day+i*int64(time.Minute), rollupT0+day+i*int64(time.Minute)+int64(time.Second)
		ro.Add(o, &r)
		ro.Advance()
	}
	if held, _ := ro.Held(); held > 5 {
		t.Fatalf("%d records held: a day-long record holds the horizon back", held)
	}
	late := long
	late.Sport, late.First = 999, rollupT0+day-int64(time.Hour)
	late.Last = rollupT0 + day + 99*int64(time.Minute)
	ro.Add(o, &late)
	ro.Flush()
	if m := ro.Take().Meta; m.Late != 1 || m.Records != 102 {
		t.Fatalf("meta %+v: want 102 records, 1 late", m)
	}
}

// BenchmarkRollerHeldMemory measures the bytes a Roller holds per record
// waiting for its horizon (the records within the longest flow, the lag
// and the hold of the newest: rate × (LongFlow + Lag + Hold) of them).
func BenchmarkRollerHeldMemory(b *testing.B) {
	const n = 1 << 20
	recs := rollupRecords(rollupStores[0], 9)
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ro := NewRoller(RollupConfig{}, nil, nil, nil)
		for j := 0; j < n; j++ {
			r := recs[j%len(recs)].Record
			ro.Add(recs[j%len(recs)].Origin, &r)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if held, _ := ro.Held(); held != n {
			b.Fatalf("%d held", held)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/held-record")
		runtime.KeepAlive(ro)
	}
}

// TestRecHeapOrder: the held records come out by start, then arrival,
// whatever order they went in, with takes interleaved with adds.
func TestRecHeapOrder(t *testing.T) {
	// Starts within one bucket, over a few, and over many (some
	// negative), with runs of pushes into the same bucket.
	for _, scale := range []int64{1, 1 << 27, 1 << 33} {
		t.Run(fmt.Sprint(scale), func(t *testing.T) { testRecHeapOrder(t, scale) })
	}
}

func testRecHeapOrder(t *testing.T, scale int64) {
	rng := rand.New(rand.NewPCG(1, uint64(scale)))
	var h recHeap
	var want []heapEntry
	var got []heapEntry
	for i := 0; i < 5000; i++ {
		e := heapEntry{first: (rng.Int64N(300) - 20) * scale, seq: uint64(i)}
		h.push(e)
		want = append(want, e)
		if rng.IntN(3) == 0 {
			x := h.pop()
			// Nothing held may precede what was popped.
			c := h.clone()
			for c.Len() > 0 {
				if y := c.pop(); y.less(x) {
					t.Fatalf("popped %+v while %+v was held", x, y)
				}
			}
			got = append(got, x)
		}
	}
	for h.Len() > 0 {
		got = append(got, h.pop())
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries out, %d in", len(got), len(want))
	}
	seen := map[uint64]bool{}
	for _, e := range got {
		if seen[e.seq] {
			t.Fatalf("entry %d out twice", e.seq)
		}
		seen[e.seq] = true
	}
	// The final drain is in order.
	var tail []heapEntry
	var h2 recHeap
	for _, e := range want {
		h2.push(e)
	}
	for h2.Len() > 0 {
		tail = append(tail, h2.pop())
	}
	sorted := slices.Clone(want)
	slices.SortFunc(sorted, func(a, b heapEntry) int {
		if c := cmp.Compare(a.first, b.first); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	if !slices.Equal(tail, sorted) {
		t.Fatal("drained heap not in (start, arrival) order")
	}
}

// BenchmarkRecHeap measures holding records and taking them all in
// order, as a Roller's Flush does: n entries whose starts spread over
// span, pushed in arrival order (end order: start plus a duration of up
// to a minute).
func BenchmarkRecHeap(b *testing.B) {
	const n = 800000
	for _, span := range []time.Duration{5 * time.Second, time.Minute, 10 * time.Minute} {
		b.Run(span.String(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, 8))
			type rec struct{ first, last int64 }
			recs := make([]rec, n)
			for i := range recs {
				f := rng.Int64N(int64(span))
				recs[i] = rec{f, f + rng.Int64N(int64(time.Minute))}
			}
			slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.last, b.last) })
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var h recHeap
				for j, r := range recs {
					h.push(heapEntry{first: r.first, seq: uint64(j)})
				}
				for h.Len() > 0 {
					h.pop()
				}
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			// CPU time: the wall time also counts other processes' turns
			// on a shared machine.
			b.ReportMetric(float64(cpu)/float64(b.N*n), "cpu-ns/record")
		})
	}
}

// TestRollupsIdleAdvance: a burst of old records (a capture replayed
// into a running collector, its record times long past) and then no
// more. With Idle the horizon moves with the wall clock: AdvanceIdle
// completes every biflow within a bounded time (the lag, the longest
// flow, the hold and the pairing and pair-context windows), without a
// Flush, and the rollups written on the way equal the report over the
// records, none late. Without Idle the horizon stays behind the burst.
func TestRollupsIdleAdvance(t *testing.T) {
	d := rollupStores[1]
	d.conns, d.span = 600, 20*time.Minute
	s, arrivals := writeRollupStore(t, d, 3)
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	names, _ := s.NameIndex()
	anns, _ := s.Announcements()
	// The wall clock is years after the records.
	wall := time.Unix(0, rollupT0).Add(3 * 365 * 24 * time.Hour)
	for _, idle := range []bool{false, true} {
		live, err := store.Open(filepath.Join(t.TempDir(), "live.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		cfg := RollupConfig{Rules: rules, RulesID: src.RulesID, Hold: 10 * time.Second, Idle: idle,
			Now: func() time.Time { return wall }}
		ro := NewRoller(cfg, names, anns, nil)
		for i := range arrivals {
			ro.Add(arrivals[i].Origin, &arrivals[i].Record)
		}
		ro.Advance() // the commit that stored them
		if err := live.PutRollups(ro.Take()); err != nil {
			t.Fatal(err)
		}
		const limit = 15 * time.Minute
		var waited time.Duration
		for waited < limit {
			wall = wall.Add(time.Second)
			waited += time.Second
			if !ro.AdvanceIdle() {
				break
			}
			if err := live.PutRollups(ro.Take()); err != nil {
				t.Fatal(err)
			}
		}
		held, waiting := ro.Held()
		m, err := live.RollupMeta()
		if err != nil {
			t.Fatal(err)
		}
		latest := int64(math.MinInt64)
		for _, a := range arrivals {
			latest = max(latest, a.Record.First)
		}
		if !idle {
			// Advance alone lets the held horizon pass, which stays the
			// lag and the longest flow behind the burst's end.
			if held == 0 || m.CompleteBefore > latest {
				t.Fatalf("without Idle: %d of %d records held, complete before %d after %v of wall clock; want the burst's end held", held, len(arrivals), m.CompleteBefore, waited)
			}
			continue
		}
		if held != 0 || waiting != 0 || waited >= limit {
			t.Fatalf("idle: %d records held, %d biflows waiting after %v of wall clock", held, waiting, waited)
		}
		if m.Records != uint64(len(arrivals)) || m.Late != 0 || m.CompleteBefore <= latest || m.Clean {
			t.Fatalf("idle: meta %+v: want %d records fed, none late, complete after the latest start %d", m, len(arrivals), latest)
		}
		t.Logf("%d records complete %v of wall clock after the burst", len(arrivals), waited)
		for _, args := range [][]string{nil, {"--by", "category"}, {"--bucket", "1m", "--by", "probe"}} {
			p := rollupParams(t, args...)
			opts := p.Options()
			opts.Rules = rules
			want, err := FromStoreQuery(context.Background(), s, p.Query, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := FromRollups(context.Background(), live, p, src)
			if err != nil {
				t.Fatal(err)
			}
			if cb := got.Summary.Rollup.CompleteBefore; cb == nil || int64(*cb) <= latest {
				t.Errorf("%v: rollups complete before %v, not after the latest start", args, cb)
			}
			if g, w := comparableOf(t, got), comparableOf(t, want); g != w {
				t.Errorf("%v: rollups differ from the records:\n%s", args, firstDiff(g, w))
			}
		}
		// A record that arrives now, started before the horizon, is late.
		late := arrivals[0]
		ro.Add(late.Origin, &late.Record)
		ro.Advance()
		if err := live.PutRollups(ro.Take()); err != nil {
			t.Fatal(err)
		}
		if m, _ := live.RollupMeta(); m.Late != 1 {
			t.Errorf("a record started before the horizon, arriving after it: %d late, want 1", m.Late)
		}
	}
}

// TestRecHeapTake: records held with their origins come out of take in
// (start, arrival) order, each with its own origin and content, whether
// taken from the sorted bucket's copy or from its slot (pushed into the
// bucket being taken), and a clone taken apart gives the same while the
// original is unchanged.
func TestRecHeapTake(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	origins := []store.Origin{{Exporter: "192.0.2.1", Domain: 1}, {Exporter: "192.0.2.1", Domain: 2}, {Exporter: "198.51.100.9"}}
	type held struct {
		first int64
		seq   uint64
		o     store.Origin
		r     flow.Record
	}
	var h recHeap
	var model []held
	less := func(a, b held) int {
		if c := cmp.Compare(a.first, b.first); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	}
	check := func(h *recHeap, want held) {
		t.Helper()
		o, r, first := h.take()
		if r == nil || o != want.o || first != want.first || !reflect.DeepEqual(*r, want.r) {
			t.Fatalf("took %v %d %+v, want %v %d %+v", o, first, r, want.o, want.first, want.r)
		}
	}
	base := int64(1e18)
	for i := 0; i < 20000; i++ {
		first := base + rng.Int64N(int64(20*time.Second)) + int64(i)*int64(time.Millisecond)
		if rng.IntN(10) == 0 && len(model) > 0 {
			first = model[0].first + rng.Int64N(int64(time.Second)) // into the bucket being taken
		}
		r := flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("192.0.2.7"),
			Sport: uint16(i), Dport: 443, Proto: 6}, First: first, Last: first + int64(time.Second), Packets: uint64(i + 1), Octets: uint64(i) * 100}
		if i%7 == 0 {
			r.Symptoms = []flow.SymptomCount{{ID: 3, Count: uint32(i)}}
		}
		if i%11 == 0 {
			r.App.FTPData = "20,1025"
		}
		o := origins[rng.IntN(len(origins))]
		if i%2 == 0 {
			h.add(o, &r, uint64(i))
		} else {
			h.addEncoded(o, first, store.AppendRecord(nil, &r), uint64(i))
		}
		x := held{first, uint64(i), o, r}
		j, _ := slices.BinarySearchFunc(model, x, less)
		model = slices.Insert(model, j, x)
		if rng.IntN(3) == 0 {
			check(&h, model[0])
			model = model[1:]
		}
		if i%5000 == 4999 {
			c := h.clone()
			for _, w := range model {
				check(&c, w)
			}
			if c.Len() != 0 || h.Len() != len(model) {
				t.Fatalf("clone holds %d after its drain, original %d of %d", c.Len(), h.Len(), len(model))
			}
		}
	}
	for _, w := range model {
		check(&h, w)
	}
	if h.Len() != 0 {
		t.Fatalf("%d held after the drain", h.Len())
	}
}

// TestRollupsOfAnOlderConsolidation: rollups kept by a build whose
// consolidation gave other results (their rules fingerprint made without
// ConsolidationEpoch, as every build before it did) do not answer a
// report: after the fixes of 2026-12-08 they still held the old estimates
// (two probes at random 1/4 over one capture: the rollups said 66,768
// packets where the records now say 66,736), and --source auto took
// them.
func TestRollupsOfAnOlderConsolidation(t *testing.T) {
	s, _ := writeRollupStore(t, rollupStores[0], 1)
	h := sha256.Sum256(classify.DefaultYAML())
	old := hex.EncodeToString(h[:8]) // the fingerprint before the epoch
	if _, err := Rebuild(context.Background(), s, RollupConfig{Rules: classify.Default(), RulesID: old}); err != nil {
		t.Fatal(err)
	}
	p := rollupParams(t, "--source", "rollups")
	_, err := p.Report(context.Background(), s, p.Options(), RollupSource{RulesID: DefaultRulesFingerprint()})
	var re *RollupError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "older build's consolidation") {
		t.Fatalf("rollups of an older consolidation: %v, want a RollupError", err)
	}
}
