// Package server assembles mira-collector: IPFIX listeners (the
// collecting process), a batching writer into the bbolt store, and
// /metrics. Records are encoded on arrival and committed in batches
// (every second or 65536 records) so the store keeps up with many
// exporters. The store file is open only during commits and reads, so
// `mira report --db` works against a running collector; while a reader
// holds the file, records wait (up to 4 Mi of them, then dropped and
// counted). On shutdown the listeners are stopped and drained (Wait)
// before the final commit, so everything decoded is stored.
//
// When records are durable: a TCP or TLS exporter's records are
// committed when its connection ends, before the collector closes its
// end (StreamEnd), so an exporter that waits for that close knows its
// records are stored. UDP has no end of session: a record is committed
// at the latest commitInterval (1 s) after its datagram was decoded, or
// as soon as batchRecords wait; only while another process holds the
// store file is the commit deferred (retried every second).
//
// Rollups (rollup.go): every committed record also goes to a
// report.Roller whose new usage cells are written after the commit;
// the API's rollup answers (source=rollups|auto, /api/rollups) add what
// the Roller still holds, read under the commit lock, so they cover
// every stored record. The Roller is flushed at shutdown and rebuilt
// from the records at start when the store has no rollups, was not
// closed cleanly, or they were made with other rules, AS table or
// window. Its work is the report's consolidation, paid once per record
// at ingest (BENCHMARKS.md).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// Server is a configured collector.
type Server struct {
	cfg  *config.Collector
	log  *slog.Logger
	st   *store.Store
	coll *collector.Collector

	mu      sync.Mutex
	pending *pendingSet                               // records waiting for the next commit
	spare   *pendingSet                               // the other buffer, reused across commits
	names   map[store.Origin][]store.NameAnnouncement // waiting for the next commit
	// held are the name announcements of origins that have sent no
	// record yet: stored once they do, so that options from domains
	// that send no flows (garbage, scans) never reach the store. At most
	// maxHeld origins; heldDropped counts those forgotten beyond it.
	held        map[pendKey][]store.NameAnnouncement
	heldDropped uint64
	smp         store.AnnouncementTracker[pendKey]    // per origin, for announcements
	anns        map[store.Origin][]store.Announcement // waiting for the next commit
	kick        chan struct{}
	stored      uint64
	werrs       uint64
	busy        uint64 // commits deferred: another process held the store
	dropped     uint64 // records dropped: more than maxPending waiting
	// droppedFrom: stream connections some of whose records were
	// dropped (not acknowledged when they end: StreamEnd).
	droppedFrom map[netip.AddrPort]bool
	// inflight counts the records of the commit under way (taken out of
	// pending, back in it if the commit fails): they are still waiting.
	inflight   int
	busyLogged bool
	lastErr    error
	// failing: the last commit failed for another reason than a reader
	// holding the store (a full disk); full batches then wait for the
	// commit interval instead of retrying at once.
	failing bool
	// failedAt: when a commit last failed so (StreamEnd does not retry
	// within commitInterval of it).
	failedAt time.Time
	// partly: since failing began, a failed commit stored part of the
	// backlog (logged once).
	partly bool
	// short: a commit failed for want of space (ENOSPC, EDQUOT), so
	// commits write the backlog in parts that fit (commitParts) until one
	// stores all of it; partRecs is the part size to try first (0: an
	// origin's records whole). wmu held.
	short      bool
	partRecs   int
	wmu        sync.Mutex    // serialises commits (Run and the HTTP API)
	maxPending int           // maxPending, lowered by tests
	statsEvery time.Duration // statsInterval, lowered by tests

	// seqs are the sequence numbers stored or pending per spooling
	// exporter (loaded from the store at start); dirtySeq are those
	// changed since the last commit; duplicates counts records dropped
	// because their sequence number was already stored.
	ledgers    map[ledgerKey]store.Ledger // received since the last commit
	ledgerSeen store.LedgerTracker        // latest of every process since start (/metrics, checks)
	seqs       map[store.SeqOrigin]*store.SeqSet
	dirtySeq   map[store.SeqOrigin]bool
	duplicates uint64

	// Sequence positions across transport sessions (seqpos.go): pos by
	// exporter position, dirtyPos those changed since the last commit,
	// seqLost the sequence gaps counted since by origin (committed with
	// the origin's records), posEvicted the positions forgotten beyond maxSeqPos.
	pos        map[posKey]*seqPos
	dirtyPos   map[posKey]bool
	posGen     uint64
	seqLost    map[store.Origin]uint64
	posEvicted uint64
	// Gaps between sessions logged since seqLogSince (a minute at
	// most), and those not logged (seqLogMax).
	seqLogSince   time.Time
	seqLogN       int
	seqLogSkipped uint64

	httpAddr net.Addr
	fwd      *forwarding // collector.yaml forward, nil without

	// roll keeps the rollups (see rollup.go); rollKept holds cells a
	// failed write left for the next; rollSrc is what they are made with.
	roll     *report.Roller
	rollKept *store.RollupDelta
	rollSrc  report.RollupSource
	// rollStale: names or announcements were committed since the
	// Roller last loaded them.
	rollStale bool
	// rollFailing: the last write of rollups failed (logged once).
	rollFailing bool
	// statsSave is what saveStats saved last.
	statsSave statsSaver
	// rollFed is when a commit last fed the Roller (idleRollups).
	rollFed time.Time
	// rollPend caches the Roller's pending cells (liveRollups) while
	// rollGen, counting the records fed, has not moved since rollPendGen.
	rollPend    map[time.Duration]map[store.RollupKey]*store.RollupCell
	rollGen     uint64
	rollPendGen uint64

	// ForwardTo opens the biflow exporter for a collector.yaml forward
	// URL (cmd/mira-collector: exporter.New); it must be set when the
	// configuration forwards.
	ForwardTo func(url string) (consolidate.BiflowExporter, error)

	// Addrs receives the bound listener addresses once listening (tests).
	Addrs chan []net.Addr
}

