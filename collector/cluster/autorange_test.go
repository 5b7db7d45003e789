package cluster

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/server"
	"github.com/mira-project/mira/flow"
)

// waitAllOwn waits (30 s at most) until workers own every partition
// between them and each owns some.
func waitAllOwn(t *testing.T, workers []*Worker) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, all := 0, true
		for _, w := range workers {
			o := len(w.Owned())
			n += o
			all = all && o > 0
		}
		if n == Partitions && all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned: %d", n)
		}
		time.Sleep(20 * time.Millisecond) // polling ownership, with a deadline
	}
}

// TestAutoRangeEqualsSingleCollector: a ranged `--source auto` report
// over a cluster of two workers (embedded JetStream) equals, byte for
// byte, `mira report --source auto` over a single collector's store
// holding the same records (Gather, rolled up as `mira rollup` does):
// from the rollups where no record lies across a bound (or ends within
// the pairing window before one), else from the records, whole. One
// connection lies across a bound alone: only the worker holding its
// partition finds it, and the whole report still comes from the records.
func TestAutoRangeEqualsSingleCollector(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	workers := []*Worker{runWorker(t, "w1", nc, js), runWorker(t, "w2", nc, js)}
	waitAllOwn(t, workers)
	deadline := time.Now().Add(30 * time.Second)
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	at := func(m float64) int64 { return t0 + int64(m*float64(time.Minute)) }
	// Dense records in [t0, t0+5m20s); one connection alone from
	// t0+20m30s to t0+21m30s, across t0+21m.
	sent := sendTwoProbes(g, rng, partRecords(rng, 1200, t0, int64(5*time.Minute)))
	fwd := flow.Record{Key: flow.Key{Src: netip.MustParseAddr("10.9.0.1"), Dst: netip.MustParseAddr("10.9.0.2"), Sport: 40000, Dport: 443, Proto: 6},
		Packets: 30, Octets: 30 * 500, First: at(20.5), Last: at(21.5), TCPFlags: 0x12, EndReason: flow.EndIdle}
	rev := fwd
	rev.Src, rev.Dst, rev.Sport, rev.Dport = fwd.Dst, fwd.Src, fwd.Dport, fwd.Sport
	rev.Packets, rev.Octets = 20, 20*900
	g.Consume(twoProbes[0], []flow.Record{fwd, rev})
	g.FlushAll()
	sent += 2
	for stored := uint64(0); stored < sent; {
		stored = workers[0].Stored.Load() + workers[1].Stored.Load()
		if time.Now().After(deadline) {
			t.Fatalf("workers stored %d of %d", stored, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	holder := ""
	for _, w := range workers {
		if slices.Contains(w.Owned(), Partition(fwd.Key, Partitions)) {
			holder = w.Name
		}
	}
	st, src := rebuiltStore(t, ctx, nc, js)
	names, err := workerNames(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
	// The cluster's HTTP API (as mira-collector --nats --http makes
	// it): its /api/rollups says what auto answers from.
	api := httptest.NewServer(server.API(server.APIConfig{Report: func(ctx context.Context, p *report.Params) (*report.Report, error) {
		rep, _, err := Report(ctx, nc, js, p, nil, t.TempDir())
		return rep, err
	}}))
	defer api.Close()
	fromRollups, fromRecords, differ := 0, 0, 0
	for _, tc := range []struct {
		args []string
		// alone: only the holder of the lone connection holds a
		// record across a bound.
		alone bool
	}{
		{[]string{"--from", ts(at(1)), "--to", ts(at(3))}, false},
		{[]string{"--from", ts(at(1)), "--to", ts(at(3)), "--by", "category", "--bucket", "1m"}, false},
		{[]string{"--to", ts(at(2))}, false},
		{[]string{"--from", ts(at(4)), "--by", "probe"}, false},
		{[]string{"--to", ts(at(8))}, false},
		{[]string{"--to", ts(at(8)), "--by", "category"}, false},
		{[]string{"--from", ts(at(8))}, false},
		{[]string{"--from", ts(at(8)), "--to", ts(at(21))}, true},
		{[]string{"--from", ts(at(21))}, true},
		{[]string{"--from", ts(at(21)), "--by", "category", "--bucket", "1m"}, true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			pa := params(t, append([]string{"--source", "auto"}, tc.args...)...)
			opts := pa.Options()
			opts.Rules = classify.Default()
			want, err := pa.Report(ctx, st, opts, src)
			if err != nil {
				t.Fatal(err)
			}
			got, rs := clusterReport(t, ctx, nc, js, pa)
			sameJSON(t, "--source auto", got, want)
			if rs.Rollups != (want.Summary.Rollup != nil) {
				t.Errorf("the cluster answered from rollups %v, the single collector %v: %v", rs.Rollups, want.Summary.Rollup != nil, rs)
			}
			q := url.Values{}
			for i := 0; i+1 < len(tc.args); i += 2 {
				q.Set(strings.TrimPrefix(tc.args[i], "--"), tc.args[i+1])
			}
			resp, err := http.Get(api.URL + "/api/rollups?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			var a struct {
				Available bool
				Source    string
				Reason    string
			}
			err = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("/api/rollups?%s: %s %v", q.Encode(), resp.Status, err)
			}
			if a.Available != rs.Rollups || a.Source != map[bool]string{true: "rollups", false: "records"}[rs.Rollups] {
				t.Errorf("/api/rollups?%s: %+v; auto answered from the rollups: %v", q.Encode(), a, rs.Rollups)
			}
			crossing, err := boundsCrossed(ctx, nc, names, pa)
			if err != nil {
				t.Fatal(err)
			}
			if tc.alone && !slices.Equal(crossing, []string{holder}) {
				t.Errorf("workers with a record across a bound: %v, want the lone connection's holder %s", crossing, holder)
			}
			if rs.Rollups {
				fromRollups++
				return
			}
			fromRecords++
			if !strings.Contains(rs.Fallback, "lies across") {
				t.Errorf("fallback reason: %q", rs.Fallback)
			}
			// What the rollups alone say: auto's answer before.
			pr := params(t, append([]string{"--source", "rollups"}, tc.args...)...)
			roll, _ := clusterReport(t, ctx, nc, js, pr)
			if string(reportJSON(t, roll)) != string(reportJSON(t, want)) {
				differ++
			}
		})
	}
	// By start (--started), from the records and auto alike, the
	// cluster's report is the single collector's: the workers read from
	// a margin before the range on and keep the biflows that started in
	// it; auto answers from the rollups across crossed bounds.
	for _, args := range [][]string{
		{"--from", ts(at(1)), "--to", ts(at(3))},
		{"--from", ts(at(1.5)), "--to", ts(at(2.75)), "--by", "category"},
		{"--from", ts(at(4)), "--by", "probe"},
		{"--from", ts(at(8)), "--to", ts(at(21))},
		{"--from", ts(at(20)), "--to", ts(at(21)), "--by", "category", "--bucket", "1m"},
	} {
		for _, source := range []string{"records", "auto"} {
			a := append([]string{"--started", "--source", source}, args...)
			t.Run(strings.Join(a, " "), func(t *testing.T) {
				pa := params(t, a...)
				opts := pa.Options()
				opts.Rules = classify.Default()
				want, err := pa.Report(ctx, st, opts, src)
				if err != nil {
					t.Fatal(err)
				}
				got, rs := clusterReport(t, ctx, nc, js, pa)
				sameJSON(t, strings.Join(a, " "), got, want)
				if source == "auto" && pa.Query.From.Equal(pa.Query.From.Truncate(time.Minute)) && !rs.Rollups {
					t.Errorf("by start over whole minutes, auto came from the records: %v", rs)
				}
			})
		}
	}
	t.Logf("%d ranges from the rollups, %d from the records (%d where the rollups differ)", fromRollups, fromRecords, differ)
	if fromRollups == 0 || fromRecords == 0 || differ == 0 {
		t.Errorf("want ranges answered from either source and some where the rollups differ from the records: %d, %d, %d", fromRollups, fromRecords, differ)
	}
}
