// Package slab is a chunked store of values named by uint32 index that
// gives memory back when it drains (see Slab).
package slab

import "math/bits"

// Slab holds values of one kind (the collector's pending connections,
// observations and their extras; the Roller's held records) in
// fixed-size chunks, named by uint32 index: an index is 4 bytes where a pointer is 8, chunks of values
// without pointers are not scanned by the garbage collector, values never
// move (a *T stays valid while the slab grows, and growing copies
// nothing), and released indices are reused. Index 0 is never handed
// out: it means none.
//
// The slab shrinks when the state drains: Alloc hands out the lowest
// free index, so after a burst the high chunks empty out as their
// values are released (new values go low), and Release gives trailing
// empty chunks back to the garbage collector, keeping one spare so that
// a count oscillating at a chunk boundary does not allocate each time.
// A value held long in a high chunk keeps that chunk (values never
// move).
type Slab[T any] struct {
	chunks []*[Chunk]T
	meta   []chunkMeta // per chunk
	// avail: bit c is set when chunk c has a free index; lo: no word
	// of avail before it has a bit set.
	avail []uint64
	lo    int
}

// chunkMeta says which indices of a chunk are free.
type chunkMeta struct {
	free [Chunk / 64]uint64 // bit j: index j of the chunk is free
	used uint32             // indices handed out (index 0 counts)
}

// A chunk holds Chunk values; index i is value i&(Chunk-1) of chunk
// i>>Shift.
const (
	Shift = 10
	Chunk = 1 << Shift
)

// At returns the value of index i.
func (s *Slab[T]) At(i uint32) *T {
	return &s.chunks[i>>Shift][i&(Chunk-1)]
}

// Alloc returns the lowest unused index; its value is the zero T, or,
// for a reused index, what release left in it.
func (s *Slab[T]) Alloc() uint32 {
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
	if m.used++; m.used == Chunk {
		s.avail[w] &^= 1 << (c & 63)
	}
	return uint32(c<<Shift | j)
}

// addChunk appends a chunk of free indices (index 0 excepted).
func (s *Slab[T]) addChunk() {
	c := len(s.chunks)
	s.chunks = append(s.chunks, new([Chunk]T))
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

// Release makes index i reusable; the caller has reset its value.
func (s *Slab[T]) Release(i uint32) {
	c, j := int(i>>Shift), i&(Chunk-1)
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
func (s *Slab[T]) trim() {
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
		s.chunks = append(make([]*[Chunk]T, 0, 2*n), s.chunks...)
		s.meta = append(make([]chunkMeta, 0, 2*n), s.meta...)
		s.avail = append([]uint64(nil), s.avail...)
	}
}

// InUse returns the number of indices handed out and not released.
func (s *Slab[T]) InUse() int {
	n := 0
	for i := range s.meta {
		n += int(s.meta[i].used)
	}
	if n > 0 {
		n-- // index 0
	}
	return n
}

// Clone returns an independent copy; cp, when set, deep-copies a value
// in place (the chunks are copied value by value first).
func (s *Slab[T]) Clone(cp func(*T)) Slab[T] {
	n := Slab[T]{meta: append([]chunkMeta(nil), s.meta...), avail: append([]uint64(nil), s.avail...), lo: s.lo,
		chunks: make([]*[Chunk]T, len(s.chunks))}
	for i, ch := range s.chunks {
		x := new([Chunk]T)
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

// Size returns the number of indices the slab has room for (its
// chunks times Chunk).
func (s *Slab[T]) Size() int { return len(s.chunks) * Chunk }
