package server

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix"
)

// Batching between the collecting process and the store: records are
// encoded into the store's format as they arrive (Consume), so a batch
// holds compact bytes rather than flow.Records, and a commit writes every
// origin's records in one transaction. Commits happen every
// commitInterval or when batchRecords are waiting. The store is opened
// per commit (store.Options.Release), so `mira report --db` can read the
// file between commits; while a reader holds it, commits fail with
// store.ErrLocked, the records stay pending and the next commit retries.
// After a commit failed for want of space, commits store what fits of
// the records waiting, in parts (commitParts).
const (
	commitInterval = time.Second
	batchRecords   = 1 << 16
	// maxPending bounds the records kept while the store is busy (about
	// 60 bytes each); beyond it records are dropped and counted.
	maxPending = 4 << 20
	// storeLockWait is how long one commit waits for a reader to let go
	// of the file.
	storeLockWait = 500 * time.Millisecond
	// finalCommitWait bounds the retries of the commit at shutdown.
	finalCommitWait = 30 * time.Second
	// streamCommitWait bounds the retries of the commit made when a
	// TCP/TLS exporter's connection ends (StreamEnd): less than the 5 s
	// a MIRA exporter waits for the collector to close its end.
	streamCommitWait = 3 * time.Second
	// storeMmapSize is mapped at each open so that a commit that grows
	// the file does not remap it (bbolt then copies every node it holds).
	storeMmapSize = 1 << 30
)

// pendKey names an origin without formatting its address per message.
type pendKey struct {
	addr   netip.Addr
	domain uint32
}

// pendingSet is a batch of encoded records by origin.
type pendingSet struct {
	m    map[pendKey]*store.Encoded
	list []*store.Encoded
	n    int
}

func newPendingSet() *pendingSet { return &pendingSet{m: map[pendKey]*store.Encoded{}} }

// batch returns k's batch, made when k has none yet.
func (p *pendingSet) batch(k pendKey) *store.Encoded {
	e := p.m[k]
	if e == nil {
		e = &store.Encoded{Origin: store.Origin{Exporter: k.addr.String(), Domain: k.domain}}
		p.m[k] = e
		p.list = append(p.list, e)
	}
	return e
}

// room readies d, a batch of p, to take o's records: when its buffers
// would have to grow, it takes those of the largest empty batch of p
// larger than its own (store.Encoded.Trade). An exporter that comes
// back under a new origin (another observation domain) then fills the
// buffers its old origin left, instead of growing its own while those
// wait to be forgotten (reset): each growth is fresh memory the kernel
// faults in, a page at a time.
func (p *pendingSet) room(d, o *store.Encoded) {
	if d.Fits(o) {
		return
	}
	var best *store.Encoded
	for _, x := range p.list {
		if x.Len() == 0 && x.Cap() > d.Cap() && (best == nil || x.Cap() > best.Cap()) {
			best = x
		}
	}
	if best != nil {
		d.Trade(best)
	}
}

// merge moves o's records into p.
func (p *pendingSet) merge(o *pendingSet) {
	for k, e := range o.m {
		if e.Len() == 0 {
			continue
		}
		d := p.m[k]
		if d == nil {
			d = &store.Encoded{Origin: e.Origin}
			p.m[k] = d
			p.list = append(p.list, d)
		}
		d.Append(e)
		p.n += e.Len()
	}
	o.reset()
}

// cut takes out of each batch of p.list its first done[i] records
// (stored by commitParts).
func (p *pendingSet) cut(done []int) {
	for i, e := range p.list {
		switch d := done[i]; {
		case d == 0:
		case d == e.Len():
			e.Reset()
		default:
			rest := &store.Encoded{Origin: e.Origin}
			rest.AppendRange(e, d, e.Len())
			*e = *rest
		}
		p.n -= done[i]
	}
}

// reset empties p for reuse, forgetting origins that sent nothing since
// the previous reset.
func (p *pendingSet) reset() {
	list := p.list[:0]
	for k, e := range p.m {
		if e.Len() == 0 {
			delete(p.m, k)
			continue
		}
		e.Reset()
		list = append(list, e)
	}
	clear(p.list[len(list):])
	p.list = list
	p.n = 0
}

