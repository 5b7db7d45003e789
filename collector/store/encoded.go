package store

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/flow"
)

// Encoded collects one origin's records, already in the store's record
// encoding, for PutEncoded. A writer that batches records between commits
// keeps them this way (about 60 bytes each instead of a flow.Record and
// its symptom list), and the commit only sorts and copies bytes. Add
// copies everything it needs from the record, so the caller may reuse it
// (and its Symptoms) at once. Adding allocates nothing once the buffers
// have grown to a batch's size; Reset keeps them.
type Encoded struct {
	Origin Origin
	buf    []byte // length-prefixed records, as they go into a chunk
	idx    []encRec
	scr    sortScratch // Sort's, not the commit's (Store.scr)
	maxDur int64
	tags   []recTag // sorted by off (encoded_part.go)
}

// sortScratch is the radix sort's scratch, kept between sorts: a
// commit's sorts use the store's (one for every batch and commit, where
// each batch kept its own: ~40 bytes a record of a batch's largest size,
// pages first touched once per batch).
type sortScratch struct {
	tmp  []encRec
	keys []uint64 // packed keys (sortPacked)
}

// encRec locates one record of an Encoded. Offsets are 32-bit: a batch
// is far smaller than 4 GiB (see the collector's pending limit).
type encRec struct {
	last  int64 // flow end time, the chunk order
	first int64 // flow start time (EachEncoded)
	off   uint32
	n     uint32
}

// Add appends r.
func (e *Encoded) Add(r *flow.Record) {
	at := len(e.buf)
	e.buf = appendChunkRecord(e.buf, r)
	e.idx = append(e.idx, encRec{last: r.Last, first: r.First, off: uint32(at), n: uint32(len(e.buf) - at)})
	e.maxDur = max(e.maxDur, r.Last-r.First)
}

// AddAll appends every record of recs.
func (e *Encoded) AddAll(recs []flow.Record) {
	for i := range recs {
		e.Add(&recs[i])
	}
}

// Append appends o's records (of the same origin) to e. Its buffers
// grow twofold when full (append grows large ones by a quarter): a
// collector's pending batch grows a message at a time to a commit's
// records, and every growth is a new allocation, garbage for the
// collector and fresh pages for the kernel to fault in.
func (e *Encoded) Append(o *Encoded) {
	if need := len(e.buf) + len(o.buf); need > cap(e.buf) {
		e.buf = slices.Grow(e.buf, max(need, 2*cap(e.buf))-len(e.buf))
	}
	if need := len(e.idx) + len(o.idx); need > cap(e.idx) {
		e.idx = slices.Grow(e.idx, max(need, 2*cap(e.idx))-len(e.idx))
	}
	base := uint32(len(e.buf))
	e.buf = append(e.buf, o.buf...)
	n := len(e.idx)
	e.idx = append(e.idx, o.idx...)
	for i := range e.idx[n:] {
		e.idx[n+i].off += base
	}
	e.maxDur = max(e.maxDur, o.maxDur)
	if len(o.tags) > 0 {
		t := len(e.tags)
		e.tags = append(e.tags, o.tags...)
		for i := range e.tags[t:] {
			e.tags[t+i].off += base
		}
	}
}

// Fits says e holds o's records without growing its buffers.
func (e *Encoded) Fits(o *Encoded) bool {
	return len(e.buf)+len(o.buf) <= cap(e.buf) && len(e.idx)+len(o.idx) <= cap(e.idx)
}

// Cap returns the bytes of records e holds without growing.
func (e *Encoded) Cap() int { return cap(e.buf) }

// Trade gives e the buffers of x, an empty batch (of any origin), with
// e's records copied into them, and x e's buffers, emptied: a writer
// with batches by origin lets one that must grow take the larger
// buffers of one that is idle rather than grow new ones (fresh pages
// for the kernel to fault in, the old ones garbage).
func (e *Encoded) Trade(x *Encoded) {
	if x.Len() != 0 {
		panic("store: Encoded.Trade with a batch that holds records")
	}
	x.buf = append(x.buf[:0], e.buf...)
	x.idx = append(x.idx[:0], e.idx...)
	e.buf, x.buf = x.buf, e.buf[:0]
	e.idx, x.idx = x.idx, e.idx[:0]
	x.maxDur = 0
	x.tags = x.tags[:0]
}

