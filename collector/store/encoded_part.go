package store

// Parts of an Encoded, for a writer that commits a backlog in pieces
// when the whole does not fit (a disk short of space): the collector
// sorts an origin's records, then commits them a range at a time,
// oldest first.

// Sort puts e's records in end-time order, stably, as PutEncoded does
// before it writes them.
func (e *Encoded) Sort() { e.sort() }

// AppendRange appends o's records i to j-1 (of the same origin) to e.
func (e *Encoded) AppendRange(o *Encoded, i, j int) {
	for _, x := range o.idx[i:j] {
		at := uint32(len(e.buf))
		e.buf = append(e.buf, o.buf[x.off:x.off+x.n]...)
		x.off = at
		e.idx = append(e.idx, x)
		e.maxDur = max(e.maxDur, x.last-x.first)
	}
}
