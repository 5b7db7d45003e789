package consolidate

// slab holds the values of one kind of pending state (connections,
// observations, their extras) in fixed-size chunks, named by uint32
// index: an index is 4 bytes where a pointer is 8, chunks of values
// without pointers are not scanned by the garbage collector, values never
// move (a *T stays valid while the slab grows, and growing copies
// nothing), and released indices are reused. Index 0 is never handed
// out: it means none.
type slab[T any] struct {
	chunks []*[slabChunk]T
	n      uint32 // indices handed out so far, 0 included
	free   []uint32
}

const (
	slabShift = 10
	slabChunk = 1 << slabShift
)

// at returns the value of index i.
func (s *slab[T]) at(i uint32) *T {
	return &s.chunks[i>>slabShift][i&(slabChunk-1)]
}

// alloc returns an unused index; its value is the zero T, or, for a
// reused index, what release left in it.
func (s *slab[T]) alloc() uint32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	if s.n == 0 {
		s.n = 1
	}
	i := s.n
	if int(i>>slabShift) == len(s.chunks) {
		s.chunks = append(s.chunks, new([slabChunk]T))
	}
	s.n++
	return i
}

// release makes index i reusable; the caller has reset its value.
func (s *slab[T]) release(i uint32) {
	s.free = append(s.free, i)
}

// clone returns an independent copy; cp, when set, deep-copies a value
// in place (the chunks are copied value by value first).
func (s *slab[T]) clone(cp func(*T)) slab[T] {
	n := slab[T]{n: s.n, free: append([]uint32(nil), s.free...), chunks: make([]*[slabChunk]T, len(s.chunks))}
	for i, ch := range s.chunks {
		x := new([slabChunk]T)
		*x = *ch
		if cp != nil {
			for j := range x {
				cp(&x[j])
			}
		}
		n.chunks[i] = x
	}
	return n
}