// New prepares a collector; Run starts it.
func New(cfg *config.Collector, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, log: log, pending: newPendingSet(), spare: newPendingSet(), kick: make(chan struct{}, 1),
		maxPending: maxPending, statsEvery: statsInterval}
}

// statsInterval is how often the collector's counters are saved to the
// store (when they changed).
const statsInterval = 5 * time.Second

// Consume implements collector.Consumer: it encodes records for the
// store writer (see batch.go). Records from the collecting process come
// through ConsumeBatch, already encoded, unless they are forwarded too.
func (s *Server) Consume(o collector.Origin, recs []flow.Record) {
	if s.fwd != nil {
		s.fwd.cons.Consume(o, recs)
	}
	k := pendKey{addr: o.Exporter.Addr(), domain: o.Domain}
	s.mu.Lock()
	s.notePos(o, true)
	var noted func()
	var keep []bool
	if o.Instance != 0 {
		var n int
		if keep, n, noted = s.dedup(k, o, len(recs)); n == 0 {
			s.mu.Unlock()
			return
		}
		if keep != nil {
			kept := make([]flow.Record, 0, n)
			for i := range recs {
				if keep[i] {
					kept = append(kept, recs[i])
				}
			}
			recs = kept
		}
	}
	s.smp.Records(k, recs)
	if e := s.admit(k, &o, len(recs)); e != nil {
		before := e.Len()
		e.AddAll(recs)
		tagSpooled(e, before, o, keep)
		s.queued(noted)
	}
}

