package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// counterValue reads the value of metric name (with label reason when
// not empty) from m as /metrics shows it.
func counterValue(t *testing.T, m *Metrics, name, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, x := range mf.GetMetric() {
			if reason != "" && (len(x.GetLabel()) != 1 || x.GetLabel()[0].GetValue() != reason) {
				continue
			}
			if x.GetCounter() != nil {
				return x.GetCounter().GetValue()
			}
			return x.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

// TestWorkerRetention: two workers hold three exports of very different
// ages; retention deletes the oldest by age (while the workers keep live
// rollups), then, after a restart with max_size, the next oldest by size
// (the periodic pass, also pruning by age records replayed too late); a
// last restart keeps what was pruned. After each step the merged report
// equals, byte for byte, the single collector's report over its store
// of the same records after the same retention (store.PruneBefore), and
// the rollup report over the range retention kept equals the single
// collector's; over a range reaching the pruned records the rollups say
// retention pruned it. The pruned counts on /metrics are the records
// sent of the pruned exports.
func TestWorkerRetention(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	dir := t.TempDir()
	type running struct {
		w    *Worker
		stop func()
	}
	var ws []running
	start := func(r Retention) {
		for _, name := range []string{"w1", "w2"} {
			w, stop := runWorkerAt(t, name, filepath.Join(dir, name+".db"), nc, js, r)
			ws = append(ws, running{w, stop})
		}
		peertest.WaitUntil(t, 30*time.Second, "both workers own partitions", func() bool {
			return len(ws[0].w.Owned()) > 0 && len(ws[1].w.Owned()) > 0 && len(ws[0].w.Owned())+len(ws[1].w.Owned()) == Partitions
		})
	}
	stopAll := func() {
		for _, r := range ws {
			r.stop()
		}
		ws = nil
	}
	sum := func(f func(w *Worker) uint64) uint64 {
		n := uint64(0)
		for _, r := range ws {
			n += f(r.w)
		}
		return n
	}
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(21, 22))
	send := func(recs []flow.Record) uint64 {
		before := sum(func(w *Worker) uint64 { return w.Stored.Load() })
		n := sendTwoProbes(g, rng, recs)
		peertest.WaitUntil(t, 30*time.Second, "records stored", func() bool {
			return sum(func(w *Worker) uint64 { return w.Stored.Load() }) >= before+n
		})
		return n
	}
	sizes := func() []int64 {
		var l []int64
		for _, r := range ws {
			n, err := r.w.DataSize()
			if err != nil {
				t.Fatal(err)
			}
			l = append(l, n)
		}
		return l
	}

	now := time.Now()
	at := func(ago time.Duration) int64 { return now.Add(-ago).Truncate(time.Minute).UnixNano() }
	// Newest first (old records can come late: a spooled replay): g3
	// two hours ago, g1 three days ago, g2 two days ago with every
	// record ending at one instant (so that a size limit takes all of
	// it or none).
	start(Retention{})
	send(partRecords(rng, 800, at(2*time.Hour), int64(5*time.Minute)))
	small := sizes()
	n1 := send(partRecords(rng, 800, at(72*time.Hour), int64(5*time.Minute)))
	g2 := partRecords(rng, 800, at(48*time.Hour), int64(5*time.Minute))
	t2 := at(48*time.Hour) + int64(6*time.Minute)
	for i := range g2 {
		g2[i].Last = t2
	}
	n2 := send(g2)

	// The single collector's store: every record, its rollups made as
	// its Roller made them while they arrived (before any retention).
	single, src := rebuiltStore(t, ctx, nc, js)
	compare := func(step string, cutoff int64) {
		t.Helper()
		if _, err := single.PruneBefore(time.Unix(0, cutoff)); err != nil {
			t.Fatal(err)
		}
		old := time.Unix(0, at(80*time.Hour)).Truncate(time.Hour).UTC().Format(time.RFC3339)
		for _, args := range [][]string{
			nil,
			{"--by", "category", "--bucket", "1h"},
			{"--from", old, "--to", time.Unix(0, at(40*time.Hour)).UTC().Format(time.RFC3339)},
			// The rollups outlive the records, as the single
			// collector's: the pruned range from the retired slices.
			{"--source", "rollups", "--by", "category", "--bucket", "1h"},
			{"--source", "rollups", "--by", "probe", "--bucket", "1m", "--from", old},
			{"--source", "auto", "--by", "category", "--from", old},
		} {
			p := params(t, args...)
			opts := p.Options()
			opts.Rules = classify.Default()
			want, err := p.Report(ctx, single, opts, src)
			if err != nil {
				t.Fatal(err)
			}
			// The range of the two oldest exports is empty once both
			// are pruned, in both.
			if want.Summary.Biflows == 0 && (len(args) == 0 || args[0] != "--from" || step == "by age") {
				t.Fatalf("%s %v: no biflows in the single collector's report", step, args)
			}
			got, _ := clusterReport(t, ctx, nc, js, p)
			// An open range from the records says where they start:
			// the latest cut a worker's retention deleted records at,
			// the single collector's at its own cutoff (they differ
			// by size: see below).
			if g, w := got.Summary.RecordsPrunedBefore, want.Summary.RecordsPrunedBefore; g != nil && w != nil {
				var cut int64
				for _, r := range ws {
					cut = max(cut, r.w.prunedBefore.Load())
				}
				if int64(*g) != cut || int64(*w) != cutoff {
					t.Errorf("%s %v: records_pruned_before %s, want the workers' %s; single collector %s, want %s",
						step, args, g, report.Timestamp(cut), w, report.Timestamp(cutoff))
				}
				report.NoteRecordsPruned(&got.Summary, cutoff)
			} else if len(args) == 0 && (g == nil || w == nil) {
				t.Errorf("%s %v: records_pruned_before %v, single collector %v: want both", step, args, g, w)
			}
			sameJSON(t, fmt.Sprintf("%s %v", step, args), got, want)
		}
	}

	// By age, with live rollups: a rollup report seeds them first.
	clusterReport(t, ctx, nc, js, params(t, "--source", "rollups"))
	cutoff := now.Add(-60 * time.Hour)
	for _, r := range ws {
		if _, err := r.w.PruneBefore(cutoff); err != nil {
			t.Fatal(err)
		}
	}
	if got := sum(func(w *Worker) uint64 { return w.PrunedByAge.Load() }); got != n1 {
		t.Fatalf("pruned %d records by age, want the %d of the oldest export", got, n1)
	}
	// The live rollups still answer (their count follows the spans).
	_, rs := clusterReport(t, ctx, nc, js, params(t, "--source", "rollups", "--by", "category"))
	if rs.Live != rs.Consolidated || rs.Built != 0 {
		t.Errorf("after pruning, want every partition answered from its live rollups: %v", rs)
	}
	compare("by age", cutoff.UnixNano())
	mid := sizes()

	// Restart with max_size: the periodic pass deletes the oldest
	// export left, all of it (one end time), and no newer record.
	var limits []int64
	for i := range mid {
		limits = append(limits, small[i]+(mid[i]-small[i])/2)
	}
	stopAll()
	var ms []*Metrics
	for i, name := range []string{"w1", "w2"} {
		w, stop := runWorkerAt(t, name, filepath.Join(dir, name+".db"), nc, js, Retention{MaxAge: 60 * time.Hour, MaxSize: limits[i]})
		ws = append(ws, running{w, stop})
		ms = append(ms, &Metrics{})
		ms[i].SetWorker(w)
	}
	peertest.WaitUntil(t, 30*time.Second, "records pruned by size", func() bool {
		return sum(func(w *Worker) uint64 { return w.PrunedBySize.Load() }) >= n2
	})
	// Records of four days ago replayed now: stored, then deleted by
	// age on the next pass.
	n0 := send(partRecords(rng, 30, at(100*time.Hour), int64(time.Minute)))
	peertest.WaitUntil(t, 30*time.Second, "late old records pruned by age", func() bool {
		return sum(func(w *Worker) uint64 { return w.PrunedByAge.Load() }) >= n0
	})
	var bySize, byAge float64
	for i, m := range ms {
		bySize += counterValue(t, m, "mira_cluster_worker_pruned_records_total", "size")
		byAge += counterValue(t, m, "mira_cluster_worker_pruned_records_total", "age")
		if got := counterValue(t, m, "mira_cluster_worker_data_bytes", ""); got > float64(limits[i]) || got <= 0 {
			t.Errorf("worker %d: data bytes %v, want at most max_size %d", i, got, limits[i])
		}
	}
	if bySize != float64(n2) || byAge != float64(n0) {
		t.Errorf("/metrics: %v records pruned by size, %v by age; want %d and %d", bySize, byAge, n2, n0)
	}
	for i, n := range sizes() {
		if n > limits[i] {
			t.Errorf("worker %d: %d bytes of records, max_size %d", i, n, limits[i])
		}
	}
	// The single collector's store after the same retention: by size
	// its store deletes chunks (up to 64 records of an origin) where a
	// worker deletes every record that ended before a cutoff; the
	// oldest records by end time go in both: here the export ending
	// at t2 (the single collector's store keeps records that ended
	// within a second of its cutoff: 2 s after t2 prunes them).
	compare("by size", t2+int64(2*time.Second))
	var spans [][]Span
	for _, r := range ws {
		spans = append(spans, r.w.Spans())
	}

	// A restart keeps what was pruned: the spans, the report, and the
	// rollups' pruned range.
	stopAll()
	start(Retention{})
	for i, r := range ws {
		if got := r.w.Spans(); !reflect.DeepEqual(got, spans[i]) {
			t.Errorf("worker %d: spans after a restart %v, want %v", i, got, spans[i])
		}
	}
	compare("after a restart", t2+int64(2*time.Second))
}

// TestKeepFrom: a batch loses exactly its records that ended before the
// cutoff, keeps the others' identities and encodings, and counts the
// dropped ones by partition.
func TestKeepFrom(t *testing.T) {
	recs := partRecords(rand.New(rand.NewPCG(5, 6)), 8, 0, int64(time.Second))
	for i := range recs {
		recs[i].First, recs[i].Last = int64(i)*10, int64(i)*10+5
	}
	b := encodeBatch(ID{Instance: 7}, recs)
	for _, cutoff := range []int64{-1, 0, 6, 15, 16, 1 << 40} {
		var pruned [Partitions]uint64
		out, bs, err := keepFrom(b, cutoff, &pruned)
		if err != nil {
			t.Fatal(err)
		}
		var want []flow.Record
		var wantPruned [Partitions]uint64
		for _, r := range recs {
			if r.Last >= cutoff {
				want = append(want, r)
			} else {
				wantPruned[Partition(r.Key, Partitions)]++
			}
		}
		var got []flow.Record
		n := uint64(0)
		if err := decodeBatchRecords(out, func(_ ID, _ []byte, r *flow.Record) error {
			got = append(got, *r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, sp := range bs.spans {
			n += sp.N
		}
		if len(got) != len(want) || n != uint64(len(want)) || pruned != wantPruned {
			t.Fatalf("cutoff %d: kept %d (spans %d), pruned %v; want %d, %v", cutoff, len(got), n, pruned, len(want), wantPruned)
		}
		for i := range got {
			if !reflect.DeepEqual(store.AppendRecord(nil, &got[i]), store.AppendRecord(nil, &want[i])) {
				t.Fatalf("cutoff %d: record %d changed", cutoff, i)
			}
		}
		if len(want) > 0 && bs.minLast != want[0].Last {
			t.Errorf("cutoff %d: earliest end %d, want %d", cutoff, bs.minLast, want[0].Last)
		}
	}
}

// TestWorkerRetentionMoved: a worker that joined late stored only old
// records (a late replay) of partitions the first worker also holds, so
// it is never asked for rollups (the first worker, holding more of
// those partitions, rolls them up); it prunes all of them without
// retiring the rollups first (its rules do not load). The merged report
// from the records equals the single collector's after the same
// retention, and the rollups, which no longer hold those records'
// biflows, refuse the range they touched, while answering the range
// kept as the single collector's do.
func TestWorkerRetentionMoved(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	w1 := runWorker(t, "w1", nc, js)
	peertest.WaitUntil(t, 30*time.Second, "w1 owns every partition", func() bool { return len(w1.Owned()) == Partitions })
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(31, 32))
	stored := func() uint64 { return w1.Stored.Load() }
	var w2 *Worker
	send := func(recs []flow.Record) {
		before := stored()
		n := sendTwoProbes(g, rng, recs)
		peertest.WaitUntil(t, 30*time.Second, "records stored", func() bool { return stored() >= before+n })
	}
	now := time.Now()
	at := func(ago time.Duration) int64 { return now.Add(-ago).Truncate(time.Minute).UnixNano() }
	send(partRecords(rng, 800, at(2*time.Hour), int64(5*time.Minute)))
	w2 = runWorker(t, "w2", nc, js)
	stored = func() uint64 { return w1.Stored.Load() + w2.Stored.Load() }
	peertest.WaitUntil(t, 30*time.Second, "partitions shared", func() bool {
		return len(w2.Owned()) > 0 && len(w1.Owned())+len(w2.Owned()) == Partitions
	})
	mine := map[int]bool{}
	for _, p := range w2.Owned() {
		mine[p] = true
	}
	var old []flow.Record
	for _, r := range partRecords(rng, 150, at(72*time.Hour), int64(5*time.Minute)) {
		if mine[Partition(r.Key, Partitions)] {
			old = append(old, r)
		}
	}
	send(old)
	if w2.Stored.Load() == 0 {
		t.Fatal("w2 stored nothing")
	}
	single, src := rebuiltStore(t, ctx, nc, js)
	cutoff := now.Add(-60 * time.Hour)
	w2.Rules = []byte("rules: [")
	if _, err := w2.PruneBefore(cutoff); err != nil {
		t.Fatal(err)
	}
	if len(w2.Spans()) != 0 || w2.PrunedByAge.Load() != w2.Stored.Load() {
		t.Fatalf("w2 pruned %d of its %d records, holds %v", w2.PrunedByAge.Load(), w2.Stored.Load(), w2.Spans())
	}
	if _, err := single.PruneBefore(cutoff); err != nil {
		t.Fatal(err)
	}
	kept := cutoff.Add(report.DefaultWindow + classify.PairWindow).Truncate(time.Hour).Add(time.Hour).UTC().Format(time.RFC3339)
	for _, args := range [][]string{nil, {"--source", "rollups", "--by", "category", "--from", kept}} {
		p := params(t, args...)
		opts := p.Options()
		opts.Rules = classify.Default()
		want, err := p.Report(ctx, single, opts, src)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := clusterReport(t, ctx, nc, js, p)
		sameJSON(t, fmt.Sprint(args), got, want)
	}
	// Over an open range the rollups answer from the oldest bucket they
	// hold (the minute cells reach further back than the hours), as a
	// single collector's after rollup retention, and say so (no record
	// is older: w2's are pruned).
	start := time.Unix(0, prunedLimits(cutoff.UnixNano(), report.DefaultWindow)["1m"]).UTC()
	p := params(t, "--source", "rollups", "--by", "category", "--from", start.Format(time.RFC3339))
	opts := p.Options()
	opts.Rules = classify.Default()
	want, err := p.Report(ctx, single, opts, src)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := clusterReport(t, ctx, nc, js, params(t, "--source", "rollups", "--by", "category"))
	ri := got.Summary.Rollup
	if ri == nil || ri.CoveredFrom == nil || !ri.CoveredFrom.Time().Equal(start) ||
		!strings.HasSuffix(ri.Note, "no stored record started earlier") {
		t.Fatalf("open range: the merged report does not say it starts at %s: %+v", start, ri)
	}
	ri.CoveredFrom, ri.Note = nil, ""
	sameJSON(t, "open range", got, want)
	from := cutoff.Truncate(time.Hour).UTC().Format(time.RFC3339)
	_, rs, err := Report(ctx, nc, js, params(t, "--source", "rollups", "--by", "category", "--from", from), nil, t.TempDir())
	var re *report.RollupError
	if !errors.As(err, &re) {
		t.Errorf("a rollup report from %s, a range w2's pruned records touched: %v (%v), want a RollupError", from, err, rs)
	}
}

// TestWorkerRollupRetention: a worker with minute_retention drops its
// minute cells older than that (kept ones on its retention pass, every
// answer's) and says so, the hour cells stay: rollup reports then
// answer, or refuse, as the single collector's after the same
// store.Store.PruneRollups.
func TestWorkerRollupRetention(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	w, _ := runWorkerAt(t, "w1", filepath.Join(t.TempDir(), "w1.db"), nc, js, Retention{Minute: 2 * time.Hour})
	peertest.WaitUntil(t, 30*time.Second, "w1 owns every partition", func() bool { return len(w.Owned()) == Partitions })
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(41, 42))
	now := time.Now()
	n := sendTwoProbes(g, rng, append(partRecords(rng, 300, now.Add(-3*time.Hour).Truncate(time.Minute).UnixNano(), int64(5*time.Minute)),
		partRecords(rng, 300, now.Add(-30*time.Minute).Truncate(time.Minute).UnixNano(), int64(5*time.Minute))...))
	peertest.WaitUntil(t, 30*time.Second, "records stored", func() bool { return w.Stored.Load() >= n })
	// Cells kept by a first report, then pruned by the periodic pass.
	clusterReport(t, ctx, nc, js, params(t, "--source", "rollups"))
	m := &Metrics{}
	m.SetWorker(w)
	peertest.WaitUntil(t, 30*time.Second, "minute cells pruned", func() bool { return w.PrunedCells.Load() > 0 })
	if got := counterValue(t, m, "mira_cluster_worker_pruned_rollup_cells_total", ""); got != float64(w.PrunedCells.Load()) || got == 0 {
		t.Errorf("/metrics: %v rollup cells pruned, the worker counted %d", got, w.PrunedCells.Load())
	}
	single, src := rebuiltStore(t, ctx, nc, js)
	if _, err := single.PruneRollups(store.RollupMinute, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	recent := now.Add(-time.Hour).Truncate(time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		args    []string
		refused bool
	}{
		{[]string{"--by", "category", "--bucket", "1h"}, false},
		{[]string{"--by", "probe"}, false},
		{[]string{"--by", "category", "--bucket", "1m", "--from", recent}, false},
		{[]string{"--by", "category", "--bucket", "1m"}, true}, // minute cells of the old records: pruned
	} {
		args := tc.args
		p := params(t, append([]string{"--source", "rollups"}, args...)...)
		opts := p.Options()
		opts.Rules = classify.Default()
		want, werr := p.Report(ctx, single, opts, src)
		got, _, gerr := Report(ctx, nc, js, p, nil, t.TempDir())
		var re *report.RollupError
		switch {
		case tc.refused != (werr != nil):
			t.Fatalf("%v: the single collector's answer: %v", args, werr)
		case werr != nil && errors.As(werr, &re) && errors.As(gerr, &re):
		case werr != nil || gerr != nil:
			t.Errorf("%v: single collector %v, cluster %v", args, werr, gerr)
		default:
			sameJSON(t, fmt.Sprint(args), got, want)
		}
	}
}

// TestTrimChain: slices leave the chain once rollup retention deleted
// all their cells at both resolutions; the last one stays.
func TestTrimChain(t *testing.T) {
	mk := func() *retiredChain {
		return &retiredChain{Start: 0, Slices: []retiredSlice{{From: 0, To: 10}, {From: 10, To: 20}, {From: 20, To: 30}}}
	}
	for _, tc := range []struct {
		limits map[string]int64
		start  int64
		left   int
	}{
		{nil, 0, 3},
		{map[string]int64{"1m": 25}, 0, 3}, // hour cells kept
		{map[string]int64{"1m": 25, "1h": 9}, 0, 3},
		{map[string]int64{"1m": 25, "1h": 10}, 10, 2},
		{map[string]int64{"1m": 100, "1h": 100}, 20, 1},
	} {
		c := mk()
		c.trim(tc.limits)
		if c.Start != tc.start || len(c.Slices) != tc.left || c.end() != 30 {
			t.Errorf("limits %v: start %d, %d slices, end %d; want %d, %d, 30", tc.limits, c.Start, len(c.Slices), c.end(), tc.start, tc.left)
		}
	}
}
