package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

// TestPutEncodedSameAsPutBatches: records encoded on arrival and put
// later read back exactly like records put directly, in the same order,
// even though the caller reuses its record (and symptom list) after Add.
func TestPutEncodedSameAsPutBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	origins := []Origin{{Exporter: "192.0.2.1", Domain: 1}, {Exporter: "192.0.2.2", Domain: 7}}
	var batches []Batch
	for _, o := range origins {
		recs := benchRecords(700, t0.UnixNano())
		for i := range recs {
			// Shuffled end times with ties, so that sorting matters.
			recs[i].Last = recs[i].First + int64(rng.IntN(20))*int64(time.Second/4)
			recs[i].Symptoms = []flow.SymptomCount{{ID: uint16(i), Count: uint32(i + 1)}}
		}
		batches = append(batches, Batch{Origin: o, Records: recs})
	}
	a, _ := openTemp(t, &Options{NoSync: true})
	if err := a.PutBatches(batches); err != nil {
		t.Fatal(err)
	}
	b, _ := openTemp(t, &Options{NoSync: true})
	var encs []*Encoded
	for _, bt := range batches {
		e := &Encoded{Origin: bt.Origin}
		var r flow.Record
		for i := range bt.Records {
			r = bt.Records[i]
			r.Symptoms = append(r.Symptoms[:0:0], bt.Records[i].Symptoms...)
			e.Add(&r)
			r.Symptoms[0].Count = 999999 // reused by the caller after Add
		}
		encs = append(encs, e)
	}
	if err := b.PutEncoded(encs); err != nil {
		t.Fatal(err)
	}
	want, got := collect(t, a, Query{}), collect(t, b, Query{})
	if len(got) != 1400 || !reflect.DeepEqual(got, want) {
		t.Fatalf("PutEncoded read back %d records, PutBatches %d; differ: %v", len(got), len(want), !reflect.DeepEqual(got, want))
	}
}

// TestEncodedAppend: merging two Encoded gives the records of both.
func TestEncodedAppend(t *testing.T) {
	o := Origin{Exporter: "x", Domain: 1}
	recs := benchRecords(300, t0.UnixNano())
	x, y := &Encoded{Origin: o}, &Encoded{Origin: o}
	x.AddAll(recs[:100])
	y.AddAll(recs[100:])
	x.Append(y)
	if x.Len() != 300 {
		t.Fatalf("Len %d after Append, want 300", x.Len())
	}
	s, _ := openTemp(t, &Options{NoSync: true})
	if err := s.PutEncoded([]*Encoded{x}); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, Query{})
	if len(got) != 300 {
		t.Fatalf("read back %d records, want 300", len(got))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i].Record, recs[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i].Record, recs[i])
		}
	}
	x.Reset()
	if x.Len() != 0 || x.Size() != 0 {
		t.Fatal("Reset left records")
	}
}

// TestEncodedAddNoAllocs guards the per-record path of a batching writer.
func TestEncodedAddNoAllocs(t *testing.T) {
	recs := benchRecords(64, t0.UnixNano())
	e := &Encoded{}
	e.AddAll(recs)
	n := testing.AllocsPerRun(100, func() {
		e.Reset()
		e.AddAll(recs)
	})
	if n != 0 {
		t.Fatalf("Encoded.Add allocates %.1f times per batch", n)
	}
}

// TestReleaseLetsReadersIn: a store opened with Release holds the file
// only during operations, so another opener (mira report) gets in between
// commits, and the writer's commit fails with ErrLocked while the reader
// holds it. Without Release the reader cannot open the file at all.
func TestReleaseLetsReadersIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.db")
	w, err := Open(path, &Options{Release: true, Timeout: 100 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o := Origin{Exporter: "probe", Domain: 1}
	if err := w.Put(o, benchRecords(100, t0.UnixNano())); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, &Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("reader cannot open the store of a releasing writer: %v", err)
	}
	if n := len(collect(t, r, Query{})); n != 100 {
		t.Fatalf("reader sees %d records, want 100", n)
	}
	err = w.Put(o, benchRecords(10, t0.UnixNano()))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Put while a reader holds the file: %v, want ErrLocked", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(o, benchRecords(10, t0.UnixNano())); err != nil {
		t.Fatalf("Put after the reader closed: %v", err)
	}
	if n := len(collect(t, w, Query{})); n != 110 {
		t.Fatalf("writer sees %d records, want 110", n)
	}

	// The contrast: a writer that keeps the file open locks readers out.
	path2 := filepath.Join(t.TempDir(), "held.db")
	h, err := Open(path2, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := Open(path2, &Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("reader opened a held store: %v", err)
	}
}

