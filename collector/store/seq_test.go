package store

import (
	"path/filepath"
	"testing"
)

func TestSeqSet(t *testing.T) {
	var s SeqSet
	s.Add(10, 5) // 10..14
	s.Add(20, 5) // 20..24
	s.Add(15, 5) // joins both: 10..24
	if r := s.Ranges(); len(r) != 1 || r[0] != [2]uint32{10, 24} {
		t.Fatalf("ranges %v, want [[10 24]]", r)
	}
	for _, c := range []struct {
		first, n uint32
		want     bool
	}{{0, 10, false}, {0, 11, true}, {24, 1, true}, {25, 100, false}, {12, 1, true}} {
		if got := s.Overlaps(c.first, c.n); got != c.want {
			t.Errorf("Overlaps(%d, %d) = %v, want %v", c.first, c.n, got, c.want)
		}
	}
	if !s.Contains(10) || !s.Contains(24) || s.Contains(9) || s.Contains(25) {
		t.Errorf("Contains wrong at the edges: %v", s.Ranges())
	}
	// Wrap-around: 2^32-2 .. 1.
	var w SeqSet
	w.Add(^uint32(0)-1, 4)
	if !w.Contains(^uint32(0)) || !w.Contains(0) || !w.Contains(1) || w.Contains(2) || !w.Overlaps(^uint32(0), 1) {
		t.Errorf("wrapped set %v", w.Ranges())
	}
}

// TestSeqSetsStoredWithRecords checks PutEncodedSeq stores the sets and a
// reopened store returns them.
func TestSeqSetsStoredWithRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := SeqOrigin{Origin: Origin{Exporter: "192.0.2.1", Domain: 7}, Instance: 42}
	set := &SeqSet{}
	set.Add(100, 50)
	if err := st.PutEncodedSeq(nil, map[SeqOrigin]*SeqSet{o: set}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.SeqSets()
	if err != nil {
		t.Fatal(err)
	}
	got := m[o]
	if got == nil || !got.Contains(100) || !got.Contains(149) || got.Contains(150) {
		t.Fatalf("stored sets %v", m)
	}
}
