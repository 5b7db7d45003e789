package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/flow"
)

// putLegacy stores recs as a store of schema version 3 did: sorted by
// end time, cut into chunks keyed by their earliest end time in the
// flows bucket (with meta maxspan and maxdur).
func putLegacy(t testing.TB, s *Store, o Origin, recs []flow.Record) {
	t.Helper()
	e := &Encoded{Origin: o}
	e.AddAll(recs)
	e.sort()
	err := s.update(func(tx *bolt.Tx) error {
		id, err := originID(tx, o)
		if err != nil {
			return err
		}
		s.omu.Lock()
		s.origins[o], s.byID[id] = id, o
		s.omu.Unlock()
		fb := tx.Bucket(bucketFlows)
		seq := fb.Sequence()
		meta := tx.Bucket(bucketMeta)
		maxSpan := storedInt(meta, keyMaxSpan)
		for start := 0; start < len(e.idx); {
			first := e.idx[start].last
			end := start + 1
			for end < len(e.idx) && end-start < maxChunkRecords && e.idx[end].last-first <= maxChunkSpan {
				end++
			}
			maxSpan = max(maxSpan, e.idx[end-1].last-first)
			seq++
			k := timeKey(nil, first)
			k = binary.BigEndian.AppendUint32(k, id)
			k = binary.BigEndian.AppendUint64(k, seq)
			v := appendChunkHeader(nil, end-start)
			for _, x := range e.idx[start:end] {
				v = append(v, e.buf[x.off:x.off+x.n]...)
			}
			if err := fb.Put(k, v); err != nil {
				return err
			}
			start = end
		}
		if err := fb.SetSequence(seq); err != nil {
			return err
		}
		if err := meta.Put(keyMaxSpan, binary.BigEndian.AppendUint64(nil, uint64(maxSpan))); err != nil {
			return err
		}
		return meta.Put(keyMaxDur, binary.BigEndian.AppendUint64(nil, uint64(max(e.maxDur, storedInt(meta, keyMaxDur)))))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// makeSchema3 turns s's file into what a schema 3 build wrote: no
// segment buckets, version 3.
func makeSchema3(t testing.TB, s *Store) {
	t.Helper()
	err := s.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSegments, bucketBlocks} {
			if tx.Bucket(b) != nil {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 3))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func segFiles(t testing.TB, path string) []string {
	t.Helper()
	ents, err := os.ReadDir(SegmentDir(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// endOrder sorts fs by end time (stable), the order a scan gives
// records that lie in different chunks more than a chunk span apart.
func endOrder(fs []StoredFlow) []uint16 {
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b StoredFlow) int { return int(max(min(a.Record.Last-b.Record.Last, 1), -1)) })
	return sports(fs)
}

// TestOldStoreRead: a schema 3 store (records in the flows bucket) is
// read read-only as it is, and opened for writing becomes schema 4: new
// records go to segments, and scans return both, merged in end-time
// order, by every time field.
func TestOldStoreRead(t *testing.T) {
	s, path := openTemp(t, &Options{NoSync: true})
	o := Origin{Exporter: "old", Domain: 1}
	var old []flow.Record
	for i := range 200 {
		old = append(old, rec(uint16(i), float64(i*10), float64(i*10+i%5)))
	}
	putLegacy(t, s, o, old)
	makeSchema3(t, s)
	s.Close()
	if got := segFiles(t, path); len(got) != 0 {
		t.Fatalf("segment files %v in a schema 3 store", got)
	}

	ro, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ro, Query{}); len(got) != 200 || !reflect.DeepEqual(sports(got), endOrder(got)) {
		t.Fatalf("read-only schema 3: %d records, end-time order %v", len(got), reflect.DeepEqual(sports(got), endOrder(got)))
	}
	ro.Close()

	w, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var ver uint32
	w.view(func(tx *bolt.Tx) error {
		ver = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if ver != SchemaVersion {
		t.Fatalf("schema %d after opening for writing, want %d", ver, SchemaVersion)
	}
	// New records between and after the old ones, from another origin too.
	var fresh []flow.Record
	for i := range 200 {
		fresh = append(fresh, rec(uint16(1000+i), float64(i*10+5), float64(i*10+5+i%3)))
	}
	if err := w.Put(o, fresh[:100]); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(Origin{Exporter: "new"}, fresh[100:]); err != nil {
		t.Fatal(err)
	}
	if len(segFiles(t, path)) == 0 {
		t.Fatal("no segment file after Put")
	}
	all := append(slices.Clone(old), fresh...)
	got := collect(t, w, Query{})
	if len(got) != 400 {
		t.Fatalf("%d records, want 400", len(got))
	}
	if !reflect.DeepEqual(sports(got), endOrder(got)) {
		t.Fatalf("old and new records not merged in end-time order: %v", sports(got))
	}
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	for _, field := range []TimeField{Overlap, ByEnd, ByStart} {
		for from := -5.0; from < 2100; from += 97.5 {
			q := Query{From: at(from), To: at(from + 333), Field: field}
			var want []uint16
			for _, r := range all {
				f, l, lo, hi := r.First, r.Last, q.From.UnixNano(), q.To.UnixNano()
				in := l >= lo && f < hi
				switch field {
				case ByEnd:
					in = l >= lo && l < hi
				case ByStart:
					in = f >= lo && f < hi
				}
				if in {
					want = append(want, r.Sport)
				}
			}
			g := sports(collect(t, w, q))
			slices.Sort(g)
			slices.Sort(want)
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("field %d from %v: got %v, want %v", field, from, g, want)
			}
		}
	}
	// Retention reaches both: the old chunks and the segment's.
	n, err := w.PruneBefore(at(1000))
	if err != nil || n == 0 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	for _, f := range collect(t, w, Query{}) {
		if f.Record.Last < at(999).UnixNano() {
			t.Fatalf("record %d ending at %v survived the prune", f.Record.Sport, time.Unix(0, f.Record.Last).Sub(t0))
		}
	}
}

// TestCrashRecovery: bytes past a segment's committed length (a commit
// whose transaction never committed: valid frames or a torn write) are
// never read, and Open truncates them; a segment file the database does
// not list (created by a commit that did not finish) is deleted; the
// next commits append after the committed bytes.
func TestCrashRecovery(t *testing.T) {
	s, path := openTemp(t, &Options{NoSync: true})
	o := Origin{Exporter: "p"}
	if err := s.Put(o, benchRecords(300, t0.UnixNano())); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, path)
	if len(files) != 1 {
		t.Fatalf("segment files %v, want one", files)
	}
	seg := filepath.Join(SegmentDir(path), files[0])
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	committed := fi.Size()
	// An uncommitted commit: valid frames (as the write before a crash
	// left them) and then half a frame.
	var frames []byte
	at := len(frames)
	frames = appendFrameHeader(frames)
	frames = appendChunkHeader(frames, 1)
	r := rec(9999, 0, 1)
	frames = appendChunkRecord(frames, &r)
	finishFrame(frames[at:], r.Last, r.Last, 1)
	frames = append(frames, frames[:20]...)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(frames); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A segment file no commit listed.
	stray := segName(SegmentDir(path), 77)
	if err := os.WriteFile(stray, append([]byte(segMagic), frames...), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, s, Query{})); n != 300 {
		t.Fatalf("live store reads %d records with an uncommitted tail, want 300", n)
	}
	s.Close()

	ro, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, ro, Query{})); n != 300 {
		t.Fatalf("read-only open reads %d records, want 300", n)
	}
	ro.Close()
	if fi, _ := os.Stat(seg); fi.Size() == committed {
		t.Fatal("read-only open truncated the segment")
	}

	w, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if fi, _ := os.Stat(seg); fi.Size() != committed {
		t.Fatalf("segment is %d bytes after Open, want the committed %d", fi.Size(), committed)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unlisted segment file survived Open: %v", err)
	}
	if err := w.Put(o, benchRecords(50, t0.UnixNano()+1e9)); err != nil {
		t.Fatal(err)
	}
	got := collect(t, w, Query{})
	if len(got) != 350 {
		t.Fatalf("%d records after recovery and a commit, want 350", len(got))
	}
	for _, f := range got {
		if f.Record.Sport == 9999 {
			t.Fatal("uncommitted record read")
		}
	}
	if e := w.DecodeErrors(); len(e) != 0 {
		t.Fatalf("decode errors %v", e)
	}
}

