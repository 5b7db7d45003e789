package store

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/appliance/flow"
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

func TestCorruptValueCounted(t *testing.T) {
	s, _ := openTemp(t, nil)
	o := Origin{Exporter: "p"}
	if err := s.Put(o, []flow.Record{rec(1, 0, 1), rec(2, 0, 2)}); err != nil {
		t.Fatal(err)
	}
	// Truncate the first stored value behind the store's back.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFlows)
		k, v := b.Cursor().First()
		return b.Put(append([]byte(nil), k...), append([]byte(nil), v[:len(v)-4]...))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{2}) {
		t.Errorf("got %v, want [2]", got)
	}
	if got := s.DecodeErrors(); got[ReasonTruncated] != 1 {
		t.Errorf("decode errors %v, want truncated: 1", got)
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

// BenchmarkPut measures the synced write path with 1000-record batches, as
// the collector commits them.
func BenchmarkPut(b *testing.B) {
	s, _ := openTemp(b, nil)
	const batch = 1000
	recs := benchRecords(batch, t0.UnixNano())
	o := Origin{Exporter: "bench", Domain: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range recs {
			recs[j].Last += batch * 1000
		}
		if err := s.Put(o, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

func TestNames(t *testing.T) {
	s, _ := openTemp(t, nil)
	if n, err := s.Names(); err != nil || n.Symptoms != nil {
		t.Fatalf("empty store names %+v, %v", n, err)
	}
	if err := s.PutNames(Names{Symptoms: map[uint16]string{1: "MAIL", 2: "OLD"}, Aggregates: map[uint32]string{7: "campus-out"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNames(Names{Symptoms: map[uint16]string{2: "HTTP"}, Categories: map[uint16]string{3: "Web"}}); err != nil {
		t.Fatal(err)
	}
	want := Names{
		Symptoms:   map[uint16]string{1: "MAIL", 2: "HTTP"},
		Categories: map[uint16]string{3: "Web"},
		Aggregates: map[uint32]string{7: "campus-out"},
	}
	if got, err := s.Names(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}
