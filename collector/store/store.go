package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mira-project/mira/flow"
)

// SchemaVersion is the layout version of the database this package writes.
// Open refuses files with a newer version, reads older ones, and marks
// an older file it opens for writing as this version.
//
//	1: flows, origins, meta (one merged set of names for every origin)
//	2: names per origin ("names" bucket, see NameAnnouncement); the
//	   merged names of version 1 still name the origins that have none
//	3: rollups ("rollup1m", "rollup1h" buckets, meta "rollup"; see
//	   rollup.go): an older build refuses the file, since writing
//	   records without maintaining the rollups would make them wrong
//	4: new records go to append-only segment files (<path>.seg, see
//	   segment.go) indexed by the "segments" and "blocks" buckets;
//	   chunks in the "flows" bucket (versions 1-3) are still read and
//	   pruned, never written: an older build refuses the file, since it
//	   would not see the records in segments
const SchemaVersion = 4

var (
	bucketMeta    = []byte("meta")
	bucketFlows   = []byte("flows")
	bucketOrigins = []byte("origins")

	keySchema  = []byte("schema")
	keyMaxDur  = []byte("maxdur")
	keyMaxSpan = []byte("maxspan")
	keyStats   = []byte("stats")
)

const keyLen = 20

// Errors callers branch on.
var (
	// ErrNewerSchema: the file was written by a newer MIRA.
	ErrNewerSchema = errors.New("database schema is newer than this build supports")
	// ErrNotStore: the file is a bbolt database but not a MIRA flow store.
	ErrNotStore = errors.New("not a mira flow store")
	// ErrLocked: another process holds the database open for writing.
	ErrLocked = errors.New("database is locked by another process")
	// ErrStop may be returned by a Flows callback to end the scan early;
	// Flows then returns nil.
	ErrStop = errors.New("stop scan")
)

// Options tune Open. A nil *Options means the defaults.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means 1 s.
	Timeout time.Duration
	// ReadOnly opens an existing store for reading (shared lock); the file
	// must exist.
	ReadOnly bool
	// NoSync skips fsync on commit: faster, but a crash can lose or
	// corrupt committed batches. For tests and benchmarks only.
	NoSync bool
	// InitialMmapSize lets readers run without blocking a writer that
	// grows the file up to this size.
	InitialMmapSize int
	// Release closes the file whenever no operation is using it and
	// reopens it for the next one (waiting up to Timeout for the lock).
	// A long-running writer (mira-collector) sets it so that other
	// processes (mira report, mira flows) can open the file between its
	// commits; an operation that cannot get the lock fails with ErrLocked.
	Release bool
	// SegmentSize is the size after which new records go to a new
	// segment file; 0 means DefaultSegmentSize. Retention deletes whole
	// segments, so it is also how finely PruneToSize frees space.
	SegmentSize int64
}

// Origin says where records came from: the exporter (as the collector names
// it, for example "192.0.2.1:4739" or a probe name) and its IPFIX
// observation domain.
type Origin struct {
	Exporter string
	Domain   uint32
}

// StoredFlow is one record read back from the store.
type StoredFlow struct {
	Origin Origin
	Record flow.Record
}

// TimeField selects which flow timestamps a Query's range applies to.
type TimeField uint8

// Time fields.
const (
	// Overlap selects flows active at some time in [From, To):
	// First < To and Last >= From.
	Overlap TimeField = iota
	// ByEnd selects flows whose Last is in [From, To).
	ByEnd
	// ByStart selects flows whose First is in [From, To).
	ByStart
)

// Query selects stored flows. The zero Query selects everything.
type Query struct {
	// From and To bound the time range, half-open [From, To); a zero
	// value leaves that side unbounded.
	From, To time.Time
	Field    TimeField
	// Exporter, when not empty, keeps only records of that exporter.
	Exporter string
	// Domain keeps only records of that observation domain when HasDomain
	// is set.
	Domain    uint32
	HasDomain bool
}

