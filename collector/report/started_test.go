package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
)

// TestStartedSelection: --started with --from/--to selects the biflows
// that started in the range, so a range's report is exactly its bucket
// of the bucketed report over all the records (rows and totals), as the
// web UI's heatmap cells and the explorer they open must agree; the
// default selection (records active in the range) stays, and on this
// store (connections across the buckets' bounds, two probes'
// duplicates) counts other biflows in some bucket.
func TestStartedSelection(t *testing.T) {
	d := rollupStores[1]
	d.conns = 600
	s, _ := writeRollupStore(t, d, 3)
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	if _, err := Rebuild(context.Background(), s, RollupConfig{Rules: rules, RulesID: src.RulesID}); err != nil {
		t.Fatal(err)
	}
	report := defaultReporter(t, s)
	const bucket = 10 * time.Minute
	all := report("--by", "category", "--bucket", bucket.String())
	type cell struct {
		biflows         int
		packets, octets uint64
	}
	key := func(u UsageRow) string { return u.Aggregate + "/" + u.Category }
	buckets := map[Timestamp]map[string]cell{}
	for _, u := range all.Usage {
		if buckets[*u.Bucket] == nil {
			buckets[*u.Bucket] = map[string]cell{}
		}
		buckets[*u.Bucket][key(u)] = cell{u.Biflows, u.Packets, u.Octets}
	}
	if len(buckets) < 5 {
		t.Fatalf("%d buckets: the test proves little", len(buckets))
	}
	differ, sum := 0, 0
	mergedSeen := 0
	for b, want := range buckets {
		from, to := b.Time().Format(time.RFC3339), b.Time().Add(bucket).Format(time.RFC3339)
		merged := map[string]int{}
		for _, source := range []string{SourceRecords, SourceAuto} {
			rep := report("--by", "category", "--from", from, "--to", to, "--started", "--source", source)
			merged[source] = rep.Summary.Merged
			got := map[string]cell{}
			n := 0
			for _, u := range rep.Usage {
				got[key(u)] = cell{u.Biflows, u.Packets, u.Octets}
				n += u.Biflows
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("--started --from %s --to %s --source %s: rows %v, the bucket's %v", from, to, source, got, want)
			}
			if rep.Summary.Biflows != n {
				t.Errorf("--started --from %s --source %s: %d biflows in the summary, %d in the rows", from, source, rep.Summary.Biflows, n)
			}
			if source == SourceAuto && rep.Summary.Rollup == nil {
				// By start, a bound crossed does not keep the rollups
				// from answering.
				t.Errorf("--started --from %s --source auto: answered from the records, not the rollups", from)
			}
			if source == SourceRecords {
				sum += n
				for _, bf := range rep.Biflows {
					if f := time.Unix(0, bf.First); f.Before(b.Time()) || !f.Before(b.Time().Add(bucket)) {
						t.Errorf("--started --from %s: biflow started at %s listed", from, time.Unix(0, bf.First).UTC())
					}
				}
			}
		}
		// The duplicates dropped are those of the biflows that started
		// in the range, from the records as from the rollups (the
		// records' report counted every duplicate it read, to the end of
		// the store).
		if merged[SourceRecords] != merged[SourceAuto] {
			t.Errorf("--started --from %s: merged %d from the records, %d from the rollups", from, merged[SourceRecords], merged[SourceAuto])
		}
		mergedSeen += merged[SourceAuto]
		if active := report("--by", "category", "--from", from, "--to", to); active.Summary.Biflows != report("--by", "category", "--from", from, "--to", to, "--started").Summary.Biflows {
			differ++
		}
	}
	if sum != all.Summary.Biflows {
		t.Errorf("the ranges by start hold %d biflows, the store %d", sum, all.Summary.Biflows)
	}
	if mergedSeen == 0 {
		t.Fatal("no duplicates in any range: the merged check proves nothing")
	}
	if differ == 0 {
		t.Fatal("in no bucket do the biflows active differ from those started: the store crosses no bound, the test proves nothing")
	}
	t.Logf("%d buckets, %d biflows; the biflows active differ from those started in %d buckets", len(buckets), sum, differ)
}

// TestStartedRanges: over ranges of any bounds (random, to the
// millisecond), the report --started lists exactly the biflows of the
// report over all the records whose start is in the range, each alike
// (counters, symptoms, category, probes): the records read from
// StartedMargin before --from on make the same biflows as all of them.
func TestStartedRanges(t *testing.T) {
	for _, d := range rollupStores {
		t.Run(d.name, func(t *testing.T) {
			d.conns = 500
			s, _ := writeRollupStore(t, d, 21)
			rules := classify.Default()
			report := func(args ...string) *Report {
				t.Helper()
				p := rollupParams(t, args...)
				opts := p.Options()
				opts.Rules = rules
				rep, err := FromStoreQuery(context.Background(), s, p.Query, opts)
				if err != nil {
					t.Fatalf("%v: %v", args, err)
				}
				return rep
			}
			enc := func(b *Biflow) string {
				j, err := json.Marshal(b)
				if err != nil {
					t.Fatal(err)
				}
				return string(j)
			}
			all := report()
			if all.Summary.First == nil {
				t.Fatal("empty store")
			}
			lo, hi := int64(*all.Summary.First), int64(*all.Summary.Last)
			rng := rand.New(rand.NewPCG(5, 6))
			crossed := 0
			for range 20 {
				from := lo + rng.Int64N(hi-lo)
				to := from + rng.Int64N(int64(20*time.Minute)) + 1
				f, e := time.Unix(0, from).UTC().Format(time.RFC3339Nano), time.Unix(0, to).UTC().Format(time.RFC3339Nano)
				var want []string
				for i := range all.Biflows {
					if b := &all.Biflows[i]; b.First >= from && b.First < to {
						want = append(want, enc(b))
					}
				}
				rep := report("--from", f, "--to", e, "--started")
				var got []string
				for i := range rep.Biflows {
					got = append(got, enc(&rep.Biflows[i]))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("--started --from %s --to %s: %d biflows, %d of the whole report start in the range (or they differ)", f, e, len(got), len(want))
				}
				if rep.Summary.Biflows != len(want) {
					t.Errorf("--started --from %s --to %s: summary %d biflows, want %d", f, e, rep.Summary.Biflows, len(want))
				}
				if report("--from", f, "--to", e).Summary.Biflows != len(want) {
					crossed++
				}
			}
			if crossed == 0 {
				t.Fatal("in no range do the biflows active differ from those started: the test proves nothing")
			}
		})
	}
}
