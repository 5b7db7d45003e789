package cluster

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/tools/peertest"
)

// TestWorkerRollupRetentionCut: a worker with minute_retention and
// hour_retention drops the cells older than that; a merged rollup report without --from
// then says where it actually starts (covered_from, the note) exactly
// as the single collector's report after the same
// store.Store.PruneRollups does, and auto answers from the records,
// which reach further back.
func TestWorkerRollupRetentionCut(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	w, _ := runWorkerAt(t, "w1", filepath.Join(t.TempDir(), "w1.db"), nc, js, Retention{Minute: time.Hour, Hour: 2 * time.Hour})
	peertest.WaitUntil(t, 30*time.Second, "w1 owns every partition", func() bool { return len(w.Owned()) == Partitions })
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(43, 44))
	now := time.Now()
	n := sendTwoProbes(g, rng, append(partRecords(rng, 300, now.Add(-4*time.Hour).Truncate(time.Minute).UnixNano(), int64(5*time.Minute)),
		partRecords(rng, 300, now.Add(-30*time.Minute).Truncate(time.Minute).UnixNano(), int64(5*time.Minute))...))
	peertest.WaitUntil(t, 30*time.Second, "records stored", func() bool { return w.Stored.Load() >= n })
	single, src := rebuiltStore(t, ctx, nc, js)
	opts := func(p *report.Params) report.Options {
		o := p.Options()
		o.Rules = classify.Default()
		return o
	}
	// The worker's limit is the hour 2 h before the moment it answers:
	// compare again if an hour began meanwhile.
	limit := func() time.Time { return time.Now().Add(-2 * time.Hour).Truncate(time.Hour).UTC() }
	for try := 0; ; try++ {
		kept := limit()
		if _, err := single.PruneRollups(store.RollupHour, kept); err != nil {
			t.Fatal(err)
		}
		if _, err := single.PruneRollups(store.RollupMinute, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		p := params(t, "--source", "rollups", "--by", "category")
		want, err := p.Report(ctx, single, opts(p), src)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := clusterReport(t, ctx, nc, js, p)
		if limit() != kept && try < 3 {
			continue
		}
		ri := got.Summary.Rollup
		if ri == nil || ri.CoveredFrom == nil || !ri.CoveredFrom.Time().Equal(kept) ||
			!strings.HasPrefix(ri.Note, "rollups kept from "+ri.CoveredFrom.RFC3339()) || !strings.Contains(ri.Note, "records reach further back") {
			t.Fatalf("the merged report over rollups cut at %s says %+v", kept, ri)
		}
		sameJSON(t, "open range, rollups", got, want)
		break
	}

	p := params(t, "--source", "auto", "--by", "category")
	got, rs := clusterReport(t, ctx, nc, js, p)
	if got.Summary.Rollup != nil || !strings.Contains(rs.Fallback, "retention pruned") {
		t.Errorf("auto answered from the cut rollups (%+v; %s) though the records reach further back", got.Summary.Rollup, rs.Fallback)
	}
	want, err := p.Report(ctx, single, opts(p), src)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "open range, auto", got, want)
}