// Stats are collector counters kept in the store so that reports can show
// them. Counters are totals since the store was created.
type Stats struct {
	// Messages and Records count IPFIX messages and data records received.
	Messages uint64 `json:"messages"`
	Records  uint64 `json:"records"`
	// Lost counts records that exporters' sequence numbers show missing.
	Lost uint64 `json:"lost"`
	// SocketDrops counts datagrams the kernel dropped on the collector's
	// UDP sockets (receive buffer full): lost without sequence-number
	// evidence when every datagram of a domain was dropped.
	SocketDrops uint64 `json:"socket_drops,omitempty"`
	// Dropped counts records the collector received but dropped because
	// the store stayed unavailable while too many records waited.
	Dropped uint64 `json:"dropped,omitempty"`
	// Malformed counts messages or sets the collector rejected, by reason.
	Malformed map[string]uint64 `json:"malformed,omitempty"`
	// Evicted counts collector state dropped to stay within its limits,
	// by kind: "templates", "templates-expired", "domains", "exporters".
	Evicted map[string]uint64 `json:"evicted,omitempty"`
	// DecodeErrors counts packets the probes could not decode, by reason,
	// as forwarded in their options records.
	DecodeErrors map[string]uint64 `json:"decode_errors,omitempty"`
	// Updated is when the counters were last written.
	Updated time.Time `json:"updated"`
}

// Store is an open flow store. Its methods are safe for concurrent use.
type Store struct {
	path  string
	bopts bolt.Options
	opts  Options

	// dbmu guards db and users: with Options.Release the file is open
	// only while users > 0.
	dbmu  sync.Mutex
	db    *bolt.DB
	users int

	// mu serialises Put so that the write buffers can be reused; it
	// also guards the segment the writer has open.
	mu  sync.Mutex
	buf []byte
	scr sortScratch // the commits' sorts'
	// warmSink keeps Encoded.warm's reads from being left out.
	warmSink byte
	ids      []uint32
	plan     []frameSpan
	wf       *os.File // newest segment, open for appending
	wid      uint64   // its id
	wnew     bool     // created by the commit under way

	segDir string
	// segmu guards scans (running scans, which may read segments) and
	// doomed (files of pruned segments to delete when scans is 0).
	segmu  sync.Mutex
	scans  int
	doomed []string

	// omu guards the origin cache.
	omu     sync.RWMutex
	origins map[Origin]uint32
	byID    map[uint32]Origin

	emu        sync.Mutex
	decodeErrs map[string]uint64
}

// maxChunkSpan bounds the end times within one chunk, so that a scan
// seeks at most this far before its start.
const maxChunkSpan = int64(time.Second)

// Open opens or creates the store at path.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	s := &Store{
		path:   path,
		segDir: SegmentDir(path),
		opts:   o,
		bopts: bolt.Options{
			Timeout:         o.Timeout,
			ReadOnly:        o.ReadOnly,
			NoSync:          o.NoSync,
			InitialMmapSize: o.InitialMmapSize,
			FreelistType:    bolt.FreelistMapType,
		},
		origins:    make(map[Origin]uint32),
		byID:       make(map[uint32]Origin),
		decodeErrs: make(map[string]uint64),
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	err := s.init(o.ReadOnly)
	s.release()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// acquire opens the file if it is not open and counts one more user.
func (s *Store) acquire() error {
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if s.db == nil {
		db, err := bolt.Open(s.path, 0o644, &s.bopts)
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("store: open %s: %w (waited %v)", s.path, ErrLocked, s.opts.Timeout)
		}
		if err != nil {
			return fmt.Errorf("store: open %s: %w", s.path, err)
		}
		s.db = db
	}
	s.users++
	return nil
}

// release ends a use; with Options.Release the last user closes the file.
func (s *Store) release() error {
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	s.users--
	if s.users > 0 || !s.opts.Release || s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// update runs fn in a read-write transaction.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	err := s.db.Update(fn)
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	err := s.db.View(fn)
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

func (s *Store) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return ErrNotStore
		}
		v := meta.Get(keySchema)
		if len(v) != 4 {
			return ErrNotStore
		}
		if ver := binary.BigEndian.Uint32(v); ver > SchemaVersion {
			return fmt.Errorf("%w: file has version %d, this build reads up to %d", ErrNewerSchema, ver, SchemaVersion)
		}
		if tx.Bucket(bucketFlows) == nil || tx.Bucket(bucketOrigins) == nil {
			return ErrNotStore
		}
		return s.loadOrigins(tx)
	}
	if readOnly {
		return s.db.View(check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			// A new file (or one with foreign buckets, which check rejects).
			empty := true
			tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return ErrNotStore
			}
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketFlows); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketOrigins); err != nil {
				return err
			}
		}
		if err := check(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if binary.BigEndian.Uint32(meta.Get(keySchema)) < SchemaVersion {
			// Older layouts are subsets of this one: only the version
			// changes, so that an older build refuses what it would
			// misread (names per origin, records in segments).
			if err := meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return err
			}
		}
		return s.recoverSegments(tx)
	})
}

