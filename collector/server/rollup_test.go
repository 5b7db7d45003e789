package server

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// pairedRecords makes n connections (both directions, chains of records,
// FIN ends, reused client ports) from t0 on, in end order.
func pairedRecords(seed uint64, n int, t0 time.Time) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []flow.Record
	for i := 0; i < n; i++ {
		cl := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(3)), byte(rng.IntN(40))})
		sv := netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(10))})
		sport, dport := uint16(40000+rng.IntN(20)), []uint16{25, 80, 443, 53}[rng.IntN(4)]
		t := t0.Add(time.Duration(i) * 200 * time.Millisecond).UnixNano()
		for j := 0; j < 1+rng.IntN(2); j++ {
			dur := int64(rng.IntN(30)) * int64(time.Second)
			for d := 0; d < 2; d++ {
				r := flow.Record{Key: flow.Key{Src: cl, Dst: sv, Sport: sport, Dport: dport, Proto: 6},
					First: t + int64(d)*int64(time.Millisecond), Last: t + dur + int64(time.Millisecond), Packets: uint64(1 + rng.IntN(30)),
					TCPFlags: 0x12, EndReason: flow.EndActive, IPVersion: 4}
				if d == 1 {
					r.Src, r.Dst, r.Sport, r.Dport = sv, cl, dport, sport
				}
				r.Octets = r.Packets * 500
				out = append(out, r)
			}
			t += dur + int64(time.Second)
		}
	}
	slices.SortStableFunc(out, func(a, b flow.Record) int { return int(max(-1, min(1, a.Last-b.Last))) })
	return out
}

func sendRecords(t *testing.T, addr string, recs []flow.Record) {
	t.Helper()
	stream := exportStream(t, nil, recs)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
}

// TestLiveRollups: while the collector runs, with connections still
// pending in its Roller, the rollups with what it holds (the API's
// source=rollups and auto) equal the report over the stored records.
func TestLiveRollups(t *testing.T) {
	defer func(h time.Duration) { rollupHold = h }(rollupHold)
	rollupHold = 0 // the horizon follows the records: some complete, some pending
	ls := startServer(t)
	recs := pairedRecords(1, 1500, time.Now().Add(-time.Hour).Truncate(time.Hour))
	half := len(recs) / 2
	check := func(n int) {
		t.Helper()
		until(t, "records stored", func() bool { s, _ := ls.counts(); return s == uint64(n) })
		p := byCategoryPerMinute(t)
		got, err := report.FromRollups(context.Background(), ls.st, p, ls.rollSrc)
		if err != nil {
			t.Fatal(err)
		}
		opts := p.Options()
		opts.Rules = ls.roll2rules(t)
		want, err := report.FromStoreQuery(context.Background(), ls.st, p.Query, opts)
		if err != nil {
			t.Fatal(err)
		}
		ls.wmu.Lock()
		held, waiting := ls.roll.Held()
		m, _ := ls.st.RollupMeta()
		ls.wmu.Unlock()
		g, _ := json.Marshal([]any{got.Usage, got.Summary.Biflows, got.Summary.Flows, got.Summary.Packets, got.Summary.Octets})
		w, _ := json.Marshal([]any{want.Usage, want.Summary.Biflows, want.Summary.Flows, want.Summary.Packets, want.Summary.Octets})
		if m.Records == 0 || held == len(recs) {
			t.Errorf("the Roller fed %d records and holds %d: the horizon did not move", m.Records, held)
		}
		if string(g) != string(w) || !got.Summary.Rollup.Complete || got.Summary.Rollup.Late != 0 {
			t.Fatalf("%d records: live rollups %s\nrecords %s\n%+v", n, g, w, got.Summary.Rollup)
		}
		t.Logf("%d records stored, %d held and %d biflows waiting in the Roller, %d fed (complete before %v): rollups + pending = report over the records (%d biflows)",
			n, held, waiting, m.Records, time.Unix(0, m.CompleteBefore).UTC(), want.Summary.Biflows)
	}
	sendRecords(t, ls.tcp, recs[:half])
	check(half)
	sendRecords(t, ls.tcp, recs[half:])
	check(len(recs))
}

// roll2rules are the rules the collector classifies with.
func (ls *liveServer) roll2rules(t *testing.T) *classify.Rules {
	t.Helper()
	cfg, _, err := report.LoadRollupConfig(ls.cfg.Rules, ls.cfg.AS)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Rules
}

