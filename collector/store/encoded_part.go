package store

import (
	"cmp"
	"slices"
)

// Parts of an Encoded, for a writer that commits a backlog in pieces
// when the whole does not fit (a disk short of space): the collector
// sorts an origin's records, then commits them a range at a time,
// oldest first.

// Sort puts e's records in end-time order, stably, as PutEncoded does
// before it writes them.
func (e *Encoded) Sort() { e.sort() }

// AppendRange appends o's records i to j-1 (of the same origin) to e,
// with their tags.
func (e *Encoded) AppendRange(o *Encoded, i, j int) {
	for _, x := range o.idx[i:j] {
		at := uint32(len(e.buf))
		e.buf = append(e.buf, o.buf[x.off:x.off+x.n]...)
		if t, ok := o.tagAt(x.off); ok {
			t.off = at
			e.tags = append(e.tags, t) // at grows: still sorted
		}
		x.off = at
		e.idx = append(e.idx, x)
		e.maxDur = max(e.maxDur, x.last-x.first)
	}
}

// Tags. A spooling exporter's records are known by their sequence
// numbers (the collector's sequence sets), which sorting by end time
// hides: a record keeps its bytes' place in e's buffer, though, so a tag
// found by that place names a record through sorts, Append,
// AppendRange, and commits in parts. Only tagged batches pay for them
// (16 bytes a record).

// recTag is the sequence number of the record at off in buf, of spool
// instance inst.
type recTag struct {
	off  uint32
	seq  uint32
	inst uint64
}

// TagFrom tags e's records from the from-th added (in the order added,
// before any sort) on: the i-th of them gets instance inst and sequence
// number seq(i).
func (e *Encoded) TagFrom(from int, inst uint64, seq func(i int) uint32) {
	for i, x := range e.idx[from:] {
		e.tags = append(e.tags, recTag{off: x.off, seq: seq(i), inst: inst})
	}
}

func (e *Encoded) tagAt(off uint32) (recTag, bool) {
	if len(e.tags) == 0 {
		return recTag{}, false
	}
	i, ok := slices.BinarySearchFunc(e.tags, off, func(t recTag, off uint32) int { return cmp.Compare(t.off, off) })
	if !ok {
		return recTag{}, false
	}
	return e.tags[i], true
}

// Tagged says whether any record of e has a tag.
func (e *Encoded) Tagged() bool { return len(e.tags) > 0 }

// EachTag calls fn with the tag of each tagged record among records i to
// j-1 (in e's present order).
func (e *Encoded) EachTag(i, j int, fn func(inst uint64, seq uint32)) {
	if len(e.tags) == 0 {
		return
	}
	for _, x := range e.idx[i:j] {
		if t, ok := e.tagAt(x.off); ok {
			fn(t.inst, t.seq)
		}
	}
}

// Tag is a record's spool instance and sequence number; Inst 0: the
// record has no tag (spool instances are never 0).
type Tag struct {
	Inst uint64
	Seq  uint32
}

// SortByTag puts e's records in the order of their tags (instance, then
// sequence number; untagged records first), stably, and returns their
// tags in that order: a spooling exporter's records committed in parts
// in that order leave the numbers of what is stored, and of what waits
// (a suffix of the tags, sorted), a few ranges each.
func (e *Encoded) SortByTag() []Tag {
	type keyed struct {
		t Tag
		x encRec
	}
	k := make([]keyed, len(e.idx))
	for i, x := range e.idx {
		var t Tag
		if rt, ok := e.tagAt(x.off); ok {
			t = Tag{Inst: rt.inst, Seq: rt.seq}
		}
		k[i] = keyed{t, x}
	}
	slices.SortStableFunc(k, func(a, b keyed) int {
		if a.t.Inst != b.t.Inst {
			return cmp.Compare(a.t.Inst, b.t.Inst)
		}
		return cmp.Compare(a.t.Seq, b.t.Seq)
	})
	tags := make([]Tag, len(k))
	for i := range k {
		e.idx[i], tags[i] = k[i].x, k[i].t
	}
	return tags
}