// origins bucket: key = domain (4 bytes) + exporter, value = id (4 bytes).
func originKey(o Origin) []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(o.Exporter)), o.Domain)
	return append(k, o.Exporter...)
}

func (s *Store) loadOrigins(tx *bolt.Tx) error {
	return tx.Bucket(bucketOrigins).ForEach(func(k, v []byte) error {
		if len(k) < 4 || len(v) != 4 {
			return fmt.Errorf("%w: bad origin entry %x", ErrNotStore, k)
		}
		o := Origin{Domain: binary.BigEndian.Uint32(k), Exporter: string(k[4:])}
		id := binary.BigEndian.Uint32(v)
		s.origins[o] = id
		s.byID[id] = o
		return nil
	})
}

// Path returns the file name the store was opened with.
func (s *Store) Path() string { return s.path }

// Close closes the database file.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closeWriterLocked()
	s.mu.Unlock()
	s.dbmu.Lock()
	defer s.dbmu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// timeKey maps a ns timestamp to 8 bytes whose byte order is time order.
func timeKey(dst []byte, ns int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ns)^(1<<63))
}

func keyTime(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
}

// Batch is a set of records from one origin, for PutBatches.
type Batch struct {
	Origin  Origin
	Records []flow.Record
}

// Put stores recs as coming from o, in one transaction, and returns after
// the transaction is committed (and synced unless Options.NoSync). The
// records are not retained. Larger batches amortise the sync: see
// BenchmarkPut.
func (s *Store) Put(o Origin, recs []flow.Record) error {
	return s.PutBatches([]Batch{{Origin: o, Records: recs}})
}

// PutBatches stores several origins' records in one transaction (one
// sync), as Put does for one.
func (s *Store) PutBatches(batches []Batch) error {
	encs := make([]*Encoded, len(batches))
	for i, b := range batches {
		e := &Encoded{Origin: b.Origin}
		e.AddAll(b.Records)
		encs[i] = e
	}
	return s.PutEncoded(encs)
}

// originID returns o's id, allocating one in the origins bucket if o is
// new.
func originID(tx *bolt.Tx, o Origin) (uint32, error) {
	ob := tx.Bucket(bucketOrigins)
	if v := ob.Get(originKey(o)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), nil
	}
	seq, err := ob.NextSequence()
	if err != nil {
		return 0, err
	}
	if seq > math.MaxUint32 {
		return 0, errors.New("too many origins")
	}
	id := uint32(seq)
	return id, ob.Put(originKey(o), binary.BigEndian.AppendUint32(nil, id))
}

