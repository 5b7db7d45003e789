package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/flow"
)

var t0 = time.Date(2019, 3, 14, 19, 0, 0, 0, time.UTC)

// rec makes a record active from start to end seconds after t0.
func rec(sport uint16, start, end float64) flow.Record {
	return flow.Record{
		Key: flow.Key{
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"),
			Sport: sport, Dport: 80, Proto: 6,
		},
		Packets: 2, Octets: 120,
		First: t0.Add(time.Duration(start * float64(time.Second))).UnixNano(),
		Last:  t0.Add(time.Duration(end * float64(time.Second))).UnixNano(),
	}
}

func openTemp(t testing.TB, opts *Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flows.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func collect(t *testing.T, s *Store, q Query) []StoredFlow {
	t.Helper()
	var out []StoredFlow
	if err := s.Flows(q, func(f StoredFlow) error { out = append(out, f); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func sports(fs []StoredFlow) []uint16 {
	var out []uint16
	for _, f := range fs {
		out = append(out, f.Record.Sport)
	}
	return out
}

func TestPutFlowsRoundTrip(t *testing.T) {
	s, path := openTemp(t, nil)
	a := Origin{Exporter: "probe-a", Domain: 1}
	recs := sampleRecords()
	if err := s.Put(a, recs); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		got := collect(t, s, Query{})
		if len(got) != len(recs) {
			t.Fatalf("got %d records, want %d", len(got), len(recs))
		}
		// Ordered by end time: record 2 ends before 1970, record 0 at 0.
		order := []int{2, 0, 1}
		for i, f := range got {
			if f.Origin != a {
				t.Errorf("origin %v, want %v", f.Origin, a)
			}
			if !reflect.DeepEqual(f.Record, recs[order[i]]) {
				t.Errorf("record %d:\n got %+v\nwant %+v", i, f.Record, recs[order[i]])
			}
		}
	}
	check(s)
	// Durable across close and reopen, also read-only.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
}

func TestFlowsTimeRange(t *testing.T) {
	s, _ := openTemp(t, nil)
	o := Origin{Exporter: "p", Domain: 0}
	// sport names the flow; times in seconds after t0.
	recs := []flow.Record{
		rec(1, 0, 10),
		rec(2, 20, 30),
		rec(3, 5, 1000), // long flow: starts early, ends late
		rec(4, 40, 50),
		rec(5, 100, 100),
	}
	if err := s.Put(o, recs); err != nil {
		t.Fatal(err)
	}
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	tests := []struct {
		name string
		q    Query
		want []uint16
	}{
		{"all", Query{}, []uint16{1, 2, 4, 5, 3}},
		{"end in [10,50)", Query{From: at(10), To: at(50), Field: ByEnd}, []uint16{1, 2}},
		{"start in [5,41)", Query{From: at(5), To: at(41), Field: ByStart}, []uint16{2, 4, 3}},
		{"start in [0,1)", Query{From: at(0), To: at(1), Field: ByStart}, []uint16{1}},
		{"overlap [11,21)", Query{From: at(11), To: at(21)}, []uint16{2, 3}},
		{"overlap [60,99)", Query{From: at(60), To: at(99)}, []uint16{3}},
		{"from only", Query{From: at(45), Field: ByEnd}, []uint16{4, 5, 3}},
		{"to only", Query{To: at(20), Field: ByStart}, []uint16{1, 3}},
		{"empty", Query{From: at(2000)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sports(collect(t, s, tt.q)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFlowsOriginFilter(t *testing.T) {
	s, _ := openTemp(t, nil)
	puts := []struct {
		o     Origin
		sport uint16
	}{
		{Origin{"a", 1}, 1}, {Origin{"a", 2}, 2}, {Origin{"b", 1}, 3}, {Origin{"a", 1}, 4},
	}
	for i, p := range puts {
		if err := s.Put(p.o, []flow.Record{rec(p.sport, float64(i), float64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		q    Query
		want []uint16
	}{
		{Query{Exporter: "a"}, []uint16{1, 2, 4}},
		{Query{Exporter: "a", Domain: 1, HasDomain: true}, []uint16{1, 4}},
		{Query{Domain: 1, HasDomain: true}, []uint16{1, 3, 4}},
		{Query{Exporter: "c"}, nil},
	}
	for _, tt := range tests {
		if got := sports(collect(t, s, tt.q)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestFlowsStop(t *testing.T) {
	s, _ := openTemp(t, nil)
	if err := s.Put(Origin{}, []flow.Record{rec(1, 0, 1), rec(2, 0, 2), rec(3, 0, 3)}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := s.Flows(Query{}, func(StoredFlow) error {
		n++
		if n == 2 {
			return ErrStop
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Errorf("err %v after %d calls, want nil after 2", err, n)
	}
	boom := errors.New("boom")
	if err := s.Flows(Query{}, func(StoredFlow) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

// TestCorruptValueCounted: damaged chunks in the flows bucket (stores of
// schema 3 and older; see TestSegmentDamageCounted for segments).
func TestCorruptValueCounted(t *testing.T) {
	s, _ := openTemp(t, nil)
	o := Origin{Exporter: "p"}
	// Three records in one chunk, then a second chunk (over a second later).
	putLegacy(t, s, o, []flow.Record{rec(1, 0, 1), rec(2, 0, 1.1), rec(3, 0, 1.2), rec(4, 0, 5)})
	damage := func(f func(v []byte) []byte) {
		t.Helper()
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketFlows)
			k, v := b.Cursor().First()
			return b.Put(append([]byte(nil), k...), f(append([]byte(nil), v...)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The middle record's version byte: framing holds, one record lost.
	damage(func(v []byte) []byte {
		n := int(v[2]) // chunk version, count 3, first length
		v[2+1+n+1] = 99
		return v
	})
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{1, 3, 4}) {
		t.Errorf("bad record: got %v, want [1 3 4]", got)
	}
	// Cut the chunk short: the records before the cut survive.
	damage(func(v []byte) []byte { return v[:len(v)-4] })
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{1, 4}) {
		t.Errorf("truncated chunk: got %v, want [1 4]", got)
	}
	// A foreign header loses the chunk.
	damage(func(v []byte) []byte { v[0] = 7; return v })
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{4}) {
		t.Errorf("bad header: got %v, want [4]", got)
	}
	want := map[string]uint64{ReasonVersion: 2, ReasonTruncated: 1, ReasonChunk: 1}
	if got := s.DecodeErrors(); !reflect.DeepEqual(got, want) {
		t.Errorf("decode errors %v, want %v", got, want)
	}
}

// TestFlowsMatchesBruteForce stores records in many chunks (split by
// count and by end-time span) and checks every kind of range query against
// a plain filter over the records.
func TestFlowsMatchesBruteForce(t *testing.T) {
	s, _ := openTemp(t, &Options{NoSync: true})
	var all []flow.Record
	for i := 0; i < 600; i++ {
		// Dense runs, gaps, long flows and records out of order.
		start := float64((i*37)%500) / 3
		dur := float64(i%7) * 0.4
		if i%97 == 0 {
			dur = 90
		}
		r := rec(uint16(i), start, start+dur)
		all = append(all, r)
	}
	for i := 0; i < len(all); i += 150 {
		if err := s.Put(Origin{Exporter: "p"}, all[i:i+150]); err != nil {
			t.Fatal(err)
		}
	}
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	for _, field := range []TimeField{Overlap, ByEnd, ByStart} {
		for from := -10.0; from < 260; from += 13.7 {
			for _, width := range []float64{0.05, 1, 9.3, 400} {
				q := Query{From: at(from), To: at(from + width), Field: field}
				want := map[uint16]bool{}
				for _, r := range all {
					f, l, lo, hi := r.First, r.Last, q.From.UnixNano(), q.To.UnixNano()
					var in bool
					switch field {
					case ByEnd:
						in = l >= lo && l < hi
					case ByStart:
						in = f >= lo && f < hi
					default:
						in = l >= lo && f < hi
					}
					if in {
						want[r.Sport] = true
					}
				}
				got := map[uint16]bool{}
				for _, f := range collect(t, s, q) {
					if got[f.Record.Sport] {
						t.Fatalf("%+v: record %d twice", q, f.Record.Sport)
					}
					got[f.Record.Sport] = true
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("field %d [%v, %v): got %d records, want %d", field, from, from+width, len(got), len(want))
				}
			}
		}
	}
}

func TestLargeRecordInChunk(t *testing.T) {
	s, _ := openTemp(t, nil)
	big := rec(1, 0, 1)
	for i := 0; i < 5000; i++ { // > 16 KiB encoded: a three-byte length
		big.Symptoms = append(big.Symptoms, flow.SymptomCount{ID: uint16(i), Count: uint32(i * 1000)})
	}
	mid := rec(2, 0, 1)
	mid.Symptoms = big.Symptoms[:40] // > 127 bytes: a two-byte length
	recs := []flow.Record{rec(0, 0, 1), big, mid, rec(3, 0, 1)}
	if err := s.Put(Origin{}, recs); err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, Query{})
	if len(got) != len(recs) {
		t.Fatalf("got %d records", len(got))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i].Record, recs[i]) {
			t.Errorf("record %d differs", i)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()

	t.Run("missing read-only", func(t *testing.T) {
		_, err := Open(filepath.Join(dir, "nope.db"), &Options{ReadOnly: true})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want not exist", err)
		}
	})

	t.Run("newer schema", func(t *testing.T) {
		path := filepath.Join(dir, "newer.db")
		s, err := Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
		})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			_, err = Open(path, &Options{ReadOnly: ro})
			if !errors.Is(err, ErrNewerSchema) {
				t.Errorf("read-only %v: err = %v, want ErrNewerSchema", ro, err)
			}
		}
	})

	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(dir, "foreign.db")
		db, err := bolt.Open(path, 0o644, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
		db.Close()
		if _, err := Open(path, nil); !errors.Is(err, ErrNotStore) {
			t.Errorf("err = %v, want ErrNotStore", err)
		}
	})

	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(dir, "text.db")
		if err := os.WriteFile(path, []byte("hello, this is not bbolt\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, &Options{ReadOnly: true})
		if err == nil {
			t.Fatal("opened a text file")
		}
	})

	t.Run("locked", func(t *testing.T) {
		path := filepath.Join(dir, "locked.db")
		s, err := Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = Open(path, &Options{ReadOnly: true, Timeout: 50 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			t.Errorf("err = %v, want ErrLocked", err)
		}
	})
}

func TestStats(t *testing.T) {
	s, _ := openTemp(t, nil)
	st, err := s.Stats()
	if err != nil || st.Messages != 0 || st.Malformed != nil {
		t.Fatalf("empty store stats %+v, %v", st, err)
	}
	want := Stats{Messages: 10, Records: 100, Lost: 3,
		Malformed: map[string]uint64{"short set": 2}, Updated: t0}
	if err := s.PutStats(want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Stats(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	delta := Stats{Messages: 1, Records: 2, Lost: 1,
		Malformed:    map[string]uint64{"short set": 1, "unknown template": 4},
		DecodeErrors: map[string]uint64{"ipv4 header": 5}, Updated: t0.Add(time.Hour)}
	if err := s.AddStats(delta); err != nil {
		t.Fatal(err)
	}
	want = Stats{Messages: 11, Records: 102, Lost: 4,
		Malformed:    map[string]uint64{"short set": 3, "unknown template": 4},
		DecodeErrors: map[string]uint64{"ipv4 header": 5}, Updated: t0.Add(time.Hour)}
	if got, err := s.Stats(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}

// benchRecords makes n records of a realistic size: IPv4, two symptoms.
func benchRecords(n int, base int64) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		r := sampleRecords()[1]
		r.Sport = uint16(i)
		r.First = base + int64(i)*1000
		r.Last = r.First + 5e9
		recs[i] = r
	}
	return recs
}

// BenchmarkPut measures the synced write path in batches of the sizes a
// collector commits (one fsync per batch).
func BenchmarkPut(b *testing.B) {
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := openTemp(b, nil)
			recs := benchRecords(batch, t0.UnixNano())
			o := Origin{Exporter: "bench", Domain: 1}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range recs {
					recs[j].Last += int64(batch) * 1000
				}
				if err := s.Put(o, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
		})
	}
}

// BenchmarkFlows measures a full scan (decode included) of 100k records.
func BenchmarkFlows(b *testing.B) {
	s, _ := openTemp(b, &Options{NoSync: true})
	const n = 100_000
	o := Origin{Exporter: "bench", Domain: 1}
	for i := 0; i < n; i += 10_000 {
		if err := s.Put(o, benchRecords(10_000, t0.UnixNano()+int64(i)*1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := 0
		if err := s.Flows(Query{}, func(StoredFlow) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("scanned %d, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
}

func TestConcurrentPutAndScan(t *testing.T) {
	s, _ := openTemp(t, &Options{NoSync: true})
	const writers, batches, per = 4, 10, 50
	done := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func(w int) {
			o := Origin{Exporter: fmt.Sprintf("probe-%d", w)}
			for b := 0; b < batches; b++ {
				if err := s.Put(o, benchRecords(per, t0.UnixNano()+int64(b)*1e9)); err != nil {
					done <- err
					return
				}
				if err := s.Flows(Query{Exporter: o.Exporter}, func(StoredFlow) error { return nil }); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < writers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	counts := map[string]int{}
	if err := s.Flows(Query{}, func(f StoredFlow) error { counts[f.Origin.Exporter]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		if n := counts[fmt.Sprintf("probe-%d", w)]; n != batches*per {
			t.Errorf("probe-%d: %d records, want %d", w, n, batches*per)
		}
	}
}

func TestPutBatches(t *testing.T) {
	s, path := openTemp(t, nil)
	a, b := Origin{"a", 1}, Origin{"b", 1}
	err := s.PutBatches([]Batch{
		{Origin: a, Records: []flow.Record{rec(1, 0, 3), rec(2, 0, 1)}},
		{Origin: b, Records: []flow.Record{rec(3, 0, 2)}},
		{Origin: a, Records: []flow.Record{rec(4, 0, 4)}}, // same new origin twice
		{Origin: Origin{"empty", 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{2, 3, 1, 4}) {
		t.Errorf("all: got %v, want end-time order [2 3 1 4]", got)
	}
	if got := sports(collect(t, s, Query{Exporter: "a"})); !reflect.DeepEqual(got, []uint16{2, 1, 4}) {
		t.Errorf("exporter a: got %v", got)
	}
	s.Close()
	s2, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(s2.origins) != 2 {
		t.Errorf("origins after reopen: %v, want a and b only", s2.origins)
	}
}