// TestIdleRollups: one burst of old records (a capture replayed into the
// running collector) and no more: the stored rollups reach every record
// while the collector runs, once the Roller's wall clock has moved past
// the lag, the longest flow and the hold (idleRollups), and they equal
// the report over the records with none late. Before, the Roller
// advanced only on commits, so the stored rollups had none of them
// ("no biflow complete yet") until more records came or the collector
// stopped.
func TestIdleRollups(t *testing.T) {
	var mu sync.Mutex
	wall := time.Now()
	defer func(f func() time.Time) { rollupNow = f }(rollupNow)
	rollupNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return wall }
	ls := startServer(t)
	// Records of a capture from years ago.
	recs := pairedRecords(2, 400, time.Date(2016, 5, 1, 10, 0, 0, 0, time.UTC))
	latest := int64(math.MinInt64)
	for _, r := range recs {
		latest = max(latest, r.First)
	}
	sendRecords(t, ls.tcp, recs)
	until(t, "records stored", func() bool { s, _ := ls.counts(); return s == uint64(len(recs)) })
	meta := func() store.RollupMeta {
		ls.wmu.Lock()
		defer ls.wmu.Unlock()
		m, err := ls.st.RollupMeta()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The Roller's wall clock moves a minute at each poll from now on
	// (report's TestRollupsIdleAdvance bounds the delay).
	moved := 0
	until(t, "stored rollups complete after the burst", func() bool {
		mu.Lock()
		wall = wall.Add(time.Minute)
		moved++
		mu.Unlock()
		m := meta()
		return m.Records == uint64(len(recs)) && m.CompleteBefore > latest
	})
	m := meta()
	if m.Late != 0 || m.Clean {
		t.Fatalf("meta %+v: want none late, the collector still running", m)
	}
	p := byCategoryPerMinute(t)
	// The stored rollups alone (no Live: as mira report --db reads the file).
	src := ls.rollSrc
	src.Live = nil
	got, err := report.FromRollups(context.Background(), ls.st, p, src)
	if err != nil {
		t.Fatal(err)
	}
	opts := p.Options()
	opts.Rules = ls.roll2rules(t)
	want, err := report.FromStoreQuery(context.Background(), ls.st, p.Query, opts)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal([]any{got.Usage, got.Summary.Biflows, got.Summary.Flows, got.Summary.Packets, got.Summary.Octets})
	w, _ := json.Marshal([]any{want.Usage, want.Summary.Biflows, want.Summary.Flows, want.Summary.Packets, want.Summary.Octets})
	if string(g) != string(w) || want.Summary.Biflows == 0 {
		t.Fatalf("stored rollups %s\nrecords %s", g, w)
	}
	t.Logf("%d records, %d biflows: stored rollups complete before %v after %d minutes of the Roller's clock", len(recs), want.Summary.Biflows, time.Unix(0, m.CompleteBefore).UTC(), moved)
}

// byCategoryPerMinute is mira report's parameters for --bucket 1m --by
// category.
func byCategoryPerMinute(t *testing.T) *report.Params {
	t.Helper()
	return reportParams(t, "--bucket", "1m", "--by", "category")
}

// reportParams is mira report's parameters for args, checked.
func reportParams(t *testing.T, args ...string) *report.Params {
	t.Helper()
	p := new(report.Params)
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	p.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLiveComposed: while the collector runs, with connections still
// pending in its Roller, a ranged auto report whose bounds records
// cross (and lie inside minutes) is composed (the cells, stored and
// pending, read while no commit changes the store, with the records
// around the bounds) and equals the report over the stored records,
// by activity and by start.
func TestLiveComposed(t *testing.T) {
	defer func(h time.Duration) { rollupHold = h }(rollupHold)
	rollupHold = 0
	ls := startServer(t)
	// 900 connections 4 s apart over an hour ending now: the latest
	// still pending in the Roller.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	rng := rand.New(rand.NewPCG(5, 6))
	var recs []flow.Record
	for i := 0; i < 900; i++ {
		cl := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(8)), byte(rng.IntN(200))})
		sv := netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(50))})
		t1 := t0.Add(time.Duration(i) * 4 * time.Second).UnixNano()
		dur := int64(rng.IntN(50)) * int64(time.Second)
		for d := 0; d < 2; d++ {
			r := flow.Record{Key: flow.Key{Src: cl, Dst: sv, Sport: uint16(40000 + rng.IntN(50)), Dport: 443, Proto: 6},
				First: t1 + int64(d)*int64(time.Millisecond), Last: t1 + dur + int64(time.Millisecond), Packets: uint64(1 + rng.IntN(30)),
				TCPFlags: 0x12, EndReason: flow.EndActive, IPVersion: 4}
			if d == 1 {
				r.Src, r.Dst, r.Sport, r.Dport = sv, cl, 443, recs[len(recs)-1].Sport
			}
			r.Octets = r.Packets * 500
			recs = append(recs, r)
		}
	}
	slices.SortStableFunc(recs, func(a, b flow.Record) int { return int(max(-1, min(1, a.Last-b.Last))) })
	sendRecords(t, ls.tcp, recs)
	until(t, "records stored", func() bool { s, _ := ls.counts(); return s == uint64(len(recs)) })
	from, to := t0.Add(10*time.Minute+30*time.Second+500*time.Millisecond), t0.Add(50*time.Minute+10*time.Second)
	for _, started := range []bool{false, true} {
		args := []string{"--by", "category", "--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)}
		if started {
			args = append(args, "--started")
		}
		p := reportParams(t, args...)
		opts := p.Options()
		opts.Rules = ls.roll2rules(t)
		want, err := p.Report(context.Background(), ls.st, opts, ls.rollSrc)
		if err != nil {
			t.Fatal(err)
		}
		p.Source = report.SourceAuto
		got, err := p.Report(context.Background(), ls.st, opts, ls.rollSrc)
		if err != nil {
			t.Fatal(err)
		}
		if ri := got.Summary.Rollup; ri == nil || ri.Edges == nil {
			p.RollupsOnly = true
			_, why := p.Report(context.Background(), ls.st, opts, ls.rollSrc)
			t.Fatalf("%v: not composed: %v", args, why)
		}
		g, _ := json.Marshal([]any{got.Usage, got.Summary.Biflows, got.Summary.Flows, got.Summary.Packets, got.Summary.Octets, got.Summary.First, got.Summary.Last})
		w, _ := json.Marshal([]any{want.Usage, want.Summary.Biflows, want.Summary.Flows, want.Summary.Packets, want.Summary.Octets, want.Summary.First, want.Summary.Last})
		if string(g) != string(w) {
			t.Errorf("%v: composed %s\nrecords %s", args, g, w)
		}
		t.Logf("%v: composed (%+v) = records, %d biflows", args, *got.Summary.Rollup.Edges, want.Summary.Biflows)
	}
}
