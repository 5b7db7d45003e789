package store

import (
	"bytes"
	"fmt"
	"os"
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
// ended before cutoff. It returns the number of chunks deleted. Space is
// reused by later writes; CompactFile gives it back to the file system.
func (s *Store) PruneBefore(cutoff time.Time) (int, error) {
	limit := timeKey(nil, cutoff.UnixNano()-maxChunkSpan)
	total := 0
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

// DataSize returns the bytes the stored records occupy in the database
// pages (not the file size, which never shrinks by itself).
func (s *Store) DataSize() (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketFlows).Stats()
		n = int64(st.LeafInuse + st.BranchInuse)
		return nil
	})
	return n, err
}

// PruneToSize deletes the oldest records until DataSize is at most
// maxBytes, and returns the number of chunks deleted.
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
