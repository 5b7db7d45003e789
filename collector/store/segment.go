package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Segments (schema version 4): new records go to append-only segment
// files in the directory <path>.seg beside the database file. A segment
// file is a file header (segMagic) followed by frames, each one chunk
// (the chunk encoding of codec.go) behind a fixed header:
//
//	[0:4]   payload length (little-endian)
//	[4:8]   CRC-32C of bytes [8:32] and the payload
//	[8:16]  earliest end time of the chunk's records (ns, little-endian)
//	[16:24] latest end time of the chunk's records (ns)
//	[24:28] origin id
//	[28]    frame version (segFrameVersion)
//	[29:32] zero
//
// The database says which bytes are committed: the "segments" bucket
// holds, per segment id, its committed length and a summary of its
// records (segMeta), and the "blocks" bucket holds one entry per commit
// (segment id, offset -> end offset and the commit's time bounds): the
// time index scans use to read only the commits that can hold records
// in their range. A commit appends its frames at the segment's committed
// length, syncs the segment file, and then commits both entries (with
// the sequence sets and counters) in one bbolt transaction, so a crash
// leaves at most bytes past the committed length, which Open (for
// writing) truncates; segment files the database does not list are
// uncommitted (or pruned) and Open deletes them.

var (
	bucketSegments = []byte("segments")
	bucketBlocks   = []byte("blocks")
	// keySegCut: segment records that ended before it are pruned
	// (PruneBefore) though their segment is still on disk.
	keySegCut = []byte("segcut")
)

const (
	segMagic        = "MIRASEG1"
	segFrameHeader  = 32
	segFrameVersion = 1
	// DefaultSegmentSize is where a segment file ends when
	// Options.SegmentSize is 0.
	DefaultSegmentSize = 64 << 20
	// segMaxAge: a segment gets no commits after it is this old, so that
	// retention by age can delete whole files.
	segMaxAge = time.Hour
)

// Segment decode failure reasons, counted in Store.DecodeErrors.
const (
	// ReasonChecksum: a segment frame's CRC does not match; the chunk
	// is skipped.
	ReasonChecksum = "bad chunk checksum"
	// ReasonFrame: a segment frame's length or version is damaged; the
	// rest of that commit's block is skipped.
	ReasonFrame = "bad segment frame"
	// ReasonSegment: a segment file is missing or shorter than its
	// committed length.
	ReasonSegment = "missing segment data"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segMeta summarises one segment: the bytes committed and bounds over
// its records' end times and durations.
type segMeta struct {
	committed int64
	minLast   int64 // earliest chunk start (record end time)
	maxLast   int64
	maxDur    int64
	chunks    int64
	created   int64 // Unix ns, wall clock
}

const segMetaLen = 48

func (m *segMeta) marshal() []byte {
	b := make([]byte, 0, segMetaLen)
	for _, v := range []int64{m.committed, m.minLast, m.maxLast, m.maxDur, m.chunks, m.created} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func parseSegMeta(v []byte) (segMeta, bool) {
	if len(v) != segMetaLen {
		return segMeta{}, false
	}
	g := func(i int) int64 { return int64(binary.BigEndian.Uint64(v[8*i:])) }
	return segMeta{committed: g(0), minLast: g(1), maxLast: g(2), maxDur: g(3), chunks: g(4), created: g(5)}, true
}

// blockMeta is one commit's frames in a segment: [off, end).
type blockMeta struct {
	end     int64
	minLast int64
	maxLast int64
	maxDur  int64
	chunks  int64
}

const blockMetaLen = 40

func (m *blockMeta) marshal() []byte {
	b := make([]byte, 0, blockMetaLen)
	for _, v := range []int64{m.end, m.minLast, m.maxLast, m.maxDur, m.chunks} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func parseBlockMeta(v []byte) (blockMeta, bool) {
	if len(v) != blockMetaLen {
		return blockMeta{}, false
	}
	g := func(i int) int64 { return int64(binary.BigEndian.Uint64(v[8*i:])) }
	return blockMeta{end: g(0), minLast: g(1), maxLast: g(2), maxDur: g(3), chunks: g(4)}, true
}

func segKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func blockKey(id uint64, off int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), id), uint64(off))
}

// SegmentDir returns the directory that holds the segment files of the
// store at path.
func SegmentDir(path string) string { return path + ".seg" }

func segName(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.seg", id))
}

// parseSegName returns the id of a segment file name.
func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	return id, err == nil
}

