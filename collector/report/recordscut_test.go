package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/store"
)

// TestRecordsRetentionCut: a report from the stored records without
// --from, once retention (PruneBefore, PruneToSize) deleted records,
// says where the records kept start (summary.records_pruned_before,
// records_note, a table line); one with --from, or over a store never
// pruned, says nothing.
func TestRecordsRetentionCut(t *testing.T) {
	s, report := cutStore(t)
	if rep := report("--source", "records"); rep.Summary.RecordsPrunedBefore != nil || rep.Summary.RecordsNote != "" {
		t.Fatalf("a store never pruned: %v %q", rep.Summary.RecordsPrunedBefore, rep.Summary.RecordsNote)
	}
	all := report("--source", "records")
	kept := time.Unix(0, rollupT0).Add(time.Hour).UTC()
	if n, err := s.PruneBefore(kept); err != nil || n == 0 {
		t.Fatalf("prune: %d chunks, %v", n, err)
	}
	rep := report("--source", "records")
	if rep.Summary.Flows >= all.Summary.Flows {
		t.Fatalf("pruning deleted no record (%d, %d): the test proves nothing", rep.Summary.Flows, all.Summary.Flows)
	}
	check := func(rep *Report, want time.Time) {
		t.Helper()
		sm := rep.Summary
		if sm.RecordsPrunedBefore == nil || !sm.RecordsPrunedBefore.Time().Equal(want) ||
			!strings.Contains(sm.RecordsNote, "records kept from "+want.Format("2006-01-02T15:04:05.000Z")) {
			t.Fatalf("records_pruned_before %v, note %q; want %s", sm.RecordsPrunedBefore, sm.RecordsNote, want)
		}
		var js, tab bytes.Buffer
		if err := rep.Write(&js, "json"); err != nil {
			t.Fatal(err)
		}
		var x struct {
			Summary struct {
				PrunedBefore string `json:"records_pruned_before"`
				Note         string `json:"records_note"`
			} `json:"summary"`
		}
		if err := json.Unmarshal(js.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		if got, err := time.Parse(time.RFC3339, x.Summary.PrunedBefore); err != nil || !got.Equal(want.Truncate(time.Millisecond)) || x.Summary.Note != sm.RecordsNote {
			t.Errorf("JSON summary %+v (%v), want records_pruned_before %s and the note", x.Summary, err, want)
		}
		if err := rep.Write(&tab, "table"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tab.String(), "Range cut: records kept from ") {
			t.Errorf("the table does not say the range was cut:\n%s", tab.String())
		}
	}
	check(rep, kept)
	// A range with a start says nothing of the cut.
	if rep := report("--source", "records", "--from", kept.Format(time.RFC3339)); rep.Summary.RecordsPrunedBefore != nil || rep.Summary.RecordsNote != "" {
		t.Errorf("a range with --from: %v %q", rep.Summary.RecordsPrunedBefore, rep.Summary.RecordsNote)
	}
	// PruneToSize moves the cut to the end of the segments it deleted.
	size, err := s.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneToSize(size / 2); err != nil || n == 0 {
		t.Fatalf("prune to size: %d chunks, %v", n, err)
	}
	rep = report("--source", "records")
	pb := rep.Summary.RecordsPrunedBefore
	if pb == nil || !pb.Time().After(kept) {
		t.Fatalf("after PruneToSize the cut is %v, want later than %s", pb, kept)
	}
	if rep.Summary.First != nil && rep.Summary.First.Time().Before(kept) {
		t.Errorf("records from %s remain before the first cut %s", rep.Summary.First, kept)
	}
	check(rep, pb.Time())
}

// defaultReporter returns a function making a report of s by the
// default rules (rollups by their fingerprint) from command-line
// arguments.
func defaultReporter(t *testing.T, s *store.Store) func(args ...string) *Report {
	rules := classify.Default()
	src := RollupSource{RulesID: DefaultRulesFingerprint()}
	return func(args ...string) *Report {
		t.Helper()
		p := rollupParams(t, args...)
		opts := p.Options()
		opts.Rules = rules
		rep, err := p.Report(context.Background(), s, opts, src)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return rep
	}
}

// cutStore writes the store of the retention-cut tests (400 connections
// of rollupStores[0]) and returns it with a function making a report of
// it by the default rules from command-line arguments.
func cutStore(t *testing.T) (*store.Store, func(args ...string) *Report) {
	d := rollupStores[0]
	d.conns = 400
	s, _ := writeRollupStore(t, d, 11)
	return s, defaultReporter(t, s)
}
