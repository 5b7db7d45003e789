package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/store"
)

// TestRollupsRetentionCut: a report without --from over rollups whose
// oldest hour retention deleted says where it actually starts
// (covered_from, a note, a table line) and counts what the records
// from there count; auto answers from the records while they reach
// further back, from the rollups once the records were pruned too; an
// explicit range older than the kept cells stays refused.
func TestRollupsRetentionCut(t *testing.T) {
	s, report := cutStore(t)
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	ctx := context.Background()
	if _, err := Rebuild(ctx, s, RollupConfig{Rules: classify.Default(), RulesID: src.RulesID}); err != nil {
		t.Fatal(err)
	}
	kept := time.Unix(0, rollupT0).Add(time.Hour).UTC()
	if n, err := s.PruneRollups(time.Hour, kept); err != nil || n == 0 {
		t.Fatalf("prune: %d cells, %v", n, err)
	}
	// The minute cells keep less (the hours answer the open range).
	if n, err := s.PruneRollups(time.Minute, kept.Add(time.Hour)); err != nil || n == 0 {
		t.Fatalf("prune: %d cells, %v", n, err)
	}
	// What the rollups count from the first hour kept.
	want := report("--source", "rollups", "--from", kept.Format(time.RFC3339))
	all := report()
	if all.Summary.Biflows <= want.Summary.Biflows {
		t.Fatalf("the records before %s hold no biflow (%d, %d): the test proves nothing", kept, all.Summary.Biflows, want.Summary.Biflows)
	}

	check := func(rep *Report, suffix string) {
		t.Helper()
		ri := rep.Summary.Rollup
		switch {
		case ri == nil:
			t.Fatal("not answered from the rollups")
		case ri.CoveredFrom == nil || ri.CoveredFrom.Time() != kept:
			t.Fatalf("covered_from %v, want %s", ri.CoveredFrom, kept)
		case !strings.Contains(ri.Note, "rollups kept from "+kept.Format("2006-01-02T15:04:05.000Z")) || !strings.HasSuffix(ri.Note, suffix):
			t.Errorf("note %q, want the start and %q", ri.Note, suffix)
		case rep.Summary.Biflows != want.Summary.Biflows || rep.Summary.Packets != want.Summary.Packets:
			t.Errorf("%d biflows, %d packets; from %s: %d, %d", rep.Summary.Biflows, rep.Summary.Packets,
				kept, want.Summary.Biflows, want.Summary.Packets)
		}
		var js, tab bytes.Buffer
		if err := rep.Write(&js, "json"); err != nil {
			t.Fatal(err)
		}
		var x struct {
			Summary struct {
				Rollup struct {
					CoveredFrom string `json:"covered_from"`
					Note        string `json:"note"`
				} `json:"rollup"`
			} `json:"summary"`
		}
		if err := json.Unmarshal(js.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		if got, err := time.Parse(time.RFC3339, x.Summary.Rollup.CoveredFrom); err != nil || !got.Equal(kept) || x.Summary.Rollup.Note != ri.Note {
			t.Errorf("JSON summary.rollup %+v (%v), want covered_from %s and the note", x.Summary.Rollup, err, kept)
		}
		if err := rep.Write(&tab, "table"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tab.String(), "Range cut: rollups kept from ") {
			t.Errorf("the table does not say the range was cut:\n%s", tab.String())
		}
	}
	check(report("--source", "rollups"), noteEarlierRecords)
	// A running collector's cells of a pruned hour (Roller.Pending) are
	// not counted either.
	live := src
	live.Live = func(read func(map[time.Duration]map[store.RollupKey]*store.RollupCell) error) error {
		old := &store.RollupCell{}
		old.Biflows, old.Packets, old.First, old.Last = 1, 1000, rollupT0, rollupT0
		rec := &store.RollupCell{}
		rec.Flows, rec.First, rec.Last = 1, rollupT0, rollupT0
		return read(map[time.Duration]map[store.RollupKey]*store.RollupCell{time.Hour: {
			{Bucket: rollupT0, Kind: store.RollupBiflows}: old, {Bucket: rollupT0, Kind: store.RollupRecords}: rec}})
	}
	p0 := rollupParams(t, "--source", "rollups")
	if rep, err := p0.Report(ctx, s, p0.Options(), live); err != nil {
		t.Fatal(err)
	} else if rep.Summary.Biflows != want.Summary.Biflows || rep.Summary.First == nil || rep.Summary.First.Time().Before(kept) {
		t.Errorf("with the collector's cells of a pruned hour: %d biflows from %v, want %d from %s",
			rep.Summary.Biflows, rep.Summary.First, want.Summary.Biflows, kept)
	}
	if rep := report("--source", "auto"); rep.Summary.Rollup != nil || rep.Summary.Biflows != all.Summary.Biflows {
		t.Errorf("auto answered from the cut rollups (%+v, %d biflows) though the records reach further back (%d)",
			rep.Summary.Rollup, rep.Summary.Biflows, all.Summary.Biflows)
	}
	// A range from the kept hour on was not cut.
	if ri := report("--source", "rollups", "--from", kept.Format(time.RFC3339)).Summary.Rollup; ri == nil || ri.CoveredFrom != nil || ri.Note != "" {
		t.Errorf("a range inside the kept cells: %+v", ri)
	}
	// An explicit older range stays refused.
	p := rollupParams(t, "--source", "rollups", "--from", time.Unix(0, rollupT0).UTC().Format(time.RFC3339))
	var re *RollupError
	if _, err := p.Report(ctx, s, p.Options(), src); err == nil || !errors.As(err, &re) {
		t.Errorf("a range older than the kept cells: %v, want a RollupError", err)
	}

	// Records pruned too (every record that started before kept ended
	// within 6 minutes of its start): auto answers from the rollups.
	if _, err := s.PruneBefore(kept.Add(10 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if earlier, err := RecordsBefore(s, kept.UnixNano()); err != nil || earlier {
		t.Fatalf("records before %s after pruning: %v, %v", kept, earlier, err)
	}
	check(report("--source", "auto"), noteNoEarlierRecords)
	check(report("--source", "rollups"), noteNoEarlierRecords)
}

// TestRollupTableNothingComplete: rollups whose horizon has passed no
// record yet (a running collector that got one burst of records: its
// Roller advances on commits) say so in the table instead of printing
// the horizon, the smallest time there is ("complete before 1677-09-21
// 00:12:43.145"); a real horizon is printed as before.
func TestRollupTableNothingComplete(t *testing.T) {
	for _, tc := range []struct {
		cb        int64
		want, not string
	}{
		{math.MinInt64, "no biflow complete yet", "1677"},
		{time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC).UnixNano(), "complete before 2026-03-14 09:00:00.000", "no biflow"},
	} {
		cb := Timestamp(tc.cb)
		r := &Report{Summary: Summary{Rollup: &RollupInfo{Resolution: "1h0m0s", CompleteBefore: &cb}}}
		var b strings.Builder
		if err := r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, tc.want) || strings.Contains(out, tc.not) {
			t.Errorf("horizon %d: table\n%s\nwant %q, not %q", tc.cb, out, tc.want, tc.not)
		}
	}
}

// TestRollupTableComposed: a composed answer (auto with --from and --to
// a record crosses) equals the records' report, so the table does not
// call it the rollups' whole biflows by their start (it did: "Answered
// from the rollups (1h0m0s cells; biflows by their start ...)" for a
// report of the records active in the range); it names the composition.
func TestRollupTableComposed(t *testing.T) {
	from := Timestamp(time.Date(2026, 3, 14, 9, 1, 0, 0, time.UTC).UnixNano())
	to := Timestamp(time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC).UnixNano())
	for _, tc := range []struct {
		edges     *EdgeInfo
		want, not string
	}{
		{&EdgeInfo{From: from, To: to, Records: 225, Biflows: 117, Taken: 119},
			"Composed from the rollups (1h0m0s cells of 2026-03-14 09:01:00.000 - 2026-03-14 10:00:00.000) and the 225 records", "by their start"},
		{nil, "Answered from the rollups (1h0m0s cells; biflows by their start", "Composed"},
	} {
		r := &Report{Summary: Summary{Rollup: &RollupInfo{Resolution: "1h0m0s", Complete: true, Edges: tc.edges}}}
		var b strings.Builder
		if err := r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, tc.want) || strings.Contains(out, tc.not) {
			t.Errorf("edges %+v: table\n%s\nwant %q, not %q", tc.edges, out, tc.want, tc.not)
		}
	}
}