// commit writes the pending records (and names) to the store. On failure
// the records stay pending for the next commit; after a failure for want
// of space, what fits is stored and the rest stays pending (see
// commitParts). It returns nil only when every record taken was stored.
func (s *Server) commit() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	p, names, anns, ledgers := s.pending, s.names, s.anns, s.ledgers
	if p.n == 0 && names == nil && anns == nil && ledgers == nil && len(s.dirtySeq) == 0 && len(s.dirtyPos) == 0 && len(s.seqLost) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.pending, s.spare, s.names, s.anns, s.ledgers = s.spare, nil, nil, nil, nil
	s.inflight = p.n
	newNames, newAnns := names != nil, anns != nil
	var r roundSeq
	for o := range s.dirtySeq {
		if r.sets == nil {
			r.sets = map[store.SeqOrigin]*store.SeqSet{}
		}
		r.sets[o] = s.seqs[o].Clone()
	}
	clear(s.dirtySeq)
	r.next, r.lost = s.takePos(time.Now())
	s.mu.Unlock()

	var err error
	if names != nil {
		if err = s.st.PutNameAnnouncements(names); err == nil {
			names = nil
		}
	}
	if err == nil && anns != nil {
		if err = s.st.PutAnnouncements(anns); err == nil {
			anns = nil
		}
	}
	if err == nil && ledgers != nil {
		ls := make([]store.Ledger, 0, len(ledgers))
		for _, l := range ledgers {
			ls = append(ls, l)
		}
		if err = s.st.PutLedgers(ls); err == nil {
			ledgers = nil
		}
	}
	var parts []*store.Encoded // committed
	var done []int             // by p.list: records stored (commitParts)
	if err == nil {
		if s.short && p.n > 0 {
			parts, done, err = s.commitParts(p, &r)
		} else if err = s.st.PutEncodedCommit(p.list, r.of(anyOrigin)); err == nil {
			r.drop(anyOrigin)
			parts = p.list
		}
	}
	stored := 0
	for _, e := range parts {
		stored += e.Len()
	}
	// Names and announcements may be stored even when the records
	// are not: the Roller reloads them before it next gets records.
	s.rollStale = s.rollStale || newNames || newAnns
	if stored > 0 && s.roll != nil {
		s.feedRollups(parts, s.rollStale) // each committed part once
		s.rollStale = false
	}
	if done != nil {
		p.cut(done)
	}
	if noSpace(err) {
		s.short = true
	} else if err == nil {
		s.short, s.partRecs = false, 0
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = 0
	s.stored += uint64(stored)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			s.busy++
			if !s.busyLogged {
				s.busyLogged = true
				s.log.Warn("store busy: another process holds it; records kept for the next commit",
					"db", s.cfg.DB, "pending", p.n+s.pending.n)
			}
		} else {
			s.werrs++
			s.lastErr = err
			// A line when writes start failing, when they first
			// store part of the backlog, and when they succeed again:
			// a disk that stays full does not log every commit
			// interval (the failures are counted:
			// mira_collector_store_errors_total).
			switch {
			case !s.failing:
				s.log.Error("store write failed; records kept for the next commit", "records", p.n, "stored", stored, "err", err)
			case stored > 0 && !s.partly:
				s.log.Warn("store short of space: storing what fits, oldest first, an origin at a time; the rest kept for the next commit",
					"stored", stored, "records", p.n, "err", err)
			}
			s.failing, s.partly, s.failedAt = true, s.partly || stored > 0, time.Now()
		}
		if names != nil {
			for o, l := range s.names {
				names[o] = append(names[o], l...)
			}
			s.names = names
		}
		if anns != nil {
			// Earlier announcements first: keep arrival order.
			for o, l := range s.anns {
				anns[o] = append(anns[o], l...)
			}
			s.anns = anns
		}
		if ledgers != nil {
			// Newer ledgers (received meanwhile) win.
			for k, l := range s.ledgers {
				ledgers[k] = l
			}
			s.ledgers = ledgers
		}
		p.merge(s.pending)
		s.spare, s.pending = s.pending, p
		for o := range r.sets {
			if s.dirtySeq == nil {
				s.dirtySeq = map[store.SeqOrigin]bool{}
			}
			s.dirtySeq[o] = true
		}
		s.putBackPos(r.next, r.lost)
		return err
	}
	if s.failing {
		s.failing, s.partly = false, false
		s.log.Info("store writes succeed again", "db", s.cfg.DB, "records", stored)
	}
	if s.busyLogged {
		s.busyLogged = false
		s.log.Info("store available again", "db", s.cfg.DB)
	}
	p.reset()
	s.spare = p
	return nil
}