// tagSpooled tags the records of a spooling exporter's message appended
// to e from its before-th record on with their sequence numbers (the
// message's plus their index in it; keep, when not nil, says which of
// the message's records were appended), so that a commit in parts knows
// which numbers it stores (commitParts).
func tagSpooled(e *store.Encoded, before int, o collector.Origin, keep []bool) {
	if o.Instance == 0 {
		return
	}
	if keep == nil {
		e.TagFrom(before, o.Instance, func(i int) uint32 { return o.Sequence + uint32(i) })
		return
	}
	seqs := make([]uint32, 0, e.Len()-before)
	for i, k := range keep {
		if k {
			seqs = append(seqs, o.Sequence+uint32(i))
		}
	}
	e.TagFrom(before, o.Instance, func(i int) uint32 { return seqs[i] })
}

// NewBatch implements collector.BatchConsumer: the collecting process
// encodes records into the store's encoding as it decodes them, unless
// they are forwarded too (the forwarder takes flow.Records: Consume).
func (s *Server) NewBatch() collector.Batch {
	if s.fwd != nil {
		return nil
	}
	return &store.Encoded{}
}

// ConsumeBatch implements collector.BatchConsumer: Consume for the
// records of a message already encoded (a *store.Encoded of NewBatch).
func (s *Server) ConsumeBatch(o collector.Origin, b collector.Batch) {
	e := b.(*store.Encoded)
	k := pendKey{addr: o.Exporter.Addr(), domain: o.Domain}
	s.mu.Lock()
	s.notePos(o, true)
	var noted func()
	var keep []bool
	if o.Instance != 0 {
		var n int
		if keep, n, noted = s.dedup(k, o, e.Len()); n == 0 {
			s.mu.Unlock()
			return
		}
		if keep != nil {
			kept := &store.Encoded{}
			kept.AppendIf(e, func(i int) bool { return keep[i] })
			e = kept
		}
	}
	s.smp.RecordsEnding(k, e.Len(), e.LastEnd())
	if p := s.admit(k, &o, e.Len()); p != nil {
		s.pending.room(p, e)
		before := p.Len()
		p.Append(e)
		tagSpooled(p, before, o, keep)
		s.queued(noted)
	}
}

// admit returns origin k's pending batch to append n records of o's
// message to, or nil (with s.mu released) when more than maxPending
// would wait: they are dropped and counted, and o's stream connection
// is not acknowledged when it ends (StreamEnd); s.mu held.
func (s *Server) admit(k pendKey, o *collector.Origin, n int) *store.Encoded {
	if h, ok := s.held[k]; ok {
		s.queueNames(k, h...)
		delete(s.held, k)
	}
	if s.pending.n+s.inflight+n > s.maxPending {
		s.dropped += uint64(n)
		if o.Transport != "udp" {
			if s.droppedFrom == nil {
				s.droppedFrom = map[netip.AddrPort]bool{}
			}
			s.droppedFrom[o.Exporter] = true
		}
		s.mu.Unlock()
		return nil
	}
	s.pending.n += n
	return s.pending.batch(k)
}