// TestCommitFailureLeavesNoTrace: a commit that cannot get the file
// (Release, a reader holds it) leaves nothing a scan sees, and the
// retried commit stores the records once.
func TestCommitFailureLeavesNoTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.db")
	w, err := Open(path, &Options{Release: true, Timeout: 50 * time.Millisecond, NoSync: true, SegmentSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o := Origin{Exporter: "p"}
	if err := w.Put(o, benchRecords(10, t0.UnixNano())); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(o, benchRecords(10, t0.UnixNano())); !errors.Is(err, ErrLocked) {
		t.Fatalf("Put while a reader holds the file: %v", err)
	}
	r.Close()
	if err := w.Put(o, benchRecords(10, t0.UnixNano())); err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, w, Query{})); n != 20 {
		t.Fatalf("%d records, want 20", n)
	}
	// SegmentSize 1: every commit starts a segment; no stray ones.
	if files := segFiles(t, path); len(files) != 2 {
		t.Fatalf("segment files %v, want 2", files)
	}
}

// TestSegmentDamageCounted: a flipped byte in a chunk loses that chunk
// (checksum), counted; a damaged frame length loses the rest of that
// commit's frames, counted once; a missing segment file is counted;
// nothing panics and other commits read as before.
func TestSegmentDamageCounted(t *testing.T) {
	s, path := openTemp(t, &Options{NoSync: true})
	o := Origin{Exporter: "p"}
	// Commit 1: chunks of records 1-3 (one chunk) and 4 (another).
	if err := s.Put(o, []flow.Record{rec(1, 0, 1), rec(2, 0, 1.1), rec(3, 0, 1.2), rec(4, 0, 5)}); err != nil {
		t.Fatal(err)
	}
	// Commit 2: record 5.
	if err := s.Put(o, []flow.Record{rec(5, 0, 9)}); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(SegmentDir(path), segFiles(t, path)[0])
	damage := func(f func(b []byte)) {
		t.Helper()
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		f(b)
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first := len(segMagic)
	damage(func(b []byte) { b[first+segFrameHeader+3] ^= 0x40 })
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{4, 5}) {
		t.Errorf("flipped byte: got %v, want [4 5]", got)
	}
	damage(func(b []byte) { binary.LittleEndian.PutUint32(b[first:], 1<<30) })
	if got := sports(collect(t, s, Query{})); !reflect.DeepEqual(got, []uint16{5}) {
		t.Errorf("bad length: got %v, want [5]", got)
	}
	want := map[string]uint64{ReasonChecksum: 1, ReasonFrame: 1}
	if got := s.DecodeErrors(); !reflect.DeepEqual(got, want) {
		t.Errorf("decode errors %v, want %v", got, want)
	}
	// A damaged summary (a negative committed length) is counted, not
	// mapped.
	setCommitted := func(c int64) (was int64) {
		t.Helper()
		err := s.update(func(tx *bolt.Tx) error {
			sb := tx.Bucket(bucketSegments)
			k, v := sb.Cursor().First()
			m, _ := parseSegMeta(v)
			was, m.committed = m.committed, c
			return sb.Put(slices.Clone(k), m.marshal())
		})
		if err != nil {
			t.Fatal(err)
		}
		return was
	}
	was := setCommitted(-5)
	if got := collect(t, s, Query{}); len(got) != 0 || s.DecodeErrors()[ReasonBadKey] != 1 {
		t.Errorf("damaged segment summary: %d records, errors %v", len(got), s.DecodeErrors())
	}
	setCommitted(was)
	if err := os.Remove(seg); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, s, Query{}); len(got) != 0 {
		t.Errorf("%d records from a deleted segment", len(got))
	}
	if got := s.DecodeErrors()[ReasonSegment]; got != 2 {
		t.Errorf("missing segment counted %d times, want 2 (one per commit)", got)
	}
}

