package store

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/mira-project/mira/flow"
)

// TestEncodedParts: an Encoded sorted and committed as ranges stores
// each record once, and each range holds the oldest records not in an
// earlier one.
func TestEncodedParts(t *testing.T) {
	o := Origin{Exporter: "x", Domain: 1}
	recs := benchRecords(1000, t0.UnixNano())
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	e := &Encoded{Origin: o}
	e.AddAll(recs)
	e.Sort()
	s, _ := openTemp(t, &Options{NoSync: true})
	var prevLast int64
	for i, n := 0, 1; i < e.Len(); i, n = i+n, n*2 {
		j := min(i+n, e.Len())
		part := &Encoded{Origin: o}
		part.AppendRange(e, i, j)
		if part.Len() != j-i {
			t.Fatalf("range %d-%d: %d records", i, j, part.Len())
		}
		if err := part.Each(func(r *flow.Record) {}); err != nil {
			t.Fatal(err)
		}
		if i > 0 && part.idx[0].last < prevLast {
			t.Fatalf("range %d-%d starts at %d, before the previous range's end %d", i, j, part.idx[0].last, prevLast)
		}
		prevLast = part.idx[part.Len()-1].last
		if err := s.PutEncoded([]*Encoded{part}); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, s, Query{})
	slices.SortStableFunc(recs, func(a, b flow.Record) int { return int(max(-1, min(1, a.Last-b.Last))) })
	if len(got) != len(recs) {
		t.Fatalf("read back %d records, want %d", len(got), len(recs))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i].Record, recs[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i].Record, recs[i])
		}
	}
}
