package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneBatch bounds the chunks one pruning transaction deletes, so that
// a large backlog does not hold the write lock (and the collector's
// commits) for long.
const pruneBatch = 4096

// PruneBefore deletes the stored records that ended before cutoff. The
// unit of deletion is a chunk (up to 64 records of one origin whose end
// times lie within a second); a chunk is deleted when all its records
// ended before cutoff. It returns the number of chunks deleted. In
// segments, a chunk is deleted from the index (scans skip it at once)
// and its bytes go when its whole segment file is deleted, once every
// record in it ended before the cutoff; chunks in the flows bucket
// (older stores) free their pages at once, which later writes reuse and
// CompactFile gives back to the file system.
func (s *Store) PruneBefore(cutoff time.Time) (total int, err error) {
	defer func() {
		if err == nil && total > 0 {
			err = s.notePruned(cutoff.UnixNano())
		}
	}()
	total, err = s.pruneSegmentsBefore(cutoff.UnixNano())
	if err != nil {
		return total, fmt.Errorf("store: prune before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	limit := timeKey(nil, cutoff.UnixNano()-maxChunkSpan)
	for {
		n := 0
		err := s.update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketFlows)
			c := b.Cursor()
			// Collect first: deleting under a cursor can skip keys.
			var keys [][]byte
			for k, _ := c.First(); k != nil && len(keys) < pruneBatch; k, _ = c.Next() {
				if bytes.Compare(k[:8], limit) >= 0 {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: prune before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// pruneSegmentsBefore deletes segment chunks whose records all ended
// before cutoff (ns): whole segments and blocks go from the index, and
// the cut (meta segcut) hides the chunks of the blocks that straddle it.
func (s *Store) pruneSegmentsBefore(cutoff int64) (int, error) {
	n := 0
	var dead []uint64
	var views []segView
	defer func() {
		for _, v := range views {
			v.unmap()
		}
	}()
	s.scanStart()
	defer s.scanEnd()
	err := s.update(func(tx *bolt.Tx) error {
		n, dead = 0, dead[:0]
		sb, bb := tx.Bucket(bucketSegments), tx.Bucket(bucketBlocks)
		if sb == nil || bb == nil {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		prev := int64(math.MinInt64)
		if v := meta.Get(keySegCut); len(v) == 8 {
			prev = int64(binary.BigEndian.Uint64(v))
		}
		if cutoff <= prev {
			return nil
		}
		var segKeys, blockKeys [][]byte
		sc, bc := sb.Cursor(), bb.Cursor()
		for k, v := sc.First(); k != nil; k, v = sc.Next() {
			m, ok := parseSegMeta(v)
			if !ok || len(k) != 8 || m.minLast >= cutoff || m.committed < int64(len(segMagic)) {
				continue
			}
			whole := m.maxLast < cutoff
			if whole {
				segKeys = append(segKeys, slices.Clone(k))
				dead = append(dead, binary.BigEndian.Uint64(k))
			}
			var seg []byte
			opened := false
			for bk, bv := bc.Seek(k); len(bk) == 16 && bytes.Equal(bk[:8], k); bk, bv = bc.Next() {
				bm, ok := parseBlockMeta(bv)
				if !ok || bm.maxLast < prev {
					if whole {
						blockKeys = append(blockKeys, slices.Clone(bk))
					}
					continue // counted when it was cut
				}
				if bm.minLast >= cutoff {
					continue
				}
				if bm.maxLast < cutoff {
					blockKeys = append(blockKeys, slices.Clone(bk))
					if bm.minLast >= prev {
						n += int(bm.chunks)
						continue
					}
				} else if whole {
					blockKeys = append(blockKeys, slices.Clone(bk))
				}
				// Straddles prev or cutoff: count its chunks in between.
				if !opened {
					sv, err := s.openSegment(binary.BigEndian.Uint64(k), m.committed)
					if err != nil {
						return err
					}
					views = append(views, sv)
					seg, opened = sv.b, true
				}
				off := int64(binary.BigEndian.Uint64(bk[8:]))
				if off < 0 || bm.end < off || bm.end > int64(len(seg)) {
					continue
				}
				WalkFrames(seg[off:bm.end], func(f Frame) {
					if f.Last >= prev && f.Last < cutoff {
						n++
					}
				}, func(string) {})
			}
		}
		if err := deleteKeys(bb, blockKeys, sb, segKeys); err != nil {
			return err
		}
		return meta.Put(keySegCut, binary.BigEndian.AppendUint64(nil, uint64(cutoff)))
	})
	if err != nil {
		return 0, err
	}
	s.unlinkSegments(dead)
	return n, nil
}

// keyPrunedBefore (meta) is the latest retention cut: records that
// ended before it may have been deleted (PruneBefore's cutoff, or the
// latest end in the segments PruneToSize deleted, plus one).
var keyPrunedBefore = []byte("prunedbefore")

// notePruned moves the retention cut to t when t is later.
func (s *Store) notePruned(t int64) error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyPrunedBefore); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= t {
			return nil
		}
		return meta.Put(keyPrunedBefore, binary.BigEndian.AppendUint64(nil, uint64(t)))
	})
}

// PrunedBefore returns the latest retention cut (ns): records that ended
// before it may have been deleted by PruneBefore or PruneToSize. ok is
// false when retention has deleted no records (or ran before this was
// recorded).
func (s *Store) PrunedBefore() (t int64, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyPrunedBefore); len(v) == 8 {
			t, ok = int64(binary.BigEndian.Uint64(v)), true
		}
		return nil
	})
	return t, ok, err
}