// AppendIf appends those of o's records (of the same origin) for whose
// index in o keep says true.
func (e *Encoded) AppendIf(o *Encoded, keep func(i int) bool) {
	for i, x := range o.idx {
		if !keep(i) {
			continue
		}
		at := uint32(len(e.buf))
		e.buf = append(e.buf, o.buf[x.off:x.off+x.n]...)
		x.off = at
		e.idx = append(e.idx, x)
		e.maxDur = max(e.maxDur, x.last-x.first)
	}
}

// appendRecords appends the bytes of records idx[start:end] to buf, in
// that order (a commit's frame: sorted by end time). Records that follow
// each other in e.buf too (about 40 % of a sorted second's batch of
// MIRA's records) are copied as one run.
func (e *Encoded) appendRecords(buf []byte, start, end int) []byte {
	idx := e.idx[start:end]
	for i := 0; i < len(idx); {
		off, n := idx[i].off, idx[i].n
		for i++; i < len(idx) && idx[i].off == off+n; i++ {
			n += idx[i].n
		}
		buf = append(buf, e.buf[off:off+n]...)
	}
	return buf
}

// warmLimit bounds the batches warm reads: a batch larger than a
// processor's last-level cache (tens of MiB) would be evicted by its own
// end before the copy reads its start.
const warmLimit = 8 << 20

// warm reads e's records once, in the order they lie in memory, before
// a commit copies them out in end-time order (appendRecords), and
// returns a byte of them (so that the reads are not left out). A batch
// was written over the second before its commit and is mostly no longer
// in the caches: a read in memory order streams it in at the memory's
// bandwidth, where the copy in end-time order would wait for each
// record's line (BenchmarkEncodedGather, caches evicted before each
// copy: 30-41 ns a record without, 15-23 with).
func (e *Encoded) warm() byte {
	if len(e.buf) > warmLimit {
		return 0
	}
	var x byte
	for i := 0; i < len(e.buf); i += 64 {
		x += e.buf[i]
	}
	return x
}

// LastEnd returns the latest end time of e's records (0 when empty).
func (e *Encoded) LastEnd() int64 {
	if len(e.idx) == 0 {
		return 0
	}
	v := e.idx[0].last
	for _, x := range e.idx[1:] {
		v = max(v, x.last)
	}
	return v
}

// Len returns the number of records in e.
func (e *Encoded) Len() int { return len(e.idx) }

// Size returns the bytes e's records take.
func (e *Encoded) Size() int { return len(e.buf) }

// Reset empties e, keeping its origin and capacity.
func (e *Encoded) Reset() {
	e.buf = e.buf[:0]
	e.idx = e.idx[:0]
	e.tags = e.tags[:0]
	e.maxDur = 0
}

// sort orders the records by end time, stably (ties keep their order),
// with a least-significant-digit radix sort on the end time less the
// batch's earliest: a batch spans little time, so few byte passes run,
// and each costs a read and a write per record where a comparison sort
// costs about log2(n) comparisons.
func (e *Encoded) sort() { e.sortWith(&e.scr) }

