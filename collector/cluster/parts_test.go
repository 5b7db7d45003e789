package cluster

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestPlanParts: a partition is consolidated by the one worker holding
// records of it that the range can select (spans overlapping [from,
// to)), and gathered raw from every holder when more than one does.
func TestPlanParts(t *testing.T) {
	spans := map[string][]Span{
		"w1": {{P: 0, First: 0, Last: 100, N: 5}, {P: 1, First: 0, Last: 100, N: 5}, {P: 2, First: 0, Last: 49, N: 1}, {P: 3, First: 200, Last: 300, N: 2}},
		"w2": {{P: 1, First: 90, Last: 200, N: 3}, {P: 2, First: 50, Last: 60, N: 1}, {P: 3, First: 150, Last: 250, N: 1}, {P: 4, First: 0, Last: 0, N: 0}},
		"w3": {{P: 3, First: 50, Last: 100, N: 1}},
	}
	for _, tc := range []struct {
		from, to       int64
		plan           map[string]*assignment
		clean, conflic int
	}{
		{math.MinInt64, math.MaxInt64, map[string]*assignment{
			"w1": {Consolidate: []int{0}, Raw: []int{1, 2, 3}},
			"w2": {Raw: []int{1, 2, 3}},
			"w3": {Raw: []int{3}},
		}, 1, 3},
		// [50, 150): w1's partition 2 ends at 49 (not selectable), w3's
		// partition 3 ends at 100 (selectable), w1's and w2's start at
		// 200 and 150 (not).
		{50, 150, map[string]*assignment{
			"w1": {Consolidate: []int{0}, Raw: []int{1}},
			"w2": {Consolidate: []int{2}, Raw: []int{1}},
			"w3": {Consolidate: []int{3}},
		}, 3, 1},
		// [101, 201): only w2 holds 1; 3 is held by w1 and w2.
		{101, 201, map[string]*assignment{
			"w1": {Raw: []int{3}},
			"w2": {Consolidate: []int{1}, Raw: []int{3}},
		}, 1, 1},
		{1000, 2000, map[string]*assignment{}, 0, 0},
	} {
		plan, clean, conflicted := planParts(spans, tc.from, tc.to)
		if !reflect.DeepEqual(plan, tc.plan) || clean != tc.clean || conflicted != tc.conflic {
			t.Errorf("[%d, %d): plan %v (%d clean, %d conflicted), want %v (%d, %d)", tc.from, tc.to, show(plan), clean, conflicted, show(tc.plan), tc.clean, tc.conflic)
		}
	}
}

func show(p map[string]*assignment) map[string]assignment {
	m := map[string]assignment{}
	for k, v := range p {
		m[k] = *v
	}
	return m
}

// partRecords are n connections between few hosts (both directions of
// most, symptoms for the pair context, FTP control connections
// announcing data ports) starting in [t0, t0+span).
func partRecords(rng *rand.Rand, n int, t0, span int64) []flow.Record {
	host := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i / 200), byte(i%200 + 1)}) }
	var recs []flow.Record
	for c := 0; c < n; c++ {
		src, dst := host(rng.IntN(30)), host(30+rng.IntN(20))
		proto := uint8(6)
		if rng.IntN(3) == 0 {
			proto = 17
		}
		sport, dport := uint16(1024+rng.IntN(3000)), uint16([]int{21, 80, 443, 53, 20001}[rng.IntN(5)])
		first := t0 + rng.Int64N(span)
		fwd := flow.Record{Key: flow.Key{Src: src, Dst: dst, Sport: sport, Dport: dport, Proto: proto},
			Packets: 1 + uint64(rng.IntN(50)), First: first, Last: first + rng.Int64N(int64(20*time.Second)),
			TCPFlags: 0x12, EndReason: flow.EndIdle}
		fwd.Octets = fwd.Packets * 500
		switch rng.IntN(5) {
		case 0:
			fwd.Symptoms = []flow.SymptomCount{{ID: uint16(1 + rng.IntN(3)), Count: 2}}
		case 1:
			if dport == 21 {
				fwd.App.FTPData = "20001"
			}
		}
		rev := fwd
		rev.Src, rev.Dst, rev.Sport, rev.Dport = fwd.Dst, fwd.Src, fwd.Dport, fwd.Sport
		rev.Packets, rev.Octets, rev.Symptoms, rev.App = 1+uint64(rng.IntN(70)), 0, nil, flow.App{}
		rev.Octets = rev.Packets * 900
		recs = append(recs, fwd)
		if rng.IntN(5) != 0 {
			recs = append(recs, rev)
		}
	}
	return recs
}

