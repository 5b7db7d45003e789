package report

import "math/bits"

// slab holds the Roller's held records in fixed-size chunks, named by
// uint32 index; released indices are reused. Index 0 is never handed
// out. It is collector/consolidate's slab (commit 778c98c): alloc hands
// out the lowest free index, so after a burst the high chunks empty out
// as their records are taken (new records go low), and release gives
// trailing empty chunks (and the encodings their slots kept) back to
// the garbage collector, keeping one spare so that a count oscillating
// at a chunk boundary does not allocate each time.
type slab[T any] struct {
	chunks []*[slabChunk]T
	meta   []chunkMeta // per chunk
	// avail: bit c is set when chunk c has a free index; lo: no word
	// of avail before it has a bit set.
	avail []uint64
	lo    int
}

// chunkMeta says which indices of a chunk are free.
type chunkMeta struct {
	free [slabChunk / 64]uint64 // bit j: index j of the chunk is free
	used uint32                 // indices handed out (index 0 counts)
}

const (
	slabShift = 10
	slabChunk = 1 << slabShift
)

// at returns the value of index i.
func (s *slab[T]) at(i uint32) *T {
	return &s.chunks[i>>slabShift][i&(slabChunk-1)]
}

// alloc returns the lowest unused index; its value is the zero T, or,
// for a reused index, what release left in it.
func (s *slab[T]) alloc() uint32 {
	w := s.lo
	for w < len(s.avail) && s.avail[w] == 0 {
		w++
	}
	s.lo = w
	if w == len(s.avail) {
		s.addChunk()
		w = s.lo
	}
	c := w<<6 | bits.TrailingZeros64(s.avail[w])
	m := &s.meta[c]
	k := 0
	for m.free[k] == 0 {
		k++
	}
	j := k<<6 | bits.TrailingZeros64(m.free[k])
	m.free[k] &= m.free[k] - 1
	if m.used++; m.used == slabChunk {
		s.avail[w] &^= 1 << (c & 63)
	}
	return uint32(c<<slabShift | j)
}

// addChunk appends a chunk of free indices (index 0 excepted).
func (s *slab[T]) addChunk() {
	c := len(s.chunks)
	s.chunks = append(s.chunks, new([slabChunk]T))
	var m chunkMeta
	for k := range m.free {
		m.free[k] = ^uint64(0)
	}
	if c == 0 {
		m.free[0] &^= 1
		m.used = 1
	}
	s.meta = append(s.meta, m)
	if c>>6 == len(s.avail) {
		s.avail = append(s.avail, 0)
	}
	s.avail[c>>6] |= 1 << (c & 63)
	s.lo = min(s.lo, c>>6)
}

// release makes index i reusable.
func (s *slab[T]) release(i uint32) {
	c, j := int(i>>slabShift), i&(slabChunk-1)
	m := &s.meta[c]
	m.free[j>>6] |= 1 << (j & 63)
	s.avail[c>>6] |= 1 << (c & 63)
	s.lo = min(s.lo, c>>6)
	if m.used--; m.used == 0 {
		s.trim()
	}
}

// trim drops the trailing empty chunks but one, and the slices' room
// when they use a quarter of it.
func (s *slab[T]) trim() {
	n := len(s.chunks)
	for n >= 2 && s.meta[n-1].used == 0 && s.meta[n-2].used == 0 {
		n--
		s.chunks[n] = nil
		s.avail[n>>6] &^= 1 << (n & 63)
	}
	if n == len(s.chunks) {
		return
	}
	s.chunks, s.meta = s.chunks[:n], s.meta[:n]
	s.avail = s.avail[:(n+63)>>6]
	s.lo = min(s.lo, len(s.avail))
	if cap(s.chunks) >= 4*n && cap(s.chunks) > 64 {
		s.chunks = append(make([]*[slabChunk]T, 0, 2*n), s.chunks...)
		s.meta = append(make([]chunkMeta, 0, 2*n), s.meta...)
		s.avail = append([]uint64(nil), s.avail...)
	}
}

// size returns the number of indices the slab has room for (its
// chunks).
func (s *slab[T]) size() int { return len(s.chunks) * slabChunk }