func storedInt(meta *bolt.Bucket, key []byte) int64 {
	v := meta.Get(key)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// Flows calls fn for every stored record that q selects, in order of flow
// end time. fn may run inside a read transaction (always when the store
// holds chunks of schema 3 or older; see doc.go): it must not call Put,
// PutStats or AddStats (that can deadlock when the file grows). If fn
// returns ErrStop the scan ends and Flows returns nil; any other error ends
// the scan and is returned. Each StoredFlow is fn's to keep.
//
// Records that fail to decode are skipped and counted in DecodeErrors.
func (s *Store) Flows(q Query, fn func(StoredFlow) error) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		to = q.To.UnixNano()
	}
	s.omu.RLock()
	byID := make(map[uint32]Origin, len(s.byID))
	for id, o := range s.byID {
		byID[id] = o
	}
	s.omu.RUnlock()

	countErr := func(err error) {
		var de *DecodeError
		if errors.As(err, &de) {
			s.countDecodeError(de.Reason)
		}
	}
	s.scanStart()
	defer s.scanEnd()
	var views []segView
	defer func() {
		for _, v := range views {
			v.unmap()
		}
	}()
	// Chunks from the flows bucket are bbolt's memory, valid only in the
	// transaction, so a store that has any is scanned inside it; segments
	// stay mapped after it, so a store without is scanned after it and
	// holds the file (Options.Release: blocks the writer) only while it
	// reads the index and checks the chunks, not while fn runs.
	var refs []chunkRef
	inTx := false
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		maxDur := storedInt(meta, keyMaxDur)

		// Chunks in the flows bucket (stores of schema 3 and older).
		stop := to // scan while key time < stop
		if q.Field != ByEnd {
			stop = satAdd(to, maxDur+1)
		}
		c := tx.Bucket(bucketFlows).Cursor()
		var seek [8]byte
		// A chunk is keyed by its earliest end time; later records in it
		// end at most maxspan after.
		timeKey(seek[:0], satAdd(from, -storedInt(meta, keyMaxSpan)))
		for k, v := c.Seek(seek[:]); k != nil; k, v = c.Next() {
			if len(k) != keyLen {
				s.countDecodeError(ReasonBadKey)
				continue
			}
			if keyTime(k) >= stop && stop != math.MaxInt64 {
				break
			}
			refs = append(refs, chunkRef{first: keyTime(k), origin: binary.BigEndian.Uint32(k[8:12]),
				pos: binary.BigEndian.Uint64(k[12:20]), data: v})
		}

		// Chunks in segments, found through the time index.
		lo := from
		if v := meta.Get(keySegCut); len(v) == 8 {
			lo = max(lo, int64(binary.BigEndian.Uint64(v)))
		}
		// in says whether records ending in [minLast, maxLast], lasting
		// at most dur, can match.
		in := func(minLast, maxLast, dur int64) bool {
			if maxLast < lo {
				return false
			}
			if q.Field == ByEnd {
				return minLast < to
			}
			return satAdd(minLast, -dur) < to
		}
		inTx = len(refs) > 0
		sb, bb := tx.Bucket(bucketSegments), tx.Bucket(bucketBlocks)
		if sb == nil || bb == nil {
			if !inTx {
				return nil
			}
			return s.scanChunks(refs, q, byID, from, to, fn, countErr)
		}
		sc, bc := sb.Cursor(), bb.Cursor()
		for k, v := sc.First(); k != nil; k, v = sc.Next() {
			m, ok := parseSegMeta(v)
			if !ok || len(k) != 8 || m.committed < int64(len(segMagic)) {
				s.countDecodeError(ReasonBadKey)
				continue
			}
			if !in(m.minLast, m.maxLast, m.maxDur) {
				continue
			}
			id := binary.BigEndian.Uint64(k)
			var seg []byte
			opened := false
			for bk, bv := bc.Seek(k); len(bk) == 16 && bytes.Equal(bk[:8], k); bk, bv = bc.Next() {
				bm, ok := parseBlockMeta(bv)
				off := int64(binary.BigEndian.Uint64(bk[8:]))
				if !ok || off < int64(len(segMagic)) || bm.end < off || bm.end > m.committed {
					s.countDecodeError(ReasonBadKey)
					continue
				}
				if !in(bm.minLast, bm.maxLast, bm.maxDur) {
					continue
				}
				if !opened {
					sv, err := s.openSegment(id, m.committed)
					if err != nil {
						return err
					}
					views = append(views, sv)
					seg, opened = sv.b, true
				}
				if bm.end > int64(len(seg)) {
					s.countDecodeError(ReasonSegment)
					continue
				}
				WalkFrames(seg[off:bm.end], func(f Frame) {
					if in(f.First, f.Last, bm.maxDur) {
						refs = append(refs, chunkRef{first: f.First, origin: f.Origin, seg: id,
							pos: uint64(off) + uint64(f.Off), data: f.Payload})
					}
				}, s.countDecodeError)
			}
		}
		if !inTx {
			return nil
		}
		return s.scanChunks(refs, q, byID, from, to, fn, countErr)
	})
	if err == nil && !inTx {
		err = s.scanChunks(refs, q, byID, from, to, fn, countErr)
	}
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// chunkRef is one chunk a scan reads: from the flows bucket (seg 0,
// stores of schema 3 and older) or from segment seg.
type chunkRef struct {
	first  int64  // earliest end time of its records
	origin uint32 // origin id
	seg    uint64 // 0: flows bucket; else segment id
	pos    uint64 // flows bucket: key sequence; segment: frame offset
	data   []byte
}

