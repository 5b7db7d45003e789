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

// TestEncodedTags: a record's tag names it through sorts, Append,
// AppendRange, Trade and SortByTag: each record's tag is the one given
// with it (its Packets field here), untagged records have none.
func TestEncodedTags(t *testing.T) {
	o := Origin{Exporter: "x", Domain: 1}
	recs := benchRecords(600, t0.UnixNano())
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	for i := range recs {
		recs[i].Packets = uint64(i) // the number each record is tagged with
	}
	a, b := &Encoded{Origin: o}, &Encoded{Origin: o}
	a.AddAll(recs[:100]) // untagged
	a.AddAll(recs[100:300])
	a.TagFrom(100, 7, func(i int) uint32 { return uint32(100 + i) })
	a.Sort()
	b.AddAll(recs[300:600])
	b.TagFrom(0, 9, func(i int) uint32 { return uint32(300 + i) })
	big := &Encoded{Origin: o}
	big.AddAll(benchRecords(2000, t0.UnixNano()))
	big.Reset()
	a.Trade(big) // a's records into larger buffers
	a.Append(b)
	c := &Encoded{Origin: o}
	c.AppendRange(a, 50, a.Len())
	check := func(name string, e *Encoded, wantTagged int) {
		t.Helper()
		var got []uint64
		e.EachTag(0, e.Len(), func(inst uint64, seq uint32) { got = append(got, uint64(seq)) })
		tagged := 0
		e.Each(func(r *flow.Record) {
			if r.Packets >= 100 {
				tagged++
			}
		})
		if tagged != wantTagged || len(got) != wantTagged {
			t.Fatalf("%s: %d tags, %d tagged records, want %d", name, len(got), tagged, wantTagged)
		}
		// Record by record: the tag found is the record's.
		for k := range e.Len() {
			one := &Encoded{Origin: o}
			one.AppendRange(e, k, k+1)
			var r flow.Record
			one.Each(func(x *flow.Record) { r = *x })
			var seq []uint32
			var inst []uint64
			e.EachTag(k, k+1, func(in uint64, s uint32) { inst, seq = append(inst, in), append(seq, s) })
			switch {
			case r.Packets < 100 && len(seq) != 0:
				t.Fatalf("%s: untagged record %d has tag %v", name, r.Packets, seq)
			case r.Packets >= 100 && (len(seq) != 1 || uint64(seq[0]) != r.Packets ||
				inst[0] != map[bool]uint64{true: 7, false: 9}[r.Packets < 300]):
				t.Fatalf("%s: record %d tagged %v %v", name, r.Packets, inst, seq)
			}
		}
	}
	check("a", a, 500)
	check("c", c, c.Len()-countBelow(c, 100))
	tags := c.SortByTag()
	check("c sorted by tag", c, c.Len()-countBelow(c, 100))
	k := 0
	c.Each(func(r *flow.Record) {
		want := Tag{}
		if r.Packets >= 100 {
			want = Tag{Inst: map[bool]uint64{true: 7, false: 9}[r.Packets < 300], Seq: uint32(r.Packets)}
		}
		if tags[k] != want {
			t.Fatalf("SortByTag's tag %d: %+v, want %+v", k, tags[k], want)
		}
		k++
	})
	var prev uint64
	first := true
	c.Each(func(r *flow.Record) {
		if r.Packets >= 100 && !first && r.Packets < prev {
			t.Fatalf("SortByTag: %d after %d", r.Packets, prev)
		}
		if r.Packets >= 100 {
			prev, first = r.Packets, false
		}
	})
}

func countBelow(e *Encoded, n uint64) int {
	c := 0
	e.Each(func(r *flow.Record) {
		if r.Packets < n {
			c++
		}
	})
	return c
}