// TestAutoRangeEqualsRecords: with --from and --to, auto answers what
// the records answer. The rollups count whole biflows by their start,
// the records' report the records active in the range: a range whose
// bound a biflow crosses differs (the web UI's usage view showed 1
// biflow where mira report and the UI's own explorer showed 2), so auto
// reads the records then, and the rollups only for a range no record
// crosses.
func TestAutoRangeEqualsRecords(t *testing.T) {
	s, report := cutStore(t)
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	if _, err := Rebuild(context.Background(), s, RollupConfig{Rules: classify.Default(), RulesID: src.RulesID}); err != nil {
		t.Fatal(err)
	}
	differ, fromRollups := 0, 0
	for m := -30; m < 300; m += 7 {
		from := time.Unix(0, rollupT0).Add(time.Duration(m) * time.Minute).UTC()
		to := from.Add(time.Duration(10+(m+30)%20) * time.Minute)
		args := []string{"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--by", "category"}
		records := report(args...)
		auto := report(append(args, "--source", "auto")...)
		rollups := report(append(args, "--source", "rollups")...)
		if comparableOf(t, rollups) != comparableOf(t, records) {
			differ++
		}
		if auto.Summary.Rollup != nil {
			fromRollups++
		}
		if got, want := comparableOf(t, auto), comparableOf(t, records); got != want {
			t.Errorf("[%s, %s): auto (rollups %v) answers\n%s\nthe records\n%s", from, to, auto.Summary.Rollup != nil, got, want)
		}
	}
	if differ == 0 || fromRollups == 0 {
		t.Fatalf("%d ranges where the rollups differ from the records, %d answered from the rollups: the test proves nothing", differ, fromRollups)
	}
	t.Logf("%d ranges where the rollups differ from the records; auto answered %d from the rollups", differ, fromRollups)
}