// twoWorkers runs TestWorkerParts' cluster: two workers, the second
// joining after the first stored a first export, so partitions moved
// between them with connections spanning the move; it returns the
// starts of the two exports' times.
// twoProbes are the origins sendTwoProbes exports from.
var twoProbes = []collector.Origin{
	{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1},
	{Exporter: netip.MustParseAddrPort("192.0.2.2:4739"), Domain: 3},
}

// sendTwoProbes publishes recs through g as two probes saw them: each
// record by one of twoProbes, one in six by both (the same connection
// seen twice, which consolidation deduplicates). It returns how many
// records it published.
func sendTwoProbes(g *Ingest, rng *rand.Rand, recs []flow.Record) uint64 {
	var by [2][]flow.Record
	for i := range recs {
		k := rng.IntN(2)
		by[k] = append(by[k], recs[i])
		if rng.IntN(6) == 0 {
			by[1-k] = append(by[1-k], recs[i])
		}
	}
	n := uint64(0)
	for i, o := range twoProbes {
		g.Consume(o, by[i])
		n += uint64(len(by[i]))
	}
	g.FlushAll()
	return n
}

func twoWorkers(t *testing.T) (*nats.Conn, jetstream.JetStream, int64, int64) {
	_, nc, js := embeddedJS(t)
	run := func(name string) *Worker { return runWorker(t, name, nc, js) }
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	sent := uint64(0)
	send := func(recs []flow.Record) { sent += sendTwoProbes(g, rng, recs) }
	workers := []*Worker{run("w1")}
	stored := func() uint64 {
		n := uint64(0)
		for _, w := range workers {
			n += w.Stored.Load()
		}
		return n
	}
	waitStored := func(n uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for stored() < n {
			if time.Now().After(deadline) {
				t.Fatalf("workers stored %d of %d", stored(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOwned := func() { waitAllOwn(t, workers) }
	waitOwned()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	waitAll := func() { waitStored(sent) }
	// The first export holds back a third of its records (the other
	// direction of many connections, the continuation of a few), sent
	// after the second worker joined: connections then span two
	// workers.
	var early, late []flow.Record
	for _, r := range partRecords(rng, 1500, t0, int64(5*time.Minute)) {
		if rng.IntN(3) == 0 {
			late = append(late, r)
		} else {
			early = append(early, r)
		}
	}
	send(early)
	// A spooling exporter replays part of what it sent (a reconnect):
	// the same identities in new batches, stored twice by the worker,
	// counted once.
	spool := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.3:4739"), Domain: 5, Instance: 42, Sequence: 1000}
	spooled := partRecords(rng, 200, t0, int64(5*time.Minute))
	g.Consume(spool, spooled)
	g.FlushAll()
	g.Consume(spool, spooled[:len(spooled)/2])
	g.FlushAll()
	sent += uint64(len(spooled) + len(spooled)/2)
	waitAll()
	first := stored()
	workers = append(workers, run("w2"))
	waitOwned()
	t1 := t0 + int64(10*time.Minute)
	send(append(late, partRecords(rng, 1500, t1, int64(5*time.Minute))...))
	// An exporter whose records (of the first export's time) all fall
	// in partitions that moved to w2: consolidated at the reporter. With
	// its sampling overridden, the reporter's part is sampled while w1's
	// parts are not.
	moved := map[int]bool{}
	for _, p := range workers[1].Owned() {
		moved[p] = true
	}
	var late2 []flow.Record
	for _, r := range partRecords(rng, 400, t0, int64(5*time.Minute)) {
		if moved[Partition(r.Key, Partitions)] {
			late2 = append(late2, r)
		}
	}
	g.Consume(collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.4:4739"), Domain: 9}, late2)
	g.FlushAll()
	sent += uint64(len(late2))
	waitAll()
	if stored() == first {
		t.Fatal("the second export stored nothing")
	}

	return nc, js, t0, t1
}

// TestWorkerParts: two workers, the second joining after the first
// stored a first export (with a spooling exporter's replay: records
// stored twice under one identity) (so partitions moved between them), then a
// rest of the first export (the other direction of many connections)
// and a second export later in time. The report the workers and the
// reporter make together (Report) equals, byte for byte, the report over
// all records gathered into one store (Gather), over the whole time
// (some partitions consolidated at the workers, the moved ones at the
// reporter), over the second export's time (all at the workers: the
// first worker holds nothing then), over the first's, and with filters.
func TestWorkerParts(t *testing.T) {
	nc, js, t0, t1 := twoWorkers(t)
	ctx := context.Background()
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		args          []string
		allAtWorkers  bool
		someAtCentral bool
	}{
		{nil, false, true},
		{[]string{"--limit", "25", "--order", "bytes"}, false, true},
		{[]string{"--limit", "25", "--sampling", "192.0.2.4=packet:10"}, false, true},
		{[]string{"--limit", "25", "--sampling", "192.0.2.4=flow:49"}, false, true}, // estimates float64 does not hold exactly, from usage rows
		{[]string{"--from", ts(t1), "--limit", "10", "--offset", "5", "--by", "host"}, true, false},
		{[]string{"--from", ts(t1)}, true, false},
		{[]string{"--from", ts(t1 + int64(2*time.Minute)), "--to", ts(t1 + int64(4*time.Minute))}, true, false},
		{[]string{"--to", ts(t0 + int64(2*time.Minute))}, false, true},
		{[]string{"--by", "host", "--order", "bytes", "--limit", "40", "--offset", "10"}, false, true},
		{[]string{"--proto", "tcp", "--category", "FTP"}, false, true},
		{[]string{"--by", "app", "--symptom", "2", "--no-dedup"}, false, true},
		// A --sampling override of an exporter none of the range's
		// records came from is refused as over a single store: one no
		// record came from, and 192.0.2.4, whose records (of the first
		// export's time) are not in the second's.
		{[]string{"--sampling", "10.9.9.9=packet:4", "--sampling", "192.0.2.1=packet:2"}, false, true},
		{[]string{"--from", ts(t1), "--sampling", "192.0.2.4=packet:10"}, true, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := params(t, tc.args...)
			// The reference: every record gathered into one store.
			st, err := store.Open(filepath.Join(t.TempDir(), "all.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := Gather(ctx, nc, js, st); err != nil {
				t.Fatal(err)
			}
			opts := p.Options()
			opts.Rules = classify.Default()
			want, err := report.FromStoreQuery(ctx, st, p.Query, opts)
			if err != nil {
				if !strings.Contains(err.Error(), "--sampling: no records from exporter") {
					t.Fatal(err)
				}
				_, _, cerr := Report(ctx, nc, js, p, nil, t.TempDir())
				if cerr == nil || cerr.Error() != err.Error() {
					t.Fatalf("merged report: %v; single store: %v", cerr, err)
				}
				t.Log(cerr)
				return
			}
			if want.Summary.Biflows == 0 {
				t.Fatal("no biflows in the reference")
			}
			got, rs := clusterReport(t, ctx, nc, js, p)
			sameJSON(t, "merged report", got, want)
			if rs.Consolidated == 0 {
				t.Error("no partition consolidated at the workers")
			}
			if tc.allAtWorkers && (rs.Central != 0 || rs.Records != 0) {
				t.Errorf("%d partitions (%d records) at the reporter, want none", rs.Central, rs.Records)
			}
			if tc.someAtCentral && rs.Central == 0 {
				t.Error("no partition at the reporter (none moved between the workers?)")
			}
			// Reports that list their first biflows take the workers'
			// usage rows, sampled ones (the override) too: the
			// estimates add exactly, so the report is the same.
			switch {
			case p.Limit > 0 && rs.Aggregated == 0:
				t.Error("no worker part came as usage rows")
			case p.Limit == 0 && rs.Aggregated > 0:
				t.Error("a report listing every biflow took usage rows")
			}
		})
	}
}