// queued finishes an admit once the records were appended: noted (when
// not nil) notes their sequence numbers; s.mu held, and released. A full
// batch wakes the writer.
func (s *Server) queued(noted func()) {
	if noted != nil {
		noted()
	}
	full := s.pending.n >= batchRecords
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// ledgerKey names one exporting process's ledger.
type ledgerKey struct {
	o    store.Origin
	init int64
}

// dedup decides which of n records of a spooling exporter to keep: those
// whose sequence numbers are neither stored nor pending. keep is nil
// when all are kept, else says which; kept counts them; noted notes
// their numbers (called once they are pending); s.mu held. A replayed
// message holds the same records under the same numbers: record i of a
// message has the message's number plus i.
func (s *Server) dedup(k pendKey, o collector.Origin, n int) (keep []bool, kept int, noted func()) {
	so := store.SeqOrigin{Origin: store.Origin{Exporter: k.addr.String(), Domain: k.domain}, Instance: o.Instance}
	set := s.seqs[so]
	if set == nil {
		set = &store.SeqSet{}
		if s.seqs == nil {
			s.seqs = map[store.SeqOrigin]*store.SeqSet{}
		}
		s.seqs[so] = set
	}
	dirty := func() {
		if s.dirtySeq == nil {
			s.dirtySeq = map[store.SeqOrigin]bool{}
		}
		s.dirtySeq[so] = true
	}
	if !set.Overlaps(o.Sequence, uint32(n)) {
		return nil, n, func() { set.Add(o.Sequence, uint32(n)); dirty() }
	}
	keep = make([]bool, n)
	var seqs []uint32
	for i := range keep {
		if q := o.Sequence + uint32(i); !set.Contains(q) {
			keep[i] = true
			seqs = append(seqs, q)
		}
	}
	s.duplicates += uint64(n - len(seqs))
	return keep, len(seqs), func() {
		for _, q := range seqs {
			set.Add(q, 1)
		}
		dirty()
	}
}

// ConsumeOptions implements collector.OptionsConsumer: aggregate,
// symptom and category names announced by each origin (exporter and
// observation domain) are stored for the reports when they change
// (store.NameAnnouncement), and so are changes of a domain's sampling configuration
// (store.Announcement). The collecting process stamps each record with
// its domain's sampling interval once the options are known; records
// that came before them are scaled at report time from the stored
// announcement.
func (s *Server) ConsumeOptions(o collector.Origin, opts ipfix.DomainOptions) {
	if s.fwd != nil {
		s.fwd.cons.ConsumeOptions(o, opts)
	}
	if opts.HaveSampling {
		s.mu.Lock()
		s.noteSampling(pendKey{addr: o.Exporter.Addr(), domain: o.Domain}, opts.Sampling)
		s.mu.Unlock()
	}
	if opts.HaveLedger {
		s.mu.Lock()
		s.takeLedger(store.Origin{Exporter: o.Exporter.Addr().String(), Domain: o.Domain}, opts.Ledger)
		s.mu.Unlock()
	}
	if s.st == nil {
		return
	}
	// Names belong to their origin: another probe's symptom database, or
	// options from an observation domain that sends no flows, rename
	// nothing else. Stored with the next commit (the decoder does not
	// wait for the file).
	n := store.Names{Aggregates: opts.Aggregates, Symptoms: opts.Symptoms, Categories: opts.Categories}
	k := pendKey{addr: o.Exporter.Addr(), domain: o.Domain}
	s.mu.Lock()
	if a, changed := s.smp.Names(k, n, time.Now()); changed {
		if s.smp.HasRecords(k) {
			s.queueNames(k, a)
		} else {
			s.holdNames(k, a)
		}
	}
	s.mu.Unlock()
}

// takeLedger adopts exporting process l's ledger from origin so when it
// is newer than the last one and no total went backwards
// (store.LedgerTracker); s.mu held.
func (s *Server) takeLedger(so store.Origin, l ipfix.Ledger) {
	sl := store.Ledger{Origin: so, SystemInit: l.SystemInit,
		Messages: l.Messages, Records: l.Records, Loss: l.Loss, RegulationChanges: l.RegulationChanges, QueueScaled: l.QueueScaled, Updated: time.Now()}
	if !s.ledgerSeen.Take(sl) {
		return
	}
	if s.ledgers == nil {
		s.ledgers = map[ledgerKey]store.Ledger{}
	}
	s.ledgers[ledgerKey{so, l.SystemInit}] = sl
}

// maxHeld bounds the origins whose names wait for their first record.
const maxHeld = 4096

// queueNames queues name announcements for the next commit; s.mu held.
func (s *Server) queueNames(k pendKey, a ...store.NameAnnouncement) {
	if s.names == nil {
		s.names = map[store.Origin][]store.NameAnnouncement{}
	}
	so := store.Origin{Exporter: k.addr.String(), Domain: k.domain}
	s.names[so] = append(s.names[so], a...)
}

// holdNames keeps a name announcement until k's first record; s.mu held.
func (s *Server) holdNames(k pendKey, a store.NameAnnouncement) {
	if s.held == nil {
		s.held = map[pendKey][]store.NameAnnouncement{}
	}
	if _, ok := s.held[k]; !ok && len(s.held) >= maxHeld {
		for x := range s.held { // forget one at random
			delete(s.held, x)
			s.heldDropped++
			break
		}
	}
	if l := s.held[k]; len(l) > 0 && l[len(l)-1].Since == a.Since {
		l[len(l)-1] = a // completes it (see store.PutNameAnnouncements)
		return
	}
	s.held[k] = append(s.held[k], a)
}

// StreamEnd implements collector.StreamConsumer: when a TCP or TLS
// exporter's connection ends, what it sent is committed before the
// collector closes its end, so an exporter that waits for that close (a
// MIRA probe's Close does) exits only once its records are in the store.
// A stream some of whose records were dropped (more than maxPending
// waiting: a store unavailable too long) is not acknowledged, so a
// spooling exporter resends what its spool still holds. While the store
// fails (a full disk) it answers with the failure, without a retry
// within commitInterval of the last, unless no record from the
// exporter's address is still waiting (its part fitted). Over UDP there is no end: records
// are committed within commitInterval (1 s) of their arrival, later
// only while a reader holds the store.
func (s *Server) StreamEnd(o collector.Origin) error {
	s.mu.Lock()
	s.streamEnded(o.Exporter)
	dropped := s.droppedFrom[o.Exporter]
	delete(s.droppedFrom, o.Exporter)
	// A store that failed within the commit interval (a full disk) is
	// not retried for every stream that ends: spooling exporters that
	// are not acknowledged reconnect, replay and end their streams in a
	// loop, and each commit writes (and sorts) the backlog.
	failing, lastErr := s.failing && time.Since(s.failedAt) < commitInterval, s.lastErr
	s.mu.Unlock()
	if s.st == nil {
		return errors.New("no store")
	}
	var err error
	if failing {
		err = fmt.Errorf("collector: store failing, records kept for the next commit: %w", lastErr)
	} else {
		err = s.commitWithin(streamCommitWait)
	}
	if err != nil && s.storedAllFrom(o.Exporter.Addr()) {
		// The store fails, but what this exporter sent is stored (a
		// full disk: its origins fitted): acknowledged, so that its
		// spool lets go and does not resend it in a loop.
		err = nil
	}
	if err == nil && dropped {
		// The stored records are committed, but not all the stream's:
		// a spooling exporter replays the stream, and the records
		// already stored are dropped as duplicates.
		err = errors.New("collector: records of the stream were dropped (more than 4 Mi waiting for the store)")
	}
	return err
}

// Run listens on every configured URL until ctx is cancelled, then
// commits what it has received and closes the store.
func (s *Server) Run(ctx context.Context) error {
	// The classification rules apply when reports are built from the
	// store; a file that does not compile is refused at start.
	if s.cfg.Rules != "" {
		if _, err := classify.Load(s.cfg.Rules); err != nil {
			return err
		}
	}
	// So does the service list of /api/report?by=app.
	services := service.Default()
	if s.cfg.Services != "" {
		var err error
		if services, err = service.Load(s.cfg.Services); err != nil {
			return err
		}
	}
	// Release: the file is open only during commits and reads, so that
	// `mira report --db` can open it while the collector runs.
	st, err := store.Open(s.cfg.DB, &store.Options{Release: true, Timeout: storeLockWait, InitialMmapSize: storeMmapSize,
		SegmentSize: segmentSize(s.cfg.Retention.MaxSize)})
	if err != nil {
		return err
	}
	s.st = st
	defer st.Close()
	seqs, err := st.SeqSets()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.seqs = seqs
	s.mu.Unlock()
	pos, err := st.SeqNexts()
	if err != nil {
		return err
	}
	s.loadPos(pos)
	if s.cfg.Rollups.Enabled {
		if err := s.startRollups(ctx, st); err != nil {
			return err
		}
	}
	if err := s.startForward(); err != nil {
		return err
	}
	allow, err := s.cfg.AllowPrefixes()
	if err != nil {
		return err
	}
	lim := s.cfg.Limits
	s.coll = collector.New(s, &collector.Config{Allow: allow, Logger: s.log,
		MaxSessionTemplates: lim.TemplatesPerExporter, MaxTemplates: lim.Templates,
		MaxSessionDomains: lim.DomainsPerExporter, MaxUDPSessions: lim.UDPExporters,
		TemplateLifetime: lim.TemplateLifetime, MaxConnections: lim.TCPConnections})

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var addrs []net.Addr
	for _, l := range s.cfg.Listen {
		a, err := s.listen(lctx, l)
		if err != nil {
			return err
		}
		s.log.Info("listening", "url", l, "addr", a.String())
		addrs = append(addrs, a)
	}
	// One registry serves /metrics on the metrics address and on the
	// HTTP API's.
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics{s: s})
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if s.cfg.HTTP != "" {
		rules := classify.Default()
		if s.cfg.Rules != "" {
			if rules, err = classify.Load(s.cfg.Rules); err != nil {
				return err
			}
		}
		ln, err := net.Listen("tcp", s.cfg.HTTP)
		if err != nil {
			return fmt.Errorf("collector: http: %w", err)
		}
		srv, err := s.httpServer(st, rules, services, metricsHandler)
		if err != nil {
			ln.Close()
			return err
		}
		if srv.TLSConfig != nil {
			go srv.ServeTLS(ln, "", "")
		} else {
			go srv.Serve(ln)
		}
		defer srv.Close()
		s.log.Info("http api", "addr", ln.Addr().String())
		s.mu.Lock()
		s.httpAddr = ln.Addr()
		s.mu.Unlock()
	}
	if s.Addrs != nil {
		s.Addrs <- addrs
	}
	if s.cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", s.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("collector: metrics: %w", err)
		}
		srv := &http.Server{Handler: metricsHandler, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}

	retain := time.NewTicker(30 * time.Second)
	defer retain.Stop()
	s.retention()

	tick := time.NewTicker(commitInterval)
	defer tick.Stop()
	statsTick := time.NewTicker(s.statsEvery)
	defer statsTick.Stop()
	saveStats := s.saveStats
	for {
		select {
		case <-ctx.Done():
			// Stop the listeners and wait until no decoder can hand over
			// records, so that the final commit holds everything received.
			cancel()
			s.coll.Wait()
			s.stopForward()
			s.finalCommit()
			s.stopRollups()
			saveStats()
			s.log.Info("collector stopped", "stored", s.stored)
			return nil
		case <-tick.C:
			s.commitOrPrune()
			s.idleRollups()
		case <-s.kick:
			s.mu.Lock()
			failing := s.failing
			s.mu.Unlock()
			if !failing {
				s.commitOrPrune()
			}
		case <-statsTick.C:
			saveStats()
		case <-retain.C:
			s.retention()
		}
	}
}