// BenchmarkPutEncoded measures the commit of pre-encoded batches as
// mira-collector makes them (10000 records, unsynced so that the disk
// does not dominate), with and without reopening the file per commit.
func BenchmarkPutEncoded(b *testing.B) {
	for _, release := range []bool{false, true} {
		b.Run(fmt.Sprintf("release=%v", release), func(b *testing.B) {
			const batch = 10000
			s, _ := openTemp(b, &Options{NoSync: true, Release: release})
			recs := benchRecords(batch, t0.UnixNano())
			e := &Encoded{Origin: Origin{Exporter: "bench", Domain: 1}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Reset()
				for j := range recs {
					recs[j].Last += int64(batch) * 1000
					e.Add(&recs[j])
				}
				if err := s.PutEncoded([]*Encoded{e}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
		})
	}
}

// TestEncodedSortStable: the radix sort orders by end time and keeps
// arrival order among ties, like a stable comparison sort, over narrow
// and extreme time ranges.
func TestEncodedSortStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		last func() int64
	}{
		{"ties", func() int64 { return t0.UnixNano() + int64(rng.IntN(8)) }},
		{"seconds", func() int64 { return t0.UnixNano() + rng.Int64N(100e9) }},
		{"extremes", func() int64 {
			return []int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[rng.IntN(5)] + int64(rng.IntN(3)) - 1
		}},
		{"sorted", func() int64 { return t0.UnixNano() }},
		// A second's batch of MIRA's records: end times in ms over ~40 s.
		{"batch", func() int64 { return t0.UnixNano() + rng.Int64N(40e3)*1e6 }},
		// The same, some end times not whole milliseconds (sorted
		// in ns, not in ms).
		{"batch ns", func() int64 { return t0.UnixNano() + rng.Int64N(40e3)*1e6 + int64(rng.IntN(2)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Encoded{}
			n := 5000
			if tc.name == "batch" || tc.name == "batch ns" {
				n = 70000
			}
			for i := 0; i < n; i++ {
				e.idx = append(e.idx, encRec{last: tc.last(), off: uint32(i)})
			}
			want := slices.Clone(e.idx)
			slices.SortStableFunc(want, func(a, b encRec) int { return cmp.Compare(a.last, b.last) })
			e.sort()
			if !slices.Equal(e.idx, want) {
				t.Fatal("radix sort differs from a stable sort")
			}
		})
	}
}

// BenchmarkEncodedAdd measures the per-record encoding a batching writer
// does on arrival.
func BenchmarkEncodedAdd(b *testing.B) {
	recs := benchRecords(1024, t0.UnixNano())
	e := &Encoded{}
	e.AddAll(recs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(recs) == 0 {
			e.Reset()
		}
		e.Add(&recs[i%len(recs)])
	}
}

// BenchmarkEncodedSort sorts a second's batch of MIRA's records at 50,000
// records a second: end times in ms spread over 40 s, as the bench
// export's batches (2^36 ns, a quarter of the records behind the one
// before).
func BenchmarkEncodedSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 50000
	in := make([]encRec, n)
	for i := range in {
		in[i] = encRec{last: t0.UnixNano() + rng.Int64N(40e3)*1e6, off: uint32(i)}
	}
	e := &Encoded{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.idx = append(e.idx[:0], in...)
		e.sort()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkEncodedGather copies a sorted second's batch of records into
// frames (appendRecords, as a commit does): 50,000 records of MIRA's
// sizes whose end times (ms over 40 s) are out of arrival order, as the
// bench export's batches. The batch is evicted from the caches before
// each copy (a collector's batch was written over the second before).
func BenchmarkEncodedGather(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 50000
	recs := benchRecords(n, t0.UnixNano())
	e := &Encoded{}
	for i := range recs {
		recs[i].Last = t0.UnixNano() + rng.Int64N(40e3)*1e6
		e.Add(&recs[i])
	}
	e.sort()
	buf := make([]byte, 0, e.Size())
	evict := make([]byte, 64<<20)
	b.SetBytes(int64(e.Size()))
	var took time.Duration
	var warmed byte
	for i := 0; i < b.N; i++ {
		for j := range evict {
			evict[j]++
		}
		start := time.Now()
		warmed += e.warm()
		buf = e.appendRecords(buf[:0], 0, n)
		took += time.Since(start)
	}
	b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*n), "ns/record")
	gatherSink = warmed
}

var gatherSink byte

// TestAppendRecords: a commit's copy, runs of records adjacent in the
// batch copied at once, gives the records' bytes in index order.
func TestAppendRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	recs := benchRecords(3000, t0.UnixNano())
	e := &Encoded{}
	for i := range recs {
		if rng.IntN(3) == 0 { // two in three continue the run before
			recs[i].Last = t0.UnixNano() + rng.Int64N(40e3)*1e6
		} else if i > 0 {
			recs[i].Last = recs[i-1].Last
		}
		e.Add(&recs[i])
	}
	e.sort()
	var want []byte
	for _, x := range e.idx[100:2900] {
		want = append(want, e.buf[x.off:x.off+x.n]...)
	}
	if got := e.appendRecords([]byte("x"), 100, 2900); !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatal("appendRecords differs from a copy record by record")
	}
}
