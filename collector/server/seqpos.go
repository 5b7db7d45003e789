package server

import (
	"net/netip"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
)

// Sequence positions across transport sessions (collector.SequenceConsumer).
//
// IPFIX numbers data records per transport session and observation
// domain, so a session alone cannot tell what was lost before it began:
// records an exporter sent on a connection the collector never committed
// (a collector killed and restarted, a connection reset) vanished without
// a trace. The server keeps, per exporter position, the sequence number
// expected next, and seeds each new session's domain with it
// (ipfix.Session.Seed): a first message ahead of it counts the gap as
// sequence loss, one behind it (or at 0) is a restarted exporter or a
// spool's replay and re-seeds without counting.
//
// The position and every gap a session counts (Origin.Lost) are committed
// in the transaction of the records that came with them
// (store.PutEncodedCommit), so after a crash the stored loss, positions
// and records agree: a restarted collector seeds from the position of
// the last committed record and counts what the crash lost exactly once.
//
// An exporter position is its address and observation domain; for UDP
// its source port too. TCP and TLS reconnects come from new ports, so
// their positions leave the port out (store.SeqPos.Port 0); a UDP
// exporter keeps its socket, so its port stays, and several UDP
// exporters behind one address (NAT) with the same domain keep apart by
// it; a UDP exporter that restarts gets a new port and is not compared
// with its previous life. Two TCP exporters behind one address with the
// same domain cannot be told apart: while one connection has the
// position (its owner), another that meets it is neither seeded nor
// moves it; once the owner's connection ended, the next message of
// either takes it. Exporters behind one address should use distinct
// observation domains (as IPFIX asks of one exporting process).
//
// A spooling exporter's gap at the start of a session is not counted
// (ipfix.Session.Seed): its spool's ledger counts what it dropped, and
// its replays are deduplicated (dedup).

// maxSeqPos bounds the positions kept; beyond it the least recently
// moved is forgotten (and counted: evicted "sequence-positions").
const maxSeqPos = 4096

type posKey struct {
	addr   netip.Addr
	port   uint16 // UDP source port; 0 for streams
	domain uint32
}

type seqPos struct {
	next  uint32
	known bool
	// owner is the stream connection that moves the position while
	// live (its connection is open); UDP positions have none.
	owner netip.AddrPort
	live  bool
	gen   uint64 // s.posGen when last moved (least recently moved first)
}

func posKeyOf(o collector.Origin) posKey {
	k := posKey{addr: o.Exporter.Addr(), domain: o.Domain}
	if o.Transport == "udp" {
		k.port = o.Exporter.Port()
	}
	return k
}

// NextSequence implements collector.SequenceConsumer.
func (s *Server) NextSequence(o collector.Origin) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pos[posKeyOf(o)]
	if p == nil || !p.known || (p.live && p.owner != o.Exporter) {
		return 0, false
	}
	return p.next, true
}

// Sequenced implements collector.SequenceConsumer: a message without
// records moves a position but makes none, so that options or garbage
// from domains that send no flows do not take the place of exporters'
// positions (maxSeqPos).
func (s *Server) Sequenced(o collector.Origin) {
	s.mu.Lock()
	s.notePos(o, false)
	s.mu.Unlock()
}

// notePos takes a message's sequence accounting: its gap for the next
// commit, and its domain's next number as the origin's position (made
// when create is set); s.mu held.
func (s *Server) notePos(o collector.Origin, create bool) {
	if o.Lost > 0 {
		// By origin: committed with that origin's records (commitParts).
		if s.seqLost == nil {
			s.seqLost = map[store.Origin]uint64{}
		}
		s.seqLost[store.Origin{Exporter: o.Exporter.Addr().String(), Domain: o.Domain}] += uint64(o.Lost)
		if o.Seeded {
			s.logSeededGap(o)
		}
	}
	k := posKeyOf(o)
	p := s.pos[k]
	stream := o.Transport != "udp"
	if p == nil {
		if !o.SeqKnown || !create {
			return
		}
		if s.pos == nil {
			s.pos = map[posKey]*seqPos{}
		}
		if len(s.pos) >= maxSeqPos {
			s.evictPos()
		}
		p = &seqPos{}
		s.pos[k] = p
	} else if stream && p.live && p.owner != o.Exporter {
		return // another connection has it
	}
	if stream {
		p.owner, p.live = o.Exporter, true
	}
	p.next, p.known = o.Next, o.SeqKnown
	s.posGen++
	p.gen = s.posGen
	if s.dirtyPos == nil {
		s.dirtyPos = map[posKey]bool{}
	}
	s.dirtyPos[k] = true
}