// statsSaver is what saveStats saved last; its mutex serialises saves
// (Run's ticks and the API's requests).
type statsSaver struct {
	mu                             sync.Mutex
	saved                          collector.Stats
	dropped, held, back, full, pos uint64
	written                        bool
}

// saveStats adds the collector's counters counted since the last save to
// the store: at every stats tick, at the stop, and before each API
// request (so that a report's messages, records and lost are current,
// as mira report reads them after the stop; before, for the first
// stats interval after the start they were absent from /api/report).
func (s *Server) saveStats() {
	sv := &s.statsSave
	sv.mu.Lock()
	defer sv.mu.Unlock()
	cur := s.coll.Stats()
	d := statsDelta(sv.saved, cur)
	s.mu.Lock()
	dropped, held, back, full, pos := s.dropped, s.heldDropped, s.ledgerSeen.Backwards, s.ledgerSeen.Full, s.posEvicted
	s.mu.Unlock()
	d.Dropped = dropped - sv.dropped
	if held > sv.held {
		d.Evicted["held-names"] = held - sv.held
	}
	if pos > sv.pos {
		d.Evicted["sequence-positions"] = pos - sv.pos
	}
	if back > sv.back {
		d.Malformed["ledger-backwards"] = back - sv.back
	}
	if full > sv.full {
		d.Malformed["ledger-overflow"] = full - sv.full
	}
	if sv.written && statsEmpty(d) {
		// Nothing counted since the last write: an idle collector
		// does not open and sync the store every 5 s for nothing.
		return
	}
	if err := s.st.AddStats(d); err != nil {
		s.log.Error("store stats", "err", err)
		return
	}
	sv.written = true
	sv.saved, sv.dropped, sv.held, sv.back, sv.full, sv.pos = cur, dropped, held, back, full, pos
}

