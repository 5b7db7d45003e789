package slab

import (
	"math/rand/v2"
	"testing"
)

// TestSlabLowestFirst allocates and releases at random and checks that
// Alloc hands out the lowest free index, never one in use, and that
// the chunks beyond the one holding the highest index in use but one
// are given back.
func TestSlabLowestFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s Slab[uint64]
	used := make([]bool, 1<<14) // by index
	var keys []uint32           // in use, any order
	for step := 0; step < 60000; step++ {
		// Bursts up (about 3000 indices, three chunks), then drains.
		grow := (step/5000)%2 == 0
		if len(keys) == 0 || (grow && rng.IntN(10) < 8) || (!grow && rng.IntN(10) < 2) {
			i := s.Alloc()
			low := uint32(1)
			for used[low] {
				low++
			}
			if i != low {
				t.Fatalf("step %d: alloc gave %d, the lowest free is %d", step, i, low)
			}
			if *s.At(i) != 0 && *s.At(i) != uint64(i) {
				t.Fatalf("step %d: index %d holds %d", step, i, *s.At(i))
			}
			*s.At(i) = uint64(i)
			used[i] = true
			keys = append(keys, i)
		} else {
			j := rng.IntN(len(keys))
			k := keys[j]
			keys[j] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			used[k] = false
			s.Release(k)
		}
		if s.InUse() != len(keys) {
			t.Fatalf("step %d: %d in use, want %d", step, s.InUse(), len(keys))
		}
		top := len(used) - 1
		for top > 0 && !used[top] {
			top--
		}
		if want := top>>Shift + 2; len(s.chunks) > want {
			t.Fatalf("step %d: %d chunks for a highest index %d (want at most %d)", step, len(s.chunks), top, want)
		}
	}
}