// DataSize returns the bytes the stored records occupy: the committed
// bytes of the segment files and the in-use bytes of the flows bucket's
// pages (not the database file's size, which never shrinks by itself).
func (s *Store) DataSize() (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketFlows).Stats()
		n = int64(st.LeafInuse + st.BranchInuse)
		if sb := tx.Bucket(bucketSegments); sb != nil {
			return sb.ForEach(func(k, v []byte) error {
				if m, ok := parseSegMeta(v); ok {
					n += m.committed
				}
				return nil
			})
		}
		return nil
	})
	return n, err
}

// pruneOldestSegments deletes whole segments, oldest first, until their
// bytes reach excess, and returns the chunks they held.
func (s *Store) pruneOldestSegments(excess int64) (int, int64, error) {
	n := 0
	cut := int64(math.MinInt64)
	var dead []uint64
	err := s.update(func(tx *bolt.Tx) error {
		n, dead = 0, dead[:0]
		sb, bb := tx.Bucket(bucketSegments), tx.Bucket(bucketBlocks)
		if sb == nil || bb == nil {
			return nil
		}
		var segKeys, blockKeys [][]byte
		var freed int64
		sc, bc := sb.Cursor(), bb.Cursor()
		for k, v := sc.First(); k != nil && freed < excess; k, v = sc.Next() {
			m, _ := parseSegMeta(v)
			freed += m.committed
			n += int(m.chunks)
			if m.maxLast != math.MaxInt64 {
				cut = max(cut, m.maxLast+1)
			}
			segKeys = append(segKeys, slices.Clone(k))
			dead = append(dead, binary.BigEndian.Uint64(k))
			for bk, _ := bc.Seek(k); len(bk) == 16 && bytes.Equal(bk[:8], k); bk, _ = bc.Next() {
				blockKeys = append(blockKeys, slices.Clone(bk))
			}
		}
		return deleteKeys(bb, blockKeys, sb, segKeys)
	})
	if err != nil {
		return 0, 0, err
	}
	s.unlinkSegments(dead)
	return n, cut, nil
}

// PruneToSize deletes the oldest records until DataSize is at most
// maxBytes, and returns the number of chunks deleted: first chunks in
// the flows bucket (older stores: they hold the oldest records), then
// whole segment files, oldest first.
func (s *Store) PruneToSize(maxBytes int64) (int, error) {
	total := 0
	for {
		size, err := s.DataSize()
		if err != nil {
			return total, err
		}
		excess := size - maxBytes
		if excess <= 0 {
			return total, nil
		}
		n := 0
		err = s.update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketFlows)
			c := b.Cursor()
			var freed int64
			var keys [][]byte
			for k, v := c.First(); k != nil && freed < excess && len(keys) < pruneBatch; k, v = c.Next() {
				// Page overhead is per element (16 bytes in bbolt).
				freed += int64(len(k) + len(v) + 16)
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err == nil && n == 0 {
			var cut int64
			n, cut, err = s.pruneOldestSegments(excess)
			if err == nil && n > 0 && cut != math.MinInt64 {
				err = s.notePruned(cut)
			}
		}
		total += n
		if err != nil {
			return total, fmt.Errorf("store: prune to %d bytes: %w", maxBytes, err)
		}
		if n == 0 {
			return total, nil
		}
	}
}

// CompactFile rewrites the store at path into a new file holding only
// the live pages and replaces path with it. The store must not be open.
func CompactFile(path string) error {
	src, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: compact %s: %w", path, err)
	}
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o644, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		src.Close()
		return fmt.Errorf("store: compact %s: %w", path, err)
	}
	err = bolt.Compact(dst, src, 64<<20)
	cerr := dst.Close()
	src.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: compact %s: %w", path, err)
	}
	return nil
}

// deleteKeys deletes the time-index entries blockKeys from bb and the
// segment summaries segKeys from sb.
func deleteKeys(bb *bolt.Bucket, blockKeys [][]byte, sb *bolt.Bucket, segKeys [][]byte) error {
	for _, k := range blockKeys {
		if err := bb.Delete(k); err != nil {
			return err
		}
	}
	for _, k := range segKeys {
		if err := sb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