// storedAllFrom says no record from address a waits for the store:
// taken with wmu held, so that no commit has records out of s.pending.
func (s *Server) storedAllFrom(a netip.Addr) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.pending.m {
		if k.addr == a && e.Len() > 0 {
			return false
		}
	}
	return true
}

func (s *Server) listen(ctx context.Context, raw string) (net.Addr, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("collector: bad listen URL %q (want udp://, tcp:// or tls://host:port)", raw)
	}
	switch u.Scheme {
	case "udp":
		return s.coll.ListenUDP(ctx, u.Host)
	case "tcp":
		return s.coll.ListenTCP(ctx, u.Host)
	case "tls":
		t, err := s.cfg.TLS.Server()
		if err != nil {
			return nil, fmt.Errorf("collector: listen %s: %w (collector.yaml tls: cert, key, and ca to require exporters' certificates)", raw, err)
		}
		return s.coll.ListenTLS(ctx, u.Host, t)
	}
	return nil, errors.New("collector: unsupported listen scheme " + u.Scheme + " in " + raw)
}

// HTTPAddr returns the bound address of the HTTP API, nil before Run has
// started it or without one.
func (s *Server) HTTPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// segmentSize is the store's segment size for a size limit: retention
// by size deletes whole segments, so a sixteenth of the limit (1 MiB to
// the default) keeps the store within ~6 % under it.
func segmentSize(maxSize int64) int64 {
	if maxSize <= 0 {
		return 0
	}
	return min(max(maxSize/16, 1<<20), store.DefaultSegmentSize)
}