// noSpace says err is the file system's want of space or quota.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// minPartRecords is the smallest part of an origin's backlog commitParts
// tries (about 64 KiB): below it, a disk with no room for it is full.
const minPartRecords = 1024

// commitParts stores what fits of a backlog after a commit failed for
// want of space, where committing all of it at once would fail until
// the disk had room for every record (meanwhile the backlog grows to
// maxPending, and records are dropped). One origin at a time, in order
// of first arrival, each origin's records sorted by end time (a spooling
// exporter's by sequence number, see below) and committed oldest first
// in parts: a part that does not fit is halved, down to minPartRecords
// (then the commit stops: the disk is full); one that fits makes the
// next twice as large. Each part is one transaction (the store keeps
// per-commit time bounds, and gives a failed write's space back), and
// carries the sequence state that its records complete (roundSeq), so
// that what the store says was received is what it holds:
//
//   - A spooling exporter's sequence sets (dedup: replayed duplicates
//     dropped, the spool's StoredAck) must name exactly the records
//     stored: a number named but not stored would drop its record when
//     the spool replays it after a crash, one stored but not named
//     would be stored twice. Its records carry their numbers (tags,
//     tagSpooled), so each part carries the sets taken less the numbers
//     of the records still waiting (storedSets). They are committed in
//     sequence order (spool instance, then number: the order the
//     exporter sent them, about their end-time order), so that the
//     stored and the waiting numbers stay a few ranges each. StoredAck
//     is only sent when a commit stored everything taken (commit
//     returns nil); the spool keeps messages until then or its window
//     (exporter.SpoolConfig). Before December 2026 a spooling origin was
//     committed whole or not at all: one whose own backlog exceeded the
//     free space was never stored while the disk stayed short.
//   - Sequence positions and the sequence loss counted (seqpos.go) go
//     with an origin's last part: until all its records are stored, the
//     stored position stays behind them. After a crash in that state,
//     the restarted collector counts the gap from the stored position,
//     records of that origin already stored among it (counted twice:
//     lost and stored), never the reverse.
//   - Positions, sets and loss of origins without records pending go
//     with the first part that commits.
//
// It returns the parts committed (each to be fed to the rollups once)
// and, for each batch of p.list, the records committed from its start
// (p.cut takes them out); err is the last failure, nil only when every
// record was stored. wmu held.
func (s *Server) commitParts(p *pendingSet, r *roundSeq) (parts []*store.Encoded, done []int, err error) {
	has := make(map[store.Origin]bool, len(p.list))
	for _, e := range p.list {
		if e.Len() > 0 {
			has[e.Origin] = true
		}
	}
	first := true // the state of origins without records still goes
	done = make([]int, len(p.list))
	size := s.partRecs
	var failed error
	defer func() {
		s.partRecs = size
		if err == nil {
			err = failed
		}
	}()
	for i, e := range p.list {
		if e.Len() == 0 {
			continue
		}
		o := e.Origin
		spooling := r.spooling(o)
		var tags []store.Tag // e's, in order (spooling)
		if spooling {
			tags = e.SortByTag()
		} else {
			e.Sort()
		}
		for done[i] < e.Len() {
			n := e.Len() - done[i]
			if size > 0 {
				n = min(n, size)
			}
			part := e
			if n < e.Len() {
				part = &store.Encoded{Origin: o}
				part.AppendRange(e, done[i], done[i]+n)
			}
			last, withFree := done[i]+n == e.Len(), first
			match := func(x store.Origin) bool { return (last && x == o) || (withFree && !has[x]) }
			c := r.of(match)
			if spooling && !last {
				r.storedSets(o, tags[done[i]+n:], c)
			}
			err := s.st.PutEncodedCommit([]*store.Encoded{part}, c)
			if err == nil {
				r.drop(match)
				first = false
				parts = append(parts, part)
				done[i] += n
				if size > 0 {
					size = min(2*size, maxPending)
				}
				continue
			}
			failed = err
			switch {
			case !noSpace(err):
				return parts, done, err // locked, or another failure: retried whole
			case n > minPartRecords:
				size = max(n/2, minPartRecords)
				continue
			}
			return parts, done, err // not even the smallest part fits
		}
	}
	return parts, done, nil
}