// seqLogMax bounds the gaps between sessions logged a minute (exporters
// reconnecting in a loop must not flood the log); those not logged are
// counted in the next minute's first line.
const seqLogMax = 100

// logSeededGap warns of records lost between an exporter's transport
// sessions (the collector or the connection went down with them); s.mu
// held.
func (s *Server) logSeededGap(o collector.Origin) {
	now := time.Now()
	if now.Sub(s.seqLogSince) >= time.Minute {
		s.seqLogSince, s.seqLogN = now, 0
	}
	if s.seqLogN >= seqLogMax {
		s.seqLogSkipped++
		return
	}
	s.seqLogN++
	s.log.Warn("records lost between transport sessions: the exporter's sequence numbers went on past what was stored before this session (a collector restart or a broken connection)",
		"exporter", o.Exporter.String(), "transport", o.Transport, "domain", o.Domain, "records", o.Lost, "gaps_not_logged", s.seqLogSkipped)
	s.seqLogSkipped = 0
}

// evictPos forgets the least recently moved position; s.mu held.
func (s *Server) evictPos() {
	var victim posKey
	var old *seqPos
	for k, p := range s.pos {
		if old == nil || p.gen < old.gen {
			victim, old = k, p
		}
	}
	if old != nil {
		delete(s.pos, victim)
		s.posEvicted++
		if s.dirtyPos == nil {
			s.dirtyPos = map[posKey]bool{}
		}
		s.dirtyPos[victim] = true // deleted from the store
	}
}

// streamEnded releases the positions a stream connection owned; s.mu
// held.
func (s *Server) streamEnded(ap netip.AddrPort) {
	for _, p := range s.pos {
		if p.live && p.owner == ap {
			p.live = false
		}
	}
}

// takePos returns the positions and loss (by origin) to commit and
// clears them; s.mu held. putBackPos undoes it for what a commit did not
// store.
func (s *Server) takePos(now time.Time) (map[store.SeqPos]*store.SeqNext, map[store.Origin]uint64) {
	var next map[store.SeqPos]*store.SeqNext
	for k := range s.dirtyPos {
		if next == nil {
			next = make(map[store.SeqPos]*store.SeqNext, len(s.dirtyPos))
		}
		sp := store.SeqPos{Origin: store.Origin{Exporter: k.addr.String(), Domain: k.domain}, Port: k.port}
		if p := s.pos[k]; p != nil && p.known {
			next[sp] = &store.SeqNext{Next: p.next, Updated: now}
		} else {
			next[sp] = nil
		}
	}
	clear(s.dirtyPos)
	lost := s.seqLost
	s.seqLost = nil
	return next, lost
}

// putBackPos marks what takePos returned as still to commit; s.mu held.
func (s *Server) putBackPos(next map[store.SeqPos]*store.SeqNext, lost map[store.Origin]uint64) {
	for o, n := range lost {
		if s.seqLost == nil {
			s.seqLost = map[store.Origin]uint64{}
		}
		s.seqLost[o] += n
	}
	for sp := range next {
		a, err := netip.ParseAddr(sp.Exporter)
		if err != nil {
			continue
		}
		if s.dirtyPos == nil {
			s.dirtyPos = map[posKey]bool{}
		}
		s.dirtyPos[posKey{addr: a, port: sp.Port, domain: sp.Domain}] = true
	}
}

// loadPos adopts the positions stored by earlier runs.
func (s *Server) loadPos(stored map[store.SeqPos]store.SeqNext) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sp, n := range stored {
		a, err := netip.ParseAddr(sp.Exporter)
		if err != nil {
			continue
		}
		if s.pos == nil {
			s.pos = map[posKey]*seqPos{}
		}
		// Oldest first when evicted: their order is by Updated.
		s.pos[posKey{addr: a, port: sp.Port, domain: sp.Domain}] = &seqPos{next: n.Next, known: true,
			gen: uint64(max(n.Updated.UnixMilli(), 0))}
	}
	for _, p := range s.pos {
		s.posGen = max(s.posGen, p.gen)
	}
}
