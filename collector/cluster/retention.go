package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Retention is a worker's retention: the keys of collector.yaml a single
// mira-collector applies to its store, applied to the worker's own
// records and rollups (zero keeps them for ever).
type Retention struct {
	MaxAge  time.Duration // retention: max_age: records that ended before now-MaxAge
	MaxSize int64         // retention: max_size: the oldest records beyond DataSize MaxSize
	// Minute and Hour: rollups: minute_retention, hour_retention: the
	// cells of buckets that ended before now-Minute (Hour).
	Minute, Hour time.Duration
}

// retentionEvery is how often a worker applies its retention (the
// single collector's period; Worker.retainEvery, which tests shorten).
const retentionEvery = 30 * time.Second

// bucketEnds indexes the batches by the earliest end time of their
// records: key = that time (8 bytes, store order) + the batch's key in
// bucketBatches; value = the batch's spans (batchSpans), so that
// pruning finds the batches holding old records without reading the
// others, and the partitions' spans are summed without decoding a
// record.
var bucketEnds = []byte("ends")

// bucketMeta holds the worker's retention state: key "pruned" = the
// latest cutoff records were pruned at (8 bytes, ns).
var (
	bucketMeta = []byte("meta")
	keyPruned  = []byte("pruned")
)

// pruneBatches bounds the batches one pruning transaction reads, so that
// a backlog does not hold the store (and the commits) for long.
const pruneBatches = 1024

func endKey(dst []byte, last int64, batch []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(last)^(1<<63))
	return append(dst, batch...)
}

func endTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)) }

// batchSpans are the spans, per partition, of one batch's records, and
// the earliest end among them.
type batchSpans struct {
	minLast int64
	spans   []Span // P set; normally one (a batch is one partition's)
}

// add adds r, a record of partition p.
func (bs *batchSpans) add(p int, r *flow.Record) {
	if len(bs.spans) == 0 || r.Last < bs.minLast {
		bs.minLast = r.Last
	}
	for i := range bs.spans {
		if bs.spans[i].P == p {
			bs.spans[i].add(r)
			return
		}
	}
	bs.spans = append(bs.spans, Span{P: p})
	bs.spans[len(bs.spans)-1].add(r)
}

// encode: per span, the partition (1 byte) and its encoding (24).
func (bs *batchSpans) encode() []byte {
	var b []byte
	for i := range bs.spans {
		b = append(b, byte(bs.spans[i].P))
		b = append(b, bs.spans[i].encode()...)
	}
	return b
}

func decodeBatchSpans(v []byte, fn func(Span)) error {
	if len(v)%25 != 0 {
		return fmt.Errorf("bad batch index value of %d bytes", len(v))
	}
	for ; len(v) > 0; v = v[25:] {
		if int(v[0]) >= Partitions {
			return fmt.Errorf("batch index: partition %d", v[0])
		}
		fn(Span{P: int(v[0]), First: int64(binary.BigEndian.Uint64(v[1:])), Last: int64(binary.BigEndian.Uint64(v[9:])),
			N: binary.BigEndian.Uint64(v[17:])})
	}
	return nil
}

// indexBatches makes bucketEnds when the store has none (a store of a
// worker before retention), moving the records of the workers before
// batches (bucketRecords) into batches first so that one index covers
// every record.
func indexBatches(tx *bolt.Tx) error {
	if tx.Bucket(bucketEnds) != nil {
		return nil
	}
	b := tx.Bucket(bucketBatches)
	if old := tx.Bucket(bucketRecords); old != nil {
		var buf []byte
		n := 0
		put := func() error {
			if len(buf) == 0 {
				return nil
			}
			n++
			err := b.Put([]byte("m:"+strconv.Itoa(n)), buf)
			buf = nil
			return err
		}
		err := old.ForEach(func(k, v []byte) error {
			if len(buf) == 0 {
				buf = append(buf, batchVersion)
			}
			buf = append(buf, k...)
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
			if len(buf) >= batchBytes {
				return put()
			}
			return nil
		})
		if err == nil {
			err = put()
		}
		if err == nil {
			err = tx.DeleteBucket(bucketRecords)
		}
		if err != nil {
			return err
		}
	}
	idx, err := tx.CreateBucket(bucketEnds)
	if err != nil {
		return err
	}
	var keys, vals [][]byte
	err = b.ForEach(func(k, v []byte) error {
		var bs batchSpans
		if err := decodeBatchRecords(v, func(_ ID, _ []byte, r *flow.Record) error { bs.add(Partition(r.Key, Partitions), r); return nil }); err != nil {
			return fmt.Errorf("batch %q: %w", k, err)
		}
		if len(bs.spans) > 0 {
			keys, vals = append(keys, endKey(nil, bs.minLast, k)), append(vals, bs.encode())
		}
		return nil
	})
	for i := range keys {
		if err == nil {
			err = idx.Put(keys[i], vals[i])
		}
	}
	return err
}

