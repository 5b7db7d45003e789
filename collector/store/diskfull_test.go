package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/tools/peertest"
)

// TestDiskFull: on a small file system that fills up, a Put fails with
// ENOSPC and leaves no trace (the store reads exactly what was
// committed, and the failed write's bytes are given back, so the
// segment is its committed length); once space returns (a file deleted
// or retention by size) Puts store again, and a reopened store reads
// every committed record once.
func TestDiskFull(t *testing.T) {
	dir := peertest.Tmpfs(t, 4<<20)
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "full.db")
	// One segment: the failing write appends to a segment that holds
	// committed records.
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	o := Origin{Exporter: "p"}
	committed, base := 0, t0.UnixNano()
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		recs := benchRecords(5000, base+int64(i)*1e9)
		if full = s.Put(o, recs); full == nil {
			committed += len(recs)
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("filling a 4 MiB file system: %v, want ENOSPC", full)
	}
	if committed == 0 {
		t.Fatal("nothing stored before the file system filled")
	}
	t.Logf("full after %d records: %v", committed, full)
	if n := len(collect(t, s, Query{})); n != committed {
		t.Fatalf("store reads %d records after a failed Put, want the %d committed", n, committed)
	}
	// The failed write's bytes past the committed length are given back.
	segLen := func() (size, want int64) {
		t.Helper()
		s.view(func(tx *bolt.Tx) error {
			id, m, ok := lastSegment(tx)
			if !ok {
				t.Fatal("no segment")
			}
			fi, err := os.Stat(segName(SegmentDir(path), id))
			if err != nil {
				t.Fatal(err)
			}
			size, want = fi.Size(), m.committed
			return nil
		})
		return size, want
	}
	if size, want := segLen(); size != want {
		t.Fatalf("newest segment is %d bytes after the failed Put, committed %d: the failed write still holds the space", size, want)
	}

	// Space returns: the next Put stores.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	more := benchRecords(1000, base+2000e9)
	if err := s.Put(o, more); err != nil {
		t.Fatalf("Put after space returned: %v", err)
	}
	committed += len(more)

	// Fill again in small segments, then retention by size makes room.
	s.Close()
	if s, err = Open(path, &Options{SegmentSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	full = nil
	for i := 0; i < 1000 && full == nil; i++ {
		recs := benchRecords(5000, base+(3000+int64(i))*1e9)
		if full = s.Put(o, recs); full == nil {
			committed += len(recs)
		}
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("filling again: %v, want ENOSPC", full)
	}
	size, err := s.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	before := len(collect(t, s, Query{}))
	if before != committed {
		t.Fatalf("store reads %d records, want %d", before, committed)
	}
	if _, err := s.PruneToSize(size / 2); err != nil {
		t.Fatal(err)
	}
	kept := len(collect(t, s, Query{}))
	if kept >= before || kept == 0 {
		t.Fatalf("PruneToSize(%d) kept %d of %d records", size/2, kept, before)
	}
	if err := s.Put(o, more); err != nil {
		t.Fatalf("Put after retention by size: %v", err)
	}
	kept += len(more)
	if e := s.DecodeErrors(); len(e) != 0 {
		t.Fatalf("decode errors %v", e)
	}
	s.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if n := len(collect(t, s, Query{})); n != kept {
		t.Fatalf("reopened store reads %d records, want %d", n, kept)
	}
}