// Remove deletes the closed store at path: its database file and its
// segment directory.
func Remove(path string) error {
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if rerr := os.RemoveAll(SegmentDir(path)); err == nil {
		err = rerr
	}
	return err
}

// appendFrameHeader reserves a frame header; finishFrame fills it once
// the payload follows it.
func appendFrameHeader(dst []byte) []byte {
	return append(dst, make([]byte, segFrameHeader)...)
}

// finishFrame fills in the frame header at fr[0:segFrameHeader], whose
// payload is fr[segFrameHeader:].
func finishFrame(fr []byte, first, last int64, origin uint32) {
	binary.LittleEndian.PutUint32(fr[0:], uint32(len(fr)-segFrameHeader))
	binary.LittleEndian.PutUint64(fr[8:], uint64(first))
	binary.LittleEndian.PutUint64(fr[16:], uint64(last))
	binary.LittleEndian.PutUint32(fr[24:], origin)
	fr[28] = segFrameVersion
	fr[29], fr[30], fr[31] = 0, 0, 0
	binary.LittleEndian.PutUint32(fr[4:], crc32.Update(crc32.Checksum(fr[8:segFrameHeader], crcTable), crcTable, fr[segFrameHeader:]))
}

// Frame is one chunk read from a segment.
type Frame struct {
	First, Last int64 // end-time bounds of the chunk's records
	Origin      uint32
	Off         int    // offset of the frame in the walked bytes
	Payload     []byte // the chunk (ChunkRecords' input)
}

// WalkFrames calls fn with each frame of b (frames laid end to end, as
// one commit writes them). A frame whose checksum or version is wrong
// is skipped (its length still frames the next); a length that runs past
// b ends the walk. Each skipped frame or cut walk is passed to bad with
// its reason (ReasonChecksum, ReasonFrame), and WalkFrames returns the
// number of them.
func WalkFrames(b []byte, fn func(f Frame), bad func(reason string)) int {
	n := 0
	for off := 0; off < len(b); {
		if len(b)-off < segFrameHeader {
			bad(ReasonFrame)
			return n + 1
		}
		h := b[off : off+segFrameHeader]
		l := int64(binary.LittleEndian.Uint32(h))
		if l > int64(len(b)-off-segFrameHeader) {
			bad(ReasonFrame)
			return n + 1
		}
		end := off + segFrameHeader + int(l)
		p := b[off+segFrameHeader : end]
		sum := crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, p)
		switch {
		case sum != binary.LittleEndian.Uint32(h[4:]):
			bad(ReasonChecksum)
			n++
		case h[28] != segFrameVersion:
			bad(ReasonFrame)
			n++
		default:
			fn(Frame{
				First:   int64(binary.LittleEndian.Uint64(h[8:])),
				Last:    int64(binary.LittleEndian.Uint64(h[16:])),
				Origin:  binary.LittleEndian.Uint32(h[24:]),
				Off:     off,
				Payload: p,
			})
		}
		off = end
	}
	return n
}

// lastSegment returns the newest segment's id and summary (ok false if
// there is none).
func lastSegment(tx *bolt.Tx) (uint64, segMeta, bool) {
	sb := tx.Bucket(bucketSegments)
	if sb == nil {
		return 0, segMeta{}, false
	}
	k, v := sb.Cursor().Last()
	if len(k) != 8 {
		return 0, segMeta{}, false
	}
	m, ok := parseSegMeta(v)
	return binary.BigEndian.Uint64(k), m, ok
}

// segWriteChunk is how many bytes of a commit's frames are built before
// they are written: a commit's frames (a second of records, megabytes)
// are built and written in pieces of about this size from one buffer,
// which stays in the CPU's cache and in the process's resident memory,
// where building them whole took a buffer of the commit's size, grown
// and first touched (a page fault per 4 KiB) again whenever commits grew.
const segWriteChunk = 256 << 10

// frameSpan is one frame of a commit, planned: records [start, end) of
// batch b (in end-time order), size bytes with the frame's header.
type frameSpan struct {
	b, start, end int
	size          int64
}