// sortWith is sort with scr's scratch.
func (e *Encoded) sortWith(scr *sortScratch) {
	idx := e.idx
	if len(idx) < 2 {
		return
	}
	v0 := idx[0].last
	lo, hi, sorted, ms := v0, v0, true, true
	for i := 1; i < len(idx); i++ {
		v := idx[i].last
		sorted = sorted && v >= idx[i-1].last
		ms = ms && (v-v0)%1e6 == 0
		lo, hi = min(lo, v), max(hi, v)
	}
	if sorted {
		return
	}
	if span := uint64(hi - lo); span < 1<<(64-packIndexBits) && len(idx) <= 1<<packIndexBits {
		// (Within that span v-v0 does not overflow: ms holds.)
		if ms {
			span /= 1e6
		}
		e.sortPacked(scr, lo, ms, bits.Len64(span))
		return
	}
	if cap(scr.tmp) < len(idx) {
		scr.tmp = make([]encRec, len(idx))
	}
	src, dst := idx, scr.tmp[:len(idx)]
	span := uint64(hi - lo)
	for shift := 0; shift < 64 && span>>shift != 0; shift += 8 {
		var count [256]int
		for i := range src {
			count[byte(uint64(src[i].last-lo)>>shift)]++
		}
		if count[byte(uint64(src[0].last-lo)>>shift)] == len(src) {
			continue // every key has this digit: nothing moves
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, x := range src {
			d := byte(uint64(x.last-lo) >> shift)
			dst[count[d]] = x
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &idx[0] {
		copy(idx, src)
	}
}

// packIndexBits is the bits of a record's index in a packed sort key
// (sortPacked): batches hold far fewer than 2^24 records.
const packIndexBits = 24

// sortPacked is sort for a batch whose end times span fewer than
// 2^(64-packIndexBits) ns (about 12 days: every batch a collector
// commits) and that holds at most 2^packIndexBits records: each record's
// end time less lo and its index are packed in one word, the words
// sorted by the time's keyBits bits in as few passes of up to 12 bits as
// they take (a second's batch of MIRA's records spans ~2^36 ns: 3 passes
// of 8 bytes a record, where sorting the 24-byte index entries a byte of
// the key at a time took 5), then the index entries gathered in that
// order once. When ms says every end time is lo plus whole milliseconds
// (IPFIX's flowEndMilliseconds: every record of MIRA's and most other
// exporters), the keys are in ms and keyBits counts them: ~2^16 for a
// second's batch, 2 passes of 8 bits (BenchmarkEncodedSort 8.6-9.6 ->
// 6.7-7.1 ns/record).
func (e *Encoded) sortPacked(scr *sortScratch, lo int64, ms bool, keyBits int) {
	idx := e.idx
	n := len(idx)
	if cap(scr.keys) < 2*n {
		scr.keys = make([]uint64, 2*n)
	}
	src, dst := scr.keys[:n], scr.keys[n:2*n]
	if ms {
		for i, x := range idx {
			src[i] = uint64(x.last-lo)/1e6<<packIndexBits | uint64(i)
		}
	} else {
		for i, x := range idx {
			src[i] = uint64(x.last-lo)<<packIndexBits | uint64(i)
		}
	}
	maxDigit := min(max(bits.Len(uint(n))-1, 8), 12)
	passes := (keyBits + maxDigit - 1) / maxDigit
	digit := (keyBits + passes - 1) / passes
	var count [1 << 12]int
	mask := uint64(1)<<digit - 1
	for shift := packIndexBits; shift < packIndexBits+keyBits; shift += digit {
		c := count[:1<<digit]
		clear(c)
		for _, k := range src {
			c[k>>shift&mask]++
		}
		if c[src[0]>>shift&mask] == n {
			continue // every key has this digit: nothing moves
		}
		sum := 0
		for d, v := range c {
			c[d] = sum
			sum += v
		}
		for _, k := range src {
			d := k >> shift & mask
			dst[c[d]] = k
			c[d]++
		}
		src, dst = dst, src
	}
	if cap(scr.tmp) < n {
		scr.tmp = make([]encRec, n)
	}
	tmp := scr.tmp[:n]
	for i, k := range src {
		tmp[i] = idx[k&(1<<packIndexBits-1)]
	}
	copy(idx, tmp)
}

// PutEncoded stores the records of batches in one transaction (one sync),
// as PutBatches does; batches are not changed except that each one's
// records are put in end-time order. It returns ErrLocked (wrapped) when
// the store is opened per operation (Options.Release) and another process
// holds the file longer than Options.Timeout; the caller may retry later.
func (s *Store) PutEncoded(batches []*Encoded) error { return s.PutEncodedSeq(batches, nil) }

// PutEncodedSeq is PutEncoded that also replaces the stored sequence sets
// of seqs' origins, in the same transaction.
func (s *Store) PutEncodedSeq(batches []*Encoded, seqs map[SeqOrigin]*SeqSet) error {
	return s.PutEncodedCommit(batches, &SeqCommit{Sets: seqs})
}

// PutEncodedCommit is PutEncoded that also stores seqs (sequence sets,
// positions and the sequence loss counted with the records: seqnext.go)
// in the same transaction. The records go to the newest segment file
// (see segment.go), which is synced before the transaction commits.
func (s *Store) PutEncodedCommit(batches []*Encoded, seqs *SeqCommit) error {
	total := 0
	for _, b := range batches {
		total += b.Len()
	}
	if total == 0 {
		if !seqs.empty() {
			return s.update(func(tx *bolt.Tx) error { return putSeqCommit(tx, seqs) })
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	ids := s.ids[:0]
	var added map[Origin]uint32
	s.omu.RLock()
	for _, b := range batches {
		ids = append(ids, s.origins[b.Origin]) // 0: not known yet (ids start at 1)
	}
	s.omu.RUnlock()
	s.ids = ids

	err := s.update(func(tx *bolt.Tx) error {
		if err := putSeqCommit(tx, seqs); err != nil {
			return err
		}
		for i, b := range batches {
			if ids[i] != 0 || b.Len() == 0 {
				continue
			}
			if id, ok := added[b.Origin]; ok {
				ids[i] = id
				continue
			}
			id, err := originID(tx, b.Origin)
			if err != nil {
				return err
			}
			ids[i] = id
			if added == nil {
				added = make(map[Origin]uint32)
			}
			added[b.Origin] = id
		}
		// Chunks of records sorted by end time, each a segment frame.
		blk, err := s.putFrames(tx, batches, ids)
		if err != nil {
			return err
		}
		maxDur := blk.maxDur
		meta := tx.Bucket(bucketMeta)
		if maxDur > storedInt(meta, keyMaxDur) {
			if err := meta.Put(keyMaxDur, binary.BigEndian.AppendUint64(nil, uint64(maxDur))); err != nil {
				return err
			}
		}
		return nil
	})
	s.commitSegment(err == nil)
	if err != nil {
		if len(batches) == 1 {
			o := batches[0].Origin
			return fmt.Errorf("store: put %d records from %s/%d: %w", total, o.Exporter, o.Domain, err)
		}
		return fmt.Errorf("store: put %d records from %d batches: %w", total, len(batches), err)
	}
	if len(added) > 0 {
		s.omu.Lock()
		for o, id := range added {
			s.origins[o] = id
			s.byID[id] = o
		}
		s.omu.Unlock()
	}
	return nil
}

// Each decodes e's records into one flow.Record (reused: valid during
// the call) and calls fn with each, in e's order (end-time order once
// committed). It stops at the first record that fails to decode.
func (e *Encoded) Each(fn func(r *flow.Record)) error {
	var r flow.Record
	for _, x := range e.idx {
		b := e.buf[x.off : x.off+x.n]
		_, l := binary.Uvarint(b)
		if l <= 0 {
			return &DecodeError{Field: "record length", Reason: ReasonChunk}
		}
		if err := DecodeRecord(b[l:], &r); err != nil {
			return err
		}
		fn(&r)
	}
	return nil
}

// EachEncoded calls fn with each record's start and end time and its
// encoding (DecodeRecord's input, valid during the call), in e's order
// (end-time order once committed), without decoding it. It stops at the
// first error, of fn or of a record's length.
func (e *Encoded) EachEncoded(fn func(first, last int64, rec []byte) error) error {
	for _, x := range e.idx {
		b := e.buf[x.off : x.off+x.n]
		_, l := binary.Uvarint(b)
		if l <= 0 {
			return &DecodeError{Field: "record length", Reason: ReasonChunk}
		}
		if err := fn(x.first, x.last, b[l:]); err != nil {
			return err
		}
	}
	return nil
}
