package store

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

func hourRecords(n int, start time.Time) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		ts := start.Add(time.Duration(i) * time.Hour / time.Duration(n)).UnixNano()
		recs[i] = flow.Record{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Sport: uint16(i), Dport: 80, Proto: 6},
			Packets: 1, Octets: 100, First: ts, Last: ts}
	}
	return recs
}

func TestPruneBefore(t *testing.T) {
	s, _ := openTemp(t, &Options{NoSync: true})
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	if err := s.Put(Origin{Exporter: "a"}, hourRecords(3600, start)); err != nil {
		t.Fatal(err)
	}
	cutoff := start.Add(30 * time.Minute)
	n, err := s.PruneBefore(cutoff)
	if err != nil || n == 0 {
		t.Fatalf("pruned %d chunks, err %v", n, err)
	}
	got := collect(t, s, Query{})
	// Everything that ended at least a chunk span before the cutoff is
	// gone; everything at or after it is kept.
	kept := 0
	for _, f := range got {
		if f.Record.Last < cutoff.Add(-2*time.Second).UnixNano() {
			t.Fatalf("record ending %v survived", time.Unix(0, f.Record.Last))
		}
		if f.Record.Last >= cutoff.UnixNano() {
			kept++
		}
	}
	if kept != 1800 {
		t.Fatalf("kept %d records at or after the cutoff, want 1800", kept)
	}
}

// TestPruneToSizeAndCompact: records in the flows bucket (a store of
// schema 3) are pruned oldest first and CompactFile gives their pages
// back (TestRetentionAcrossSegments prunes segments).
func TestPruneToSizeAndCompact(t *testing.T) {
	s, path := openTemp(t, &Options{NoSync: true})
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for h := 0; h < 4; h++ {
		putLegacy(t, s, Origin{Exporter: "a"}, hourRecords(5000, start.Add(time.Duration(h)*time.Hour)))
	}
	before, err := s.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneToSize(before / 2); err != nil {
		t.Fatal(err)
	}
	after, _ := s.DataSize()
	if after > before/2 {
		t.Fatalf("data %d bytes after pruning to %d", after, before/2)
	}
	got := collect(t, s, Query{})
	if len(got) == 0 || len(got) >= 20000 {
		t.Fatalf("%d records left", len(got))
	}
	// The oldest went first.
	for _, f := range got {
		if f.Record.Last < start.Add(time.Hour).UnixNano() {
			t.Fatalf("old record kept while newer ones were pruned")
		}
	}
	s.Close()
	st0, _ := os.Stat(path)
	if err := CompactFile(path); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(path)
	if st1.Size() >= st0.Size() {
		t.Fatalf("compaction did not shrink the file: %d -> %d", st0.Size(), st1.Size())
	}
	s2, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := len(collect(t, s2, Query{})); n != len(got) {
		t.Fatalf("%d records after compaction, want %d", n, len(got))
	}
}