// TestRetentionAcrossSegments: PruneBefore deletes the files of
// segments whose records all ended before the cutoff and hides older
// chunks of the segment it cuts; PruneToSize deletes whole segments,
// oldest first; a scan under way keeps reading a segment pruned meanwhile
// (its file goes when the scan ends).
func TestRetentionAcrossSegments(t *testing.T) {
	s, path := openTemp(t, &Options{NoSync: true, SegmentSize: 100 << 10, InitialMmapSize: 16 << 20})
	o := Origin{Exporter: "a"}
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for h := range 6 {
		// Two commits per hour, each ~40 KiB: a segment an hour.
		recs := hourRecords(1000, start.Add(time.Duration(h)*time.Hour))
		for _, part := range [][]flow.Record{recs[:500], recs[500:]} {
			if err := s.Put(o, part); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := segFiles(t, path)
	if len(files) != 6 {
		t.Fatalf("%d segment files, want 6 (one per hour): %v", len(files), files)
	}
	cutoff := start.Add(2*time.Hour + 15*time.Minute)
	n, err := s.PruneBefore(cutoff)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, Query{})
	for _, f := range got {
		if f.Record.Last < cutoff.Add(-time.Duration(maxChunkSpan)).UnixNano() {
			t.Fatalf("record ending %v survived", time.Unix(0, f.Record.Last).UTC())
		}
	}
	if kept := len(got); kept < 3750 || kept > 3752 {
		t.Fatalf("kept %d records, want 3750 (+ a chunk's straddlers)", kept)
	}
	// 2 hours of chunks whole, a quarter of the third: 64-record chunks
	// of 1000 records an hour at 3.6 s apart: each record a chunk.
	if n != 2250 {
		t.Errorf("PruneBefore says %d chunks, want 2250", n)
	}
	if files := segFiles(t, path); len(files) != 4 {
		t.Fatalf("segment files after PruneBefore: %v, want the last 4", files)
	}
	// Pruning again at the same cutoff deletes nothing more.
	if n, err := s.PruneBefore(cutoff); err != nil || n != 0 {
		t.Fatalf("second prune: %d, %v", n, err)
	}

	// A scan that is reading while its segment is pruned to size.
	size, err := s.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	// (Pruning runs beside the scan, not in its callback, which must not
	// write; the map is big enough that the prune need not remap.)
	started, release, scanned := make(chan struct{}), make(chan struct{}), make(chan error)
	seen := 0
	go func() {
		scanned <- s.Flows(Query{}, func(f StoredFlow) error {
			seen++
			if seen == 1 {
				close(started)
				<-release
			}
			return nil
		})
	}()
	<-started
	pruned, perr := s.PruneToSize(size / 2)
	during := segFiles(t, path)
	close(release) // before any Fatal: Close waits for the scan
	if err := <-scanned; err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	if len(during) != 4 {
		t.Fatalf("segment files unlinked under a scan: %v", during)
	}
	if seen != len(got) || pruned == 0 {
		t.Fatalf("scan under prune saw %d of %d; pruned %d chunks", seen, len(got), pruned)
	}
	if files := segFiles(t, path); len(files) != 2 {
		t.Fatalf("segment files after PruneToSize(half) and the scan: %v, want 2", files)
	}
	after, _ := s.DataSize()
	if after > size/2 {
		t.Fatalf("data %d after pruning to %d", after, size/2)
	}
	for _, f := range collect(t, s, Query{}) {
		if f.Record.Last < start.Add(4*time.Hour).UnixNano() {
			t.Fatalf("record of hour %v kept while newer segments went", time.Unix(0, f.Record.Last).UTC())
		}
	}
	// Writing goes on after the newest segment went.
	if _, err := s.PruneToSize(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(o, hourRecords(10, start.Add(7*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, s, Query{})); n != 10 {
		t.Fatalf("%d records after pruning all and a commit, want 10", n)
	}
	// CompactFile rewrites the database file; the segments it indexes
	// stay readable, and writing goes on.
	s.Close()
	if err := CompactFile(path); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Put(o, hourRecords(5, start.Add(8*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, s2, Query{})); n != 15 {
		t.Fatalf("%d records after CompactFile and a commit, want 15", n)
	}
}

// TestReleaseReadersWhileWriting: while a releasing writer commits,
// readers opening the store (as mira report does) see whole commits only,
// never fewer records than before, and the writer retries its batch when
// a reader holds the file.
func TestReleaseReadersWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.db")
	w, err := Open(path, &Options{Release: true, Timeout: 20 * time.Millisecond, NoSync: true, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const commits, per = 40, 137
	var wg sync.WaitGroup
	var werr error
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for c := 0; c < commits; {
			err := w.Put(Origin{Exporter: "p"}, benchRecords(per, t0.UnixNano()+int64(c)*1e9))
			if errors.Is(err, ErrLocked) {
				continue // keeps its batch, as the collector does
			}
			if err != nil {
				werr = err
				return
			}
			c++
			if c%10 == 0 {
				if _, err := w.PruneBefore(t0.Add(time.Duration(c-20) * time.Second)); err != nil && !errors.Is(err, ErrLocked) {
					werr = err
					return
				}
			}
		}
	}()
	reads, last := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		r, err := Open(path, &Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		n := len(collect(t, r, Query{}))
		r.Close()
		if n%per != 0 {
			t.Fatalf("reader saw %d records: not whole commits of %d", n, per)
		}
		if e := r.DecodeErrors(); len(e) != 0 {
			t.Fatalf("reader decode errors %v", e)
		}
		last = n
		reads++
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if reads < 2 || last == 0 {
		t.Fatalf("%d reads, last saw %d records", reads, last)
	}
}

func FuzzWalkFrames(f *testing.F) {
	var b []byte
	for i, recs := range [][]flow.Record{sampleRecords(), appRecords()} {
		at := len(b)
		b = appendFrameHeader(b)
		b = appendChunkHeader(b, len(recs))
		for j := range recs {
			b = appendChunkRecord(b, &recs[j])
		}
		finishFrame(b[at:], int64(i), int64(i+1), uint32(i))
	}
	f.Add(b)
	f.Add(b[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var reasons []string
		frames := 0
		bad := WalkFrames(b, func(fr Frame) {
			frames++
			if fr.Off < 0 || fr.Off+segFrameHeader+len(fr.Payload) > len(b) {
				t.Fatalf("frame at %d of %d bytes runs past the input", fr.Off, len(b))
			}
			ChunkRecords(fr.Payload, func(rb []byte) {
				var r flow.Record
				DecodeRecord(rb, &r) // must not panic
			})
		}, func(reason string) { reasons = append(reasons, reason) })
		if bad != len(reasons) {
			t.Fatalf("WalkFrames returned %d bad, reported %d", bad, len(reasons))
		}
		for _, r := range reasons {
			if r != ReasonChecksum && r != ReasonFrame {
				t.Fatalf("reason %q", r)
			}
		}
		if len(b) > 0 && frames == 0 && bad == 0 {
			t.Fatalf("%d bytes: no frame and no error", len(b))
		}
	})
}

// TestScanLetsWriterIn: a releasing reader's scan of segments holds the
// file only while it reads the index, so the releasing writer commits
// while the reader's callback runs (mira report over a live store no
// longer holds mira-collector's commits back for the whole report); with
// chunks of an older store in range, the scan holds it as before.
func TestScanLetsWriterIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.db")
	w, err := Open(path, &Options{Release: true, Timeout: 50 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o := Origin{Exporter: "p"}
	if err := w.Put(o, benchRecords(100, t0.UnixNano())); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, &Options{Release: true, ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	scan := func() (seen int, putErr error) {
		err := r.Flows(Query{}, func(StoredFlow) error {
			if seen++; seen == 1 {
				putErr = w.Put(o, benchRecords(10, t0.UnixNano()))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen, putErr
	}
	if seen, err := scan(); err != nil || seen != 100 {
		t.Fatalf("commit during a segment scan: %v (scan saw %d, want the 100 it started with)", err, seen)
	}
	putLegacy(t, w, o, benchRecords(5, t0.UnixNano()))
	if seen, err := scan(); !errors.Is(err, ErrLocked) || seen != 115 {
		t.Fatalf("commit during a scan of flows-bucket chunks: %v, saw %d; want ErrLocked, 115", err, seen)
	}
}

// TestCommitInPieces: a commit far larger than segWriteChunk, written in
// pieces, leaves the segment byte for byte what building its frames
// whole gives (the layout before the pieces), and reads back whole.
func TestCommitInPieces(t *testing.T) {
	s, path := openTemp(t, nil)
	var batches []*Encoded
	n := 0
	for i, o := range []Origin{{Exporter: "a"}, {Exporter: "b", Domain: 7}, {Exporter: "c"}} {
		recs := benchRecords(12000, t0.UnixNano()+int64(i)*3e9)
		// Out of end-time order, so that the commit sorts.
		for j := range recs {
			k := (j * 7919) % len(recs)
			recs[j], recs[k] = recs[k], recs[j]
		}
		e := &Encoded{Origin: o}
		e.AddAll(recs)
		batches = append(batches, e)
		n += len(recs)
	}
	if err := s.PutEncoded(batches); err != nil {
		t.Fatal(err)
	}
	// The frames built whole, from the batches as the commit sorted them
	// (origin ids 1, 2, 3 in a new store).
	want := []byte(segMagic)
	for bi, b := range batches {
		for start := 0; start < len(b.idx); {
			first := b.idx[start].last
			end := start + 1
			for end < len(b.idx) && end-start < maxChunkRecords && b.idx[end].last-first <= maxChunkSpan {
				end++
			}
			at := len(want)
			want = appendFrameHeader(want)
			want = appendChunkHeader(want, end-start)
			for _, x := range b.idx[start:end] {
				want = append(want, b.buf[x.off:x.off+x.n]...)
			}
			finishFrame(want[at:], first, b.idx[end-1].last, uint32(bi+1))
			start = end
		}
	}
	if len(want) < 4*segWriteChunk {
		t.Fatalf("the commit is %d bytes, not several pieces of %d", len(want), segWriteChunk)
	}
	files := segFiles(t, path)
	if len(files) != 1 {
		t.Fatalf("segment files %v, want one", files)
	}
	got, err := os.ReadFile(filepath.Join(SegmentDir(path), files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("segment of %d bytes differs from the frames built whole (%d bytes) at byte %d", len(got), len(want), i)
	}
	if fs := collect(t, s, Query{}); len(fs) != n {
		t.Fatalf("%d records read back, want %d", len(fs), n)
	}
	if e := s.DecodeErrors(); len(e) != 0 {
		t.Fatalf("decode errors %v", e)
	}
}