// scanChunks decodes refs in the order the flows bucket's keys had
// (earliest end time, origin, then written order: the flows bucket before
// segments) and calls fn with each record q selects.
func (s *Store) scanChunks(refs []chunkRef, q Query, byID map[uint32]Origin, from, to int64,
	fn func(StoredFlow) error, countErr func(error)) error {
	slices.SortFunc(refs, func(a, b chunkRef) int {
		if c := cmp.Compare(a.first, b.first); c != 0 {
			return c
		}
		if c := cmp.Compare(a.origin, b.origin); c != 0 {
			return c
		}
		if c := cmp.Compare(a.seg, b.seg); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	var fnErr error
	for i := range refs {
		ref := &refs[i]
		o, ok := byID[ref.origin]
		if !ok {
			s.countDecodeError(ReasonBadOrigin)
			continue
		}
		if (q.Exporter != "" && o.Exporter != q.Exporter) || (q.HasDomain && o.Domain != q.Domain) {
			continue
		}
		err := ChunkRecords(ref.data, func(b []byte) {
			if fnErr != nil {
				return
			}
			sf := StoredFlow{Origin: o}
			if err := DecodeRecord(b, &sf.Record); err != nil {
				countErr(err)
				return
			}
			r := &sf.Record
			switch q.Field {
			case ByEnd:
				if r.Last < from || r.Last >= to {
					return
				}
			case ByStart:
				if r.First < from || r.First >= to {
					return
				}
			default:
				if r.Last < from || r.First >= to {
					return
				}
			}
			fnErr = fn(sf)
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			countErr(err)
		}
	}
	return nil
}

// satAdd adds b to a, saturating at the int64 range: stored durations and
// query bounds are not trusted to be small.
func satAdd(a, b int64) int64 {
	c := a + b
	switch {
	case b > 0 && c < a:
		return math.MaxInt64
	case b < 0 && c > a:
		return math.MinInt64
	}
	return c
}

func (s *Store) countDecodeError(reason string) {
	s.emu.Lock()
	s.decodeErrs[reason]++
	s.emu.Unlock()
}

// DecodeErrors returns how many stored entries scans have skipped since
// Open, by reason.
func (s *Store) DecodeErrors() map[string]uint64 {
	s.emu.Lock()
	defer s.emu.Unlock()
	m := make(map[string]uint64, len(s.decodeErrs))
	for k, v := range s.decodeErrs {
		m[k] = v
	}
	return m
}

// PutStats replaces the stored collector counters with st.
func (s *Store) PutStats(st Stats) error {
	if st.Updated.IsZero() {
		st.Updated = time.Now().UTC()
	}
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: put stats: %w", err)
	}
	err = s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyStats, v) })
	if err != nil {
		return fmt.Errorf("store: put stats: %w", err)
	}
	return nil
}

// AddStats adds delta to the stored collector counters, so that a
// collector that restarts keeps counting from the stored totals.
func (s *Store) AddStats(delta Stats) error {
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st, err := decodeStats(meta.Get(keyStats))
		if err != nil {
			return err
		}
		st.Messages += delta.Messages
		st.Records += delta.Records
		st.Lost += delta.Lost
		st.SocketDrops += delta.SocketDrops
		st.Dropped += delta.Dropped
		st.Malformed = addCounts(st.Malformed, delta.Malformed)
		st.Evicted = addCounts(st.Evicted, delta.Evicted)
		st.DecodeErrors = addCounts(st.DecodeErrors, delta.DecodeErrors)
		st.Updated = delta.Updated
		if st.Updated.IsZero() {
			st.Updated = time.Now().UTC()
		}
		v, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return meta.Put(keyStats, v)
	})
	if err != nil {
		return fmt.Errorf("store: add stats: %w", err)
	}
	return nil
}

func addCounts(dst, src map[string]uint64) map[string]uint64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]uint64, len(src))
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func decodeStats(v []byte) (Stats, error) {
	var st Stats
	if v == nil {
		return st, nil
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("decode stats: %w", err)
	}
	return st, nil
}

// Stats returns the stored collector counters; the zero Stats if none were
// stored.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		st, err = decodeStats(tx.Bucket(bucketMeta).Get(keyStats))
		return err
	})
	if err != nil {
		return st, fmt.Errorf("store: stats: %w", err)
	}
	return st, nil
}