// commitOrPrune commits; when the write fails for another reason than a
// reader holding the store (a full disk) and retention by size is
// configured, it applies retention at once rather than at its next tick
// (30 s), so that the next commit finds room before the records waiting
// outgrow what the disk can take.
func (s *Server) commitOrPrune() {
	if err := s.commit(); err != nil && !errors.Is(err, store.ErrLocked) && s.cfg.Retention.MaxSize > 0 {
		s.retention()
	}
}

// retention applies the configured maximum age and size of the store.
func (s *Server) retention() {
	r := s.cfg.Retention
	if r.MaxAge > 0 {
		if n, err := s.st.PruneBefore(time.Now().Add(-r.MaxAge)); err != nil {
			s.log.Error("retention by age", "err", err)
		} else if n > 0 {
			s.log.Info("retention: pruned old records", "chunks", n, "max_age", r.MaxAge)
		}
	}
	for _, x := range []struct {
		res time.Duration
		max time.Duration
	}{{store.RollupMinute, s.cfg.Rollups.Minute}, {store.RollupHour, s.cfg.Rollups.Hour}} {
		if x.max <= 0 {
			continue
		}
		if n, err := s.st.PruneRollups(x.res, time.Now().Add(-x.max)); err != nil {
			s.log.Error("retention of rollups", "err", err)
		} else if n > 0 {
			s.log.Info("retention: pruned old rollups", "cells", n, "resolution", x.res, "max_age", x.max)
		}
	}
	if r.MaxSize > 0 {
		if n, err := s.st.PruneToSize(r.MaxSize); err != nil {
			s.log.Error("retention by size", "err", err)
		} else if n > 0 {
			s.log.Info("retention: pruned oldest records", "chunks", n, "max_size", r.MaxSize)
		}
	}
}
