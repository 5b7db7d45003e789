package server

import (
	"errors"
	"net/netip"
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
// the records stay pending for the next commit.
func (s *Server) commit() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	p, names, anns, ledgers := s.pending, s.names, s.anns, s.ledgers
	if p.n == 0 && names == nil && anns == nil && ledgers == nil && len(s.dirtySeq) == 0 && len(s.dirtyPos) == 0 && s.seqLost == 0 {
		s.mu.Unlock()
		return nil
	}
	s.pending, s.spare, s.names, s.anns, s.ledgers = s.spare, nil, nil, nil, nil
	s.inflight = p.n
	newNames, newAnns := names != nil, anns != nil
	var seqs map[store.SeqOrigin]*store.SeqSet
	for o := range s.dirtySeq {
		if seqs == nil {
			seqs = map[store.SeqOrigin]*store.SeqSet{}
		}
		seqs[o] = s.seqs[o].Clone()
	}
	clear(s.dirtySeq)
	next, lost := s.takePos(time.Now())
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
	if err == nil {
		err = s.st.PutEncodedCommit(p.list, &store.SeqCommit{Sets: seqs, Next: next, Lost: lost})
	}
	// Names and announcements may be stored even when the records
	// are not: the Roller reloads them before it next gets records.
	s.rollStale = s.rollStale || newNames || newAnns
	if err == nil && s.roll != nil {
		s.feedRollups(p.list, s.rollStale)
		s.rollStale = false
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = 0
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
			s.failing = true
			s.log.Error("store write failed; records kept for the next commit", "records", p.n, "err", err)
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
		for o := range seqs {
			if s.dirtySeq == nil {
				s.dirtySeq = map[store.SeqOrigin]bool{}
			}
			s.dirtySeq[o] = true
		}
		s.putBackPos(next, lost)
		return err
	}
	if s.failing {
		s.failing = false
		s.log.Info("store writes succeed again", "db", s.cfg.DB, "records", p.n)
	}
	if s.busyLogged {
		s.busyLogged = false
		s.log.Info("store available again", "db", s.cfg.DB)
	}
	s.stored += uint64(p.n)
	p.reset()
	s.spare = p
	return nil
}

// finalCommit commits at shutdown, waiting for readers to let go of the
// store for up to finalCommitWait.
func (s *Server) finalCommit() { s.commitWithin(finalCommitWait) }

// commitWithin commits, retrying while another process holds the store
// for up to wait.
func (s *Server) commitWithin(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := s.commit()
		if err == nil || !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			if err != nil {
				s.mu.Lock()
				n := s.pending.n
				s.mu.Unlock()
				s.log.Error("records not stored yet (kept for the next commit)", "records", n, "err", err)
			}
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