// storedSets puts into c the sequence sets of origin o's spool instances
// as they stand once the records before those still waiting are stored:
// the sets taken (every number received: stored before, or pending) less
// the numbers of the waiting records, whose tags (in SortByTag's order:
// by instance, then number) are waiting. O(len(waiting)) per part.
func (r *roundSeq) storedSets(o store.Origin, waiting []store.Tag, c *store.SeqCommit) {
	for so, set := range r.sets {
		if so.Origin != o {
			continue
		}
		// The instance's numbers are one run of waiting, sorted.
		lo, _ := slices.BinarySearchFunc(waiting, so.Instance, func(t store.Tag, inst uint64) int { return cmp.Compare(t.Inst, inst) })
		hi := lo
		for hi < len(waiting) && waiting[hi].Inst == so.Instance {
			hi++
		}
		stored := set.Clone()
		if hi > lo {
			nums := make([]uint32, hi-lo)
			for j, t := range waiting[lo:hi] {
				nums[j] = t.Seq
			}
			stored.RemoveSorted(nums)
		}
		if c.Sets == nil {
			c.Sets = map[store.SeqOrigin]*store.SeqSet{}
		}
		c.Sets[so] = stored
	}
}

// roundSeq is the sequence state a commit takes with the pending records
// (store.SeqCommit), by origin, less what it has committed.
type roundSeq struct {
	sets map[store.SeqOrigin]*store.SeqSet
	next map[store.SeqPos]*store.SeqNext
	lost map[store.Origin]uint64
}

func anyOrigin(store.Origin) bool { return true }

// of returns the state of the origins match says true of.
func (r *roundSeq) of(match func(store.Origin) bool) *store.SeqCommit {
	c := &store.SeqCommit{}
	for o, set := range r.sets {
		if match(o.Origin) {
			if c.Sets == nil {
				c.Sets = map[store.SeqOrigin]*store.SeqSet{}
			}
			c.Sets[o] = set
		}
	}
	for sp, n := range r.next {
		if match(sp.Origin) {
			if c.Next == nil {
				c.Next = map[store.SeqPos]*store.SeqNext{}
			}
			c.Next[sp] = n
		}
	}
	for o, n := range r.lost {
		if match(o) {
			c.Lost += n
		}
	}
	return c
}

// drop forgets the state of the origins match says true of (committed).
func (r *roundSeq) drop(match func(store.Origin) bool) {
	for o := range r.sets {
		if match(o.Origin) {
			delete(r.sets, o)
		}
	}
	for sp := range r.next {
		if match(sp.Origin) {
			delete(r.next, sp)
		}
	}
	for o := range r.lost {
		if match(o) {
			delete(r.lost, o)
		}
	}
}

// spooling says origin o has a spooling exporter's sequence set to
// commit with its records.
func (r *roundSeq) spooling(o store.Origin) bool {
	for so := range r.sets {
		if so.Origin == o {
			return true
		}
	}
	return false
}

// finalCommit commits at shutdown, waiting for readers to let go of the
// store for up to finalCommitWait.
func (s *Server) finalCommit() {
	if err := s.commitWithin(finalCommitWait); err != nil {
		s.mu.Lock()
		n := s.pending.n
		s.mu.Unlock()
		s.log.Error("records not stored at shutdown", "records", n, "err", err)
	}
}

// commitWithin commits, retrying while another process holds the store
// for up to wait. It does not log: commit logs the store's changes of
// state, and a stream ending on a full disk (StreamEnd: spooling probes
// reconnect and end their streams in a loop until acknowledged) must not
// add a line each time.
func (s *Server) commitWithin(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := s.commit()
		if err == nil || !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			return err
		}
	}
}

// noteSampling queues an announcement for the store when the origin's
// sampling is new to this process or changed; s.mu held.
func (s *Server) noteSampling(k pendKey, smp ipfix.Sampling) {
	a, changed := s.smp.Sampling(k, smp.Interval, smp.Flow, time.Now())
	if !changed {
		return
	}
	if s.anns == nil {
		s.anns = map[store.Origin][]store.Announcement{}
	}
	o := store.Origin{Exporter: k.addr.String(), Domain: k.domain}
	s.anns[o] = append(s.anns[o], a)
}
