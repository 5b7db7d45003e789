package store

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
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

// TestSeqSetRemove checks Add, Remove and RemoveSorted against a set of numbers, near
// 0 and near 2^32 (runs that wrap).
func TestSeqSetRemove(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, base := range []uint32{0, ^uint32(0) - 60} {
		var s SeqSet
		model := map[uint32]bool{}
		for i := range 2000 {
			first, n := base+uint32(r.IntN(120)), uint32(r.IntN(12))
			add := r.IntN(3) != 0
			switch {
			case add:
				s.Add(first, n)
			case i%2 == 0:
				s.Remove(first, n)
			default:
				var nums []uint32
				for j := range n {
					nums = append(nums, first+j)
				}
				slices.Sort(nums) // a run that wraps: numbers near 0 first
				s.RemoveSorted(nums)
			}
			for j := range n {
				if add {
					model[first+j] = true
				} else {
					delete(model, first+j)
				}
			}
			count := 0
			for _, x := range s.Ranges() {
				count += int(x[1]-x[0]) + 1
			}
			if count != len(model) {
				t.Fatalf("base %d, op %d: the set holds %d numbers %v, want %d", base, i, count, s.Ranges(), len(model))
			}
			for x := range model {
				if !s.Contains(x) {
					t.Fatalf("base %d, op %d: %d missing from %v", base, i, x, s.Ranges())
				}
			}
			rs := s.Ranges()
			for k := 1; k < len(rs); k++ {
				if uint64(rs[k-1][1])+1 >= uint64(rs[k][0]) {
					t.Fatalf("base %d, op %d: ranges touch or overlap: %v", base, i, rs)
				}
			}
		}
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