// putFrames writes the records of batches, each sorted by end time, to
// the newest segment as frames of up to maxChunkRecords records spanning
// at most maxChunkSpan, ids[i] being batches[i]'s origin id, and records
// the commit in tx (writeSegment). It returns the commit's block.
func (s *Store) putFrames(tx *bolt.Tx, batches []*Encoded, ids []uint32) (blockMeta, error) {
	plan := s.plan[:0]
	blk := blockMeta{minLast: math.MaxInt64, maxLast: math.MinInt64}
	var total int64
	for bi, b := range batches {
		b.sortWith(&s.scr)
		idx := b.idx
		blk.maxDur = max(blk.maxDur, b.maxDur)
		for start := 0; start < len(idx); {
			first := idx[start].last
			end := start + 1
			size := int64(idx[start].n)
			for end < len(idx) && end-start < maxChunkRecords && idx[end].last-first <= maxChunkSpan {
				size += int64(idx[end].n)
				end++
			}
			size += segFrameHeader + int64(chunkHeaderLen(end-start))
			plan = append(plan, frameSpan{b: bi, start: start, end: end, size: size})
			total += size
			blk.minLast = min(blk.minLast, first)
			blk.maxLast = max(blk.maxLast, idx[end-1].last)
			blk.chunks++
			start = end
		}
	}
	s.plan = plan
	err := s.writeSegment(tx, total, blk, func(write func([]byte) error) error {
		buf := s.buf[:0]
		warmed := -1
		for _, f := range plan {
			b := batches[f.b]
			if f.b != warmed {
				warmed = f.b
				s.warmSink += b.warm()
			}
			at := len(buf)
			buf = appendFrameHeader(buf)
			buf = appendChunkHeader(buf, f.end-f.start)
			buf = b.appendRecords(buf, f.start, f.end)
			finishFrame(buf[at:], b.idx[f.start].last, b.idx[f.end-1].last, ids[f.b])
			if len(buf) >= segWriteChunk {
				if err := write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		s.buf = buf[:0]
		if len(buf) == 0 {
			return nil
		}
		return write(buf)
	})
	return blk, err
}

// chunkHeaderLen is the length of appendChunkHeader's header for n
// records.
func chunkHeaderLen(n int) int {
	var b [binary.MaxVarintLen64 + 1]byte
	return len(appendChunkHeader(b[:0], n))
}

// writeSegment appends a commit's frames, size bytes that emit passes to
// its write function (in order, in as many pieces as it likes), to the
// newest segment, or to a new one when that one is full or old, syncs
// it, and records the commit (blk, whose end it sets) in tx. It runs
// inside the commit's transaction; if that fails, commitSegment undoes
// what it did to the store's open files. The caller holds s.mu, which
// guards the writer's open segment.
func (s *Store) writeSegment(tx *bolt.Tx, size int64, blk blockMeta, emit func(write func([]byte) error) error) error {
	sb, err := tx.CreateBucketIfNotExists(bucketSegments)
	if err != nil {
		return err
	}
	bb, err := tx.CreateBucketIfNotExists(bucketBlocks)
	if err != nil {
		return err
	}
	id, m, ok := lastSegment(tx)
	now := time.Now().UnixNano()
	limit := s.opts.SegmentSize
	if limit <= 0 {
		limit = DefaultSegmentSize
	}
	fresh := !ok || m.committed+size > limit && m.committed > int64(len(segMagic)) ||
		now-m.created > int64(segMaxAge) || now < m.created
	if fresh {
		seq, err := sb.NextSequence()
		if err != nil {
			return err
		}
		id = seq
		m = segMeta{committed: int64(len(segMagic)), minLast: math.MaxInt64, maxLast: math.MinInt64, created: now}
		if err := os.MkdirAll(s.segDir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(segName(s.segDir, id), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		s.closeWriterLocked()
		s.wf, s.wid, s.wnew = f, id, true
		if _, err := f.WriteAt([]byte(segMagic), 0); err != nil {
			return err
		}
	} else if s.wf == nil || s.wid != id {
		s.closeWriterLocked()
		f, err := os.OpenFile(segName(s.segDir, id), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		s.wf, s.wid = f, id
	}
	blk.end = m.committed + size
	off := m.committed
	err = emit(func(p []byte) error {
		if off+int64(len(p)) > blk.end {
			return fmt.Errorf("segment %d: commit of %d bytes writes more", id, size)
		}
		_, err := s.wf.WriteAt(p, off)
		off += int64(len(p))
		return err
	})
	if err == nil && off != blk.end {
		err = fmt.Errorf("segment %d: commit of %d bytes wrote %d", id, size, off-m.committed)
	}
	if err != nil {
		// A full disk: give back what the write took past the
		// committed length, so that smaller commits (and the store's
		// other operations) can go on; commitSegment removes a new file.
		s.truncateWriter(m.committed)
		return err
	}
	if !s.opts.NoSync {
		if err := datasync(s.wf); err != nil {
			s.truncateWriter(m.committed)
			return err
		}
		if s.wnew {
			if err := syncDir(s.segDir); err != nil {
				return err
			}
		}
	}
	if err := bb.Put(blockKey(id, m.committed), blk.marshal()); err != nil {
		return err
	}
	m.committed = blk.end
	m.minLast = min(m.minLast, blk.minLast)
	m.maxLast = max(m.maxLast, blk.maxLast)
	m.maxDur = max(m.maxDur, blk.maxDur)
	m.chunks += blk.chunks
	return sb.Put(segKey(id), m.marshal())
}

// truncateWriter cuts the open segment back to n bytes after a failed
// write (the transaction is then rolled back: nothing past n is
// committed).
func (s *Store) truncateWriter(n int64) {
	if s.wf != nil && !s.wnew {
		s.wf.Truncate(n)
	}
}

// commitSegment notes that the transaction writeSegment ran in was
// committed (ok) or not: a segment file it created for it is removed.
func (s *Store) commitSegment(ok bool) {
	if !s.wnew {
		return
	}
	s.wnew = false
	if ok {
		return
	}
	f, id := s.wf, s.wid
	s.wf, s.wid = nil, 0
	if f != nil {
		f.Close()
		os.Remove(segName(s.segDir, id))
	}
}

func (s *Store) closeWriterLocked() {
	if s.wf != nil {
		s.wf.Close()
	}
	s.wf, s.wid, s.wnew = nil, 0, false
}

// recoverSegments runs when a store opens for writing: it truncates each
// listed segment to its committed length and deletes segment files the
// database does not list (a crash between creating one and committing
// it, or a prune whose unlink did not happen).
func (s *Store) recoverSegments(tx *bolt.Tx) error {
	ents, err := os.ReadDir(s.segDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sb := tx.Bucket(bucketSegments)
	for _, e := range ents {
		id, ok := parseSegName(e.Name())
		if !ok {
			continue
		}
		name := filepath.Join(s.segDir, e.Name())
		var v []byte
		if sb != nil {
			v = sb.Get(segKey(id))
		}
		m, listed := parseSegMeta(v)
		if !listed {
			if err := os.Remove(name); err != nil {
				return err
			}
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return err
		}
		if fi.Size() > m.committed {
			if err := os.Truncate(name, m.committed); err != nil {
				return err
			}
		}
	}
	return nil
}

// unlinkSegments deletes pruned segment files now, or when the scans
// that may be reading them end.
func (s *Store) unlinkSegments(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		if s.wf != nil && s.wid == id {
			s.closeWriterLocked()
		}
	}
	s.mu.Unlock()
	s.segmu.Lock()
	defer s.segmu.Unlock()
	for _, id := range ids {
		s.doomed = append(s.doomed, segName(s.segDir, id))
	}
	if s.scans == 0 {
		s.unlinkDoomedLocked()
	}
}

func (s *Store) unlinkDoomedLocked() {
	for _, name := range s.doomed {
		os.Remove(name)
	}
	s.doomed = s.doomed[:0]
}

func (s *Store) scanStart() {
	s.segmu.Lock()
	s.scans++
	s.segmu.Unlock()
}

func (s *Store) scanEnd() {
	s.segmu.Lock()
	s.scans--
	if s.scans == 0 {
		s.unlinkDoomedLocked()
	}
	s.segmu.Unlock()
}

// segView is one segment's committed bytes, mapped for a scan.
type segView struct {
	b     []byte
	unmap func()
}

// openSegment maps the first n bytes of segment id for reading, or as
// many as the file holds (a missing file maps none): the caller counts
// what is missing.
func (s *Store) openSegment(id uint64, n int64) (segView, error) {
	f, err := os.Open(segName(s.segDir, id))
	if errors.Is(err, os.ErrNotExist) {
		return segView{unmap: func() {}}, nil
	}
	if err != nil {
		return segView{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return segView{}, err
	}
	b, unmap, err := mapFile(f, int(min(n, fi.Size())))
	if err != nil {
		return segView{}, fmt.Errorf("map segment %s: %w", segName(s.segDir, id), err)
	}
	return segView{b: b, unmap: unmap}, nil
}