// indexSpans sums the partitions' spans from the index.
func indexSpans(idx *bolt.Bucket) ([Partitions]Span, error) {
	var spans [Partitions]Span
	err := idx.ForEach(func(_, v []byte) error {
		return decodeBatchSpans(v, func(sp Span) { spans[sp.P].merge(sp) })
	})
	for p := range spans {
		spans[p].P = p
	}
	return spans, err
}

// keepFrom returns batch v without its records that ended before cutoff,
// the spans of what it keeps, and adds the records it drops to pruned
// (per partition).
func keepFrom(v []byte, cutoff int64, pruned *[Partitions]uint64) ([]byte, batchSpans, error) {
	out := []byte{batchVersion}
	var bs batchSpans
	var key []byte
	err := decodeBatchRecords(v, func(id ID, enc []byte, r *flow.Record) error {
		p := Partition(r.Key, Partitions)
		if r.Last < cutoff {
			pruned[p]++
			return nil
		}
		bs.add(p, r)
		key = id.key(key[:0])
		out = append(out, key...)
		out = binary.AppendUvarint(out, uint64(len(enc)))
		out = append(out, enc...)
		return nil
	})
	return out, bs, err
}

// PruneBefore deletes the stored records that ended before cutoff (a
// batch holding some is written again with the others) and returns how
// many it deleted. The partitions' spans then describe the records
// kept; a partition's live rollups stay (they were fed the records
// deleted: see Retention in doc.go).
func (w *Worker) PruneBefore(cutoff time.Time) (uint64, error) {
	return w.pruneBefore(cutoff, &w.PrunedByAge)
}

// pruneBefore is PruneBefore counting the records it deletes in count.
// The cluster's rollups of the buckets the records may have touched are
// retired first (retire); when that fails the records are deleted all
// the same (the disk comes first) and reports from rollups refuse
// those buckets.
func (w *Worker) pruneBefore(cutoff time.Time, count *atomic.Uint64) (uint64, error) {
	if w.oldest() < cutoff.UnixNano() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := w.retire(ctx, cutoff.UnixNano()); err != nil {
			w.log.Warn("rollups not retired: reports from rollups will not answer the buckets of the records deleted", "err", err)
		}
		cancel()
	}
	var total uint64
	for {
		n, more, err := w.pruneStep(cutoff.UnixNano(), count)
		total += n
		if err != nil {
			return total, fmt.Errorf("cluster: worker %s: prune before %s: %w", w.Name, cutoff.UTC().Format(time.RFC3339), err)
		}
		if !more {
			return total, nil
		}
	}
}

// pruneStep prunes the records that ended before cutoff from up to
// pruneBatches batches in one transaction; more says batches with such
// records may remain.
func (w *Worker) pruneStep(cutoff int64, count *atomic.Uint64) (n uint64, more bool, err error) {
	w.smu.Lock()
	defer w.smu.Unlock()
	var spans [Partitions]Span
	var pruned [Partitions]uint64
	var batches uint64
	err = w.db.Update(func(tx *bolt.Tx) error {
		idx, b := tx.Bucket(bucketEnds), tx.Bucket(bucketBatches)
		lim := endKey(nil, cutoff, nil)
		var keys, vals [][]byte
		c := idx.Cursor()
		for k, v := c.First(); k != nil && bytes.Compare(k[:8], lim) < 0; k, v = c.Next() {
			if len(keys) == pruneBatches {
				more = true
				break
			}
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
		}
		for i, k := range keys {
			if err := idx.Delete(k); err != nil {
				return err
			}
			bk := k[8:]
			// A batch whose records all ended before the cutoff goes
			// whole, counted from its index entry, without decoding.
			var all [Partitions]uint64
			whole := true
			err := decodeBatchSpans(vals[i], func(sp Span) {
				all[sp.P] += sp.N
				whole = whole && sp.Last < cutoff
			})
			if err != nil {
				return fmt.Errorf("batch %q: %w", bk, err)
			}
			if whole {
				if b.Get(bk) == nil {
					continue
				}
				for p := range all {
					pruned[p] += all[p]
				}
				batches++
				if err := b.Delete(bk); err != nil {
					return err
				}
				continue
			}
			v := b.Get(bk)
			if v == nil {
				continue
			}
			kept, bs, err := keepFrom(v, cutoff, &pruned)
			if err != nil {
				return fmt.Errorf("batch %q: %w", bk, err)
			}
			if len(bs.spans) == 0 {
				batches++
				if err := b.Delete(bk); err != nil {
					return err
				}
				continue
			}
			if err := b.Put(bk, kept); err != nil {
				return err
			}
			if err := idx.Put(endKey(nil, bs.minLast, bk), bs.encode()); err != nil {
				return err
			}
		}
		for p := range pruned {
			n += pruned[p]
		}
		if n == 0 {
			return nil
		}
		var err error
		if spans, err = indexSpans(idx); err != nil {
			return err
		}
		if err := putSpans(tx, &spans, nil); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if cutoff > w.prunedBefore.Load() {
			return meta.Put(keyPruned, binary.BigEndian.AppendUint64(nil, uint64(cutoff)))
		}
		return nil
	})
	if err != nil || n == 0 {
		return 0, more, err
	}
	for p := range pruned {
		if pruned[p] == 0 {
			continue
		}
		// Live rollups fed every record the partition held still hold
		// the deleted ones' cells, as the single collector's rollups
		// do; the count they are checked against follows the span.
		if lr := w.live[p]; lr != nil && lr.n == w.spans[p].N {
			lr.n = spans[p].N
		} else {
			w.live[p] = nil
		}
	}
	w.spans = spans
	if cutoff > w.prunedBefore.Load() {
		w.prunedBefore.Store(cutoff)
	}
	count.Add(n)
	w.PrunedBatches.Add(batches)
	return n, more, nil
}

// DataSize returns the bytes the stored records (and their index)
// occupy in the store's pages, as store.Store.DataSize does for a
// single collector's records (the file does not shrink by itself).
func (w *Worker) DataSize() (int64, error) {
	var n int64
	err := w.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBatches, bucketEnds} {
			if b := tx.Bucket(name); b != nil {
				st := b.Stats()
				n += int64(st.LeafInuse + st.BranchInuse)
			}
		}
		return nil
	})
	return n, err
}

// PruneToSize deletes the oldest records (by end time) until DataSize is
// at most maxBytes, and returns how many it deleted. Each round deletes
// every record that ended before a cutoff, the end time up to which the
// batches' sizes (oldest first) add up to the excess: what remains is
// always the records that ended last.
func (w *Worker) PruneToSize(maxBytes int64) (uint64, error) {
	var total uint64
	for {
		size, err := w.DataSize()
		if err != nil {
			return total, err
		}
		excess := size - maxBytes
		if excess <= 0 {
			return total, nil
		}
		cutoff := int64(math.MinInt64)
		err = w.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketBatches)
			c := tx.Bucket(bucketEnds).Cursor()
			var freed int64
			for k, v := c.First(); k != nil; k, v = c.Next() {
				// Page overhead is per element (16 bytes in bbolt).
				freed += int64(len(k)+len(v)+16) + int64(len(b.Get(k[8:]))+len(k)-8+16)
				cutoff = endTime(k) + 1
				if freed >= excess {
					break
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if cutoff == math.MinInt64 {
			return total, nil
		}
		n, err := w.pruneBefore(time.Unix(0, cutoff), &w.PrunedBySize)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// retain applies w.Retention: records by age, rollups by resolution,
// then records by size (the single collector's order).
func (w *Worker) retain() {
	r := w.Retention
	if r.MaxAge > 0 {
		if n, err := w.PruneBefore(time.Now().Add(-r.MaxAge)); err != nil {
			w.log.Error("retention by age", "err", err)
		} else if n > 0 {
			w.log.Info("retention: pruned old records", "records", n, "max_age", r.MaxAge)
		}
	}
	if n, err := w.pruneRollups(time.Now()); err != nil {
		w.log.Error("retention of rollups", "err", err)
	} else if n > 0 {
		w.log.Info("retention: pruned old rollups", "cells", n, "minute", r.Minute, "hour", r.Hour)
	}
	if r.MaxSize > 0 {
		if n, err := w.PruneToSize(r.MaxSize); err != nil {
			w.log.Error("retention by size", "err", err)
		} else if n > 0 {
			w.log.Info("retention: pruned oldest records", "records", n, "max_size", r.MaxSize)
		}
	}
	if n, err := w.DataSize(); err == nil {
		w.dataBytes.Store(n)
	}
}

// rollupLimits are the bucket starts before which w's rollups hold no
// cells, per resolution ("1m", "1h": store.RollupMeta.PrunedBefore), at
// now for a report with pairing window window: the rollup retention
// (whole buckets, as store.Store.PruneRollups prunes) and prunedLimits
// of w's records. Nil when neither applies.
func (w *Worker) rollupLimits(now time.Time, window time.Duration) map[string]int64 {
	return mergeLimits(prunedLimits(w.prunedBefore.Load(), window), w.retentionLimits(now))
}

// retentionLimits are the limits of w's rollup retention at now.
func (w *Worker) retentionLimits(now time.Time) map[string]int64 {
	var m map[string]int64
	for _, x := range []struct{ res, keep time.Duration }{{store.RollupMinute, w.Retention.Minute}, {store.RollupHour, w.Retention.Hour}} {
		if x.keep > 0 {
			t := now.Add(-x.keep).UnixNano()
			m = mergeLimits(m, map[string]int64{resName(x.res): t - mod(t, int64(x.res))})
		}
	}
	return m
}

// prunedLimits: after records were pruned at cutoff c (0: none), the
// first bucket of each resolution whose biflows the deleted records
// cannot have touched: those starting at or after c + window (a record
// paired with a deleted one started within the window of its end) +
// classify.PairWindow (their pair context).
func prunedLimits(c int64, window time.Duration) map[string]int64 {
	if c == 0 {
		return nil
	}
	if window <= 0 {
		window = report.DefaultWindow
	}
	m := map[string]int64{}
	for _, res := range store.RollupResolutions {
		t := c + int64(window+classify.PairWindow)
		if r := mod(t, int64(res)); r != 0 {
			t += int64(res) - r
		}
		m[resName(res)] = t
	}
	return m
}

// mergeLimits adds src's limits to dst (the later of two), returning
// dst (made when nil).
func mergeLimits(dst, src map[string]int64) map[string]int64 {
	for res, t := range src {
		if dst == nil {
			dst = map[string]int64{}
		}
		if cur, ok := dst[res]; !ok || t > cur {
			dst[res] = t
		}
	}
	return dst
}

func resName(res time.Duration) string {
	if res == store.RollupHour {
		return "1h"
	}
	return "1m"
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// dropCells deletes from c the cells of buckets before limits (per
// resolution name) and returns how many.
func dropCells(c Cells, limits map[string]int64) int {
	n := 0
	for res, m := range c {
		lim, ok := limits[resName(res)]
		if !ok {
			continue
		}
		for k := range m {
			if k.Bucket < lim {
				delete(m, k)
				n++
			}
		}
	}
	return n
}

// pruneRollups applies the rollup retention to the cells w keeps (in
// the store and in its live rollups) and returns how many it deleted.
func (w *Worker) pruneRollups(now time.Time) (int, error) {
	if w.prunedBefore.Load() == 0 && w.Retention.Minute <= 0 && w.Retention.Hour <= 0 {
		return 0, nil // nothing to prune (rollupLimits: none)
	}
	w.smu.Lock()
	defer w.smu.Unlock()
	n := 0
	for _, lr := range w.live {
		if lr != nil {
			n += dropCells(lr.final, w.rollupLimits(now, lr.window))
		}
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		var keys, vals [][]byte
		var err error
		b := tx.Bucket(bucketRollups)
		if b == nil {
			b, err = tx.CreateBucketIfNotExists(bucketRollups)
			if err != nil {
				return err
			}
		}
		err = b.ForEach(func(k, v []byte) error {
			var pr partRollup
			if err := gob.NewDecoder(bytes.NewReader(v)).Decode(&pr); err != nil {
				return nil // made again on the next report
			}
			d := dropCells(pr.Cells, w.rollupLimits(now, pr.Window))
			if d == 0 {
				return nil
			}
			n += d
			var out bytes.Buffer
			if err := gob.NewEncoder(&out).Encode(&pr); err != nil {
				return err
			}
			keys, vals = append(keys, bytes.Clone(k)), append(vals, out.Bytes())
			return nil
		})
		for i := range keys {
			if err == nil {
				err = b.Put(keys[i], vals[i])
			}
		}
		if err != nil {
			return err
		}
		// The retired slices (retire.go) lose what rollup retention
		// deletes, not what the records' deletion did.
		keys, vals = nil, nil
		limits := w.retentionLimits(now)
		if r := tx.Bucket(bucketRetired); r != nil && limits != nil {
			err = r.ForEach(func(k, v []byte) error {
				var c Cells
				if err := gob.NewDecoder(bytes.NewReader(v)).Decode(&c); err != nil {
					return err
				}
				d := dropCells(c, limits)
				if d == 0 {
					return nil
				}
				n += d
				var out bytes.Buffer
				if err := gob.NewEncoder(&out).Encode(c); err != nil {
					return err
				}
				keys, vals = append(keys, bytes.Clone(k)), append(vals, out.Bytes())
				return nil
			})
			for i := range keys {
				if err == nil {
					err = r.Put(keys[i], vals[i])
				}
			}
		}
		return err
	})
	w.PrunedCells.Add(uint64(n))
	return n, err
}

// oldest returns the earliest end of the stored records (math.MaxInt64
// when none).
func (w *Worker) oldest() int64 {
	t := int64(math.MaxInt64)
	w.db.View(func(tx *bolt.Tx) error {
		if idx := tx.Bucket(bucketEnds); idx != nil {
			if k, _ := idx.Cursor().First(); k != nil {
				t = endTime(k)
			}
		}
		return nil
	})
	return t
}
