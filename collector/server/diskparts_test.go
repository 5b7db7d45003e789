package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// diskServer is a Server with the default configuration on a new store
// at db (releasing the file between commits, as mira-collector opens
// it), its rollups started, and the buffer its log goes to. The store is
// closed when t ends.
func diskServer(t *testing.T, db string) (*Server, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = db
	log := new(bytes.Buffer)
	s := New(cfg, slog.New(slog.NewTextHandler(log, nil)))
	st, err := store.Open(cfg.DB, &store.Options{Release: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.st = st
	if err := s.startRollups(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return s, log
}

// ballast writes n zero bytes to dir/name (room taken on a small disk)
// and returns its path.
func ballast(t *testing.T, dir, name string, n int) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDiskFullBacklogInParts: without retention by size, a disk fills
// up and the records wait; the operator then frees less room than the
// backlog needs. What fits is stored (oldest first, an origin at a
// time), the rest stays pending and is stored once more room appears:
// in the end every record sent is stored exactly once. Before, each
// commit wrote the whole backlog and failed until the disk had room for
// all of it (nothing stored; meanwhile the backlog grows to maxPending
// and records are dropped). Throughout, the store claims only what it
// holds: a spooling exporter's sequence set names only stored records
// (its parts carry their numbers), its StoredAck waits until its records are
// stored, sequence positions and loss are committed with the last of
// their origin's records, and the rollups are fed each stored record
// once.
func TestDiskFullBacklogInParts(t *testing.T) {
	dir := peertest.Tmpfs(t, 16<<20)
	small, large := ballast(t, dir, "small", 3<<20), ballast(t, dir, "large", 8<<20)
	s, log := diskServer(t, filepath.Join(dir, "full.db"))
	st := s.st

	// A: UDP, B: TCP with a sequence gap in the backlog, C: TCP with a
	// spool (its records deduplicated by sequence number).
	type src struct {
		o    collector.Origin
		sent int // records consumed = the next sequence number
		lost uint32
	}
	a := &src{o: collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1, Transport: "udp"}}
	b := &src{o: collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.2:40000"), Domain: 2, Transport: "tcp"}}
	c := &src{o: collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.3:40001"), Domain: 3, Transport: "tcp", Instance: 7}}
	d := &src{o: collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.4:40002"), Domain: 4, Transport: "tcp", Instance: 9}}
	srcs := []*src{a, b, c, d}
	seed, shift := uint64(0), int64(0)
	send := func(x *src, n int, gap uint32) []flow.Record {
		seed++
		recs := ipfixtest.Random(seed, n)
		for i := range recs { // the backlog ends after the records before
			recs[i].First += shift
			recs[i].Last += shift
		}
		o := x.o
		o.Sequence = uint32(x.sent) + gap
		o.Lost = gap
		o.Next, o.SeqKnown = o.Sequence+uint32(n), true
		s.Consume(o, recs)
		x.sent += n + int(gap)
		x.lost += gap
		return recs
	}
	commit := func() error {
		t.Helper()
		err := s.commit()
		if err != nil && !noSpace(err) {
			t.Fatalf("commit: %v, want nil or ENOSPC", err)
		}
		return err
	}
	// What the store holds, by origin (mira flows reads the same).
	storedBy := func() map[store.Origin]int {
		t.Helper()
		m := map[store.Origin]int{}
		if err := st.Flows(store.Query{}, func(f store.StoredFlow) error { m[f.Origin]++; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	so := func(x *src) store.Origin {
		return store.Origin{Exporter: x.o.Exporter.Addr().String(), Domain: x.o.Domain}
	}
	// The store claims what it holds, no more.
	claims := func(when string) map[store.Origin]int {
		t.Helper()
		held := storedBy()
		total := 0
		for _, n := range held {
			total += n
		}
		if uint64(total) != s.stored {
			t.Fatalf("%s: the store holds %d records, the collector counts %d stored", when, total, s.stored)
		}
		sets, err := st.SeqSets()
		if err != nil {
			t.Fatal(err)
		}
		for o, set := range sets {
			n := 0
			for _, r := range set.Ranges() {
				n += int(r[1] - r[0] + 1)
			}
			if n != held[o.Origin] {
				t.Fatalf("%s: the sequence set of %v names %d records, the store holds %d of that origin", when, o, n, held[o.Origin])
			}
		}
		pos, err := st.SeqNexts()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range srcs {
			for sp, n := range pos {
				// Sequence numbers are records sent (gaps included).
				if sp.Origin == so(x) && int(n.Next) > held[so(x)]+int(x.lost) {
					t.Fatalf("%s: stored position of %v is %d, beyond the %d records stored (+%d lost)", when, sp, n.Next, held[so(x)], x.lost)
				}
			}
		}
		stats, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if held[so(b)] < b.sent-int(b.lost) && stats.Lost != 0 {
			t.Fatalf("%s: stored loss %d before the records around the gap", when, stats.Lost)
		}
		return held
	}

	// Fill the disk with A's records.
	for i := 0; commit() == nil; i++ {
		if i == 1000 {
			t.Fatal("the 16 MiB disk never filled")
		}
		send(a, 5000, 0)
	}
	// Then what fits of the last batch is stored, until nothing does.
	for {
		n := s.stored
		if commit() == nil {
			t.Fatal("the commit that failed stored all at the next try")
		}
		if s.stored == n {
			break
		}
	}
	claims("disk full")
	shift = int64(24 * time.Hour)
	size, err := st.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	perRecord := float64(size) / float64(s.stored)
	// A backlog twice the room the small ballast gives back: A's and
	// D's records fit, then part of C's (spooled: in parts, each with
	// the set of its numbers; TestDiskFullSpoolInParts).
	room := int(float64(3<<20) / perRecord)
	send(a, room/4, 0)
	send(d, room/24, 0)
	send(c, room/2, 0)
	send(b, room/3, 0)
	send(b, room/3, 5) // five records lost before these
	send(a, room/4, 0)
	send(c, room/2, 0)
	send(d, room/24, 0)
	before, werrs := s.stored, s.werrs
	for range 5 {
		if commit() == nil {
			t.Fatal("a commit on the full disk succeeded")
		}
	}
	if s.stored != before || s.werrs != werrs+5 {
		t.Fatalf("full disk: stored %d (was %d), %d failed commits counted, want 5", s.stored, before, s.werrs-werrs)
	}
	claims("backlog on a full disk")
	if s.StreamEnd(c.o) == nil {
		t.Fatal("StreamEnd acknowledged a spooling exporter's records on a full disk")
	}

	// Room for about half of the backlog.
	if err := os.Remove(small); err != nil {
		t.Fatal(err)
	}
	pending := s.pending.n
	err = commit()
	if s.stored == before {
		t.Fatalf("%d records pending, room for about %d freed: nothing stored (%v)", pending, room, err)
	}
	if err == nil || s.pending.n == 0 {
		t.Fatalf("a backlog larger than the room freed stored whole (%d records, err %v)", s.stored-before, err)
	}
	if got := int(s.stored-before) + s.pending.n; got != pending {
		t.Fatalf("%d stored + %d pending, want the %d pending before", s.stored-before, s.pending.n, pending)
	}
	held := claims("part of the backlog stored")
	if held[so(d)] != d.sent || held[so(c)] == 0 || held[so(c)] == c.sent || held[so(b)] != 0 {
		t.Fatalf("by origin %v: want all of D's (%d), part of C's (%d sent), none of B's", held, d.sent, c.sent)
	}
	// Oldest first: an origin's pending records end after its stored.
	for _, x := range srcs {
		e := s.pending.m[pendKey{x.o.Exporter.Addr(), x.o.Domain}]
		if e == nil || e.Len() == 0 || held[so(x)] == 0 {
			continue
		}
		var newest int64
		st.Flows(store.Query{}, func(f store.StoredFlow) error {
			if f.Origin == so(x) {
				newest = max(newest, f.Record.Last)
			}
			return nil
		})
		e.Each(func(r *flow.Record) {
			if r.Last < newest {
				t.Fatalf("origin %v: a pending record ends at %d, before a stored one (%d)", so(x), r.Last, newest)
			}
		})
	}
	// D's records are all stored: its stream is acknowledged while the
	// store still fails for the others.
	if err := s.StreamEnd(d.o); err != nil {
		t.Fatalf("StreamEnd of a spooling exporter whose records are all stored: %v", err)
	}
	// The spool's replay of C's first message is a duplicate whether
	// stored or pending.
	dups := s.duplicates
	o := c.o
	o.Sequence, o.Next, o.SeqKnown = 0, uint32(c.sent), true
	s.Consume(o, ipfixtest.Random(2, 100)) // its seed: the first sent
	if s.duplicates != dups+100 {
		t.Fatalf("replayed records: %d duplicates, want 100", s.duplicates-dups)
	}
	werrs = s.werrs
	if err := s.StreamEnd(c.o); err == nil {
		t.Fatalf("StreamEnd acknowledged with %d records pending", s.pending.n)
	}
	if s.werrs != werrs {
		t.Fatal("StreamEnd retried the commit that failed just before (a spool's reconnect loop retries the full disk)")
	}
	t.Logf("room for ~%d records freed: %d of %d stored (%v by origin), %d pending", room, s.stored-before, pending, held, s.pending.n)

	// Room for the rest.
	if err := os.Remove(large); err != nil {
		t.Fatal(err)
	}
	if err := commit(); err != nil {
		t.Fatalf("with room for the backlog: %v (%d pending)", err, s.pending.n)
	}
	if err := s.StreamEnd(c.o); err != nil {
		t.Fatalf("StreamEnd once all is stored: %v", err)
	}
	held = claims("all stored")
	for _, x := range srcs {
		if want := x.sent - int(x.lost); held[so(x)] != want {
			t.Fatalf("origin %v: %d records stored, %d sent", so(x), held[so(x)], want)
		}
	}
	if s.pending.n != 0 || s.dropped != 0 {
		t.Fatalf("%d pending, %d dropped", s.pending.n, s.dropped)
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	pos, err := st.SeqNexts()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range srcs[:2] {
		sp := store.SeqPos{Origin: so(x)}
		if x.o.Transport == "udp" {
			sp.Port = x.o.Exporter.Port()
		}
		if pos[sp].Next != uint32(x.sent) {
			t.Fatalf("origin %v: stored position %d, want %d", sp, pos[sp].Next, x.sent)
		}
	}
	if stats.Lost != uint64(b.lost) {
		t.Fatalf("stored sequence loss %d, want %d", stats.Lost, b.lost)
	}
	s.stopRollups()
	m, err := st.RollupMeta()
	if err != nil {
		t.Fatal(err)
	}
	if m.Records != s.stored {
		t.Fatalf("rollups fed %d records, %d stored", m.Records, s.stored)
	}
	// One line per change of state, not per failed commit.
	if n := strings.Count(log.String(), "store write failed"); n != 1 {
		t.Fatalf("%d 'store write failed' lines, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "store short of space") || !strings.Contains(log.String(), "store writes succeed again") {
		t.Fatalf("log:\n%s", log.String())
	}
}

// TestDiskFullRollupLog: rollups that cannot be written on a full disk
// are logged when their writes start failing and when they succeed
// again, not at every commit.
func TestDiskFullRollupLog(t *testing.T) {
	defer func(h time.Duration) { rollupHold = h }(rollupHold)
	rollupHold = 0 // cells written as the records come
	dir := peertest.Tmpfs(t, 4<<20)
	s, log := diskServer(t, filepath.Join(dir, "r.db"))
	// Fill what is left of the disk.
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 64<<10)); err == nil; _, err = f.Write(make([]byte, 4<<10)) {
	}
	f.Close()
	o := store.Origin{Exporter: "192.0.2.1", Domain: 1}
	for i := range 5 {
		e := &store.Encoded{Origin: o}
		recs := ipfixtest.Random(uint64(i+1), 2000)
		for j := range recs { // far apart: the Roller writes cells
			recs[j].First += int64(i) * int64(time.Hour)
			recs[j].Last += int64(i) * int64(time.Hour)
		}
		e.AddAll(recs)
		s.feedRollups([]*store.Encoded{e}, false)
	}
	if s.rollKept == nil {
		t.Fatal("the rollups were written on the full disk")
	}
	if n := strings.Count(log.String(), "rollups: write failed"); n != 1 {
		t.Fatalf("%d 'rollups: write failed' lines for 5 failed writes, want 1:\n%s", n, log.String())
	}
	os.Remove(filepath.Join(dir, "ballast"))
	s.feedRollups(nil, false)
	if s.rollKept != nil || !strings.Contains(log.String(), "rollups: written again") {
		t.Fatalf("room again: kept %v; log:\n%s", s.rollKept != nil, log.String())
	}
}

// TestStreamDroppedNotAcked: a stream some of whose records were dropped
// (more than maxPending waiting) is not acknowledged when it ends, though
// the records kept are stored: before, StreamEnd succeeded and the
// collector wrote StoredAck, so a spooling exporter forgot records the
// collector never stored. Its replay then stores the dropped records
// and drops those already stored as duplicates.
func TestStreamDroppedNotAcked(t *testing.T) {
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = filepath.Join(t.TempDir(), "d.db")
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.maxPending = 1000
	st, err := store.Open(cfg.DB, &store.Options{Release: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s.st = st
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.5:40005"), Domain: 5, Transport: "tcp", Instance: 3}
	stream := func() {
		o.Sequence = 0
		s.Consume(o, ipfixtest.Random(1, 800))
		o.Sequence = 800
		s.Consume(o, ipfixtest.Random(2, 500)) // beyond maxPending the first time
	}
	stream()
	if s.dropped != 500 {
		t.Fatalf("dropped %d, want 500", s.dropped)
	}
	if err := s.StreamEnd(o); err == nil {
		t.Fatal("StreamEnd acknowledged a stream whose records were dropped")
	}
	if s.stored != 800 {
		t.Fatalf("stored %d, want the 800 kept", s.stored)
	}
	o.Exporter = netip.MustParseAddrPort("192.0.2.5:40006") // the spool's reconnect
	stream()
	if err := s.StreamEnd(o); err != nil {
		t.Fatalf("the replay: %v", err)
	}
	n := 0
	if err := st.Flows(store.Query{}, func(store.StoredFlow) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1300 || s.duplicates != 800 {
		t.Fatalf("after the replay: %d stored, %d duplicates; want 1300, 800", n, s.duplicates)
	}
}

// TestDiskFullSpoolInParts: a spooling exporter's backlog larger than
// the free space is stored in parts, each with the sequence set of the
// records it completes, and a collector killed in that state (the
// store as it stands, a new Server on it) takes the spool's replay of
// every message as the records it has not stored, no more, no less:
// in the end each record is stored once. Before, such an origin was
// committed whole or not at all, and nothing of it was stored while
// the disk stayed short of its whole backlog.
func TestDiskFullSpoolInParts(t *testing.T) {
	dir := peertest.Tmpfs(t, 16<<20)
	small, large := ballast(t, dir, "small", 3<<20), ballast(t, dir, "large", 8<<20)
	db := filepath.Join(dir, "full.db")
	s, _ := diskServer(t, db)

	// Fill the disk with a UDP exporter's records.
	fill := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1, Transport: "udp", SeqKnown: true}
	for i := uint64(0); ; i++ {
		if i == 1000 {
			t.Fatal("the 16 MiB disk never filled")
		}
		s.Consume(fill, ipfixtest.Random(1000+i, 5000))
		if err := s.commit(); err != nil {
			if !noSpace(err) {
				t.Fatal(err)
			}
			break
		}
	}
	for n := s.stored; ; n = s.stored {
		if s.commit() == nil {
			t.Fatal("the commit that failed stored all at the next try")
		}
		if s.stored == n {
			break
		}
	}
	size, err := s.st.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	room := int(float64(3<<20) / (float64(size) / float64(s.stored)))

	// The spooling exporter's messages (seed, sequence number, records),
	// twice the room the small ballast gives back, a day later; the
	// sixth repeats half of the fifth (a replay's overlap: deduplicated
	// record by record).
	type msg struct {
		seed uint64
		seq  uint32
		n    int
	}
	var msgs []msg
	next := uint32(0)
	for i := uint64(0); int(next) < 2*room; i++ {
		m := msg{seed: i + 1, seq: next, n: 1000}
		if i == 5 {
			m.seq -= 500
		}
		msgs = append(msgs, m)
		next = m.seq + uint32(m.n)
	}
	sp := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.3:40001"), Domain: 3, Transport: "tcp", Instance: 7}
	send := func(s *Server, m msg, batch bool) {
		recs := ipfixtest.Random(m.seed, m.n)
		for i := range recs {
			recs[i].First += int64(24 * time.Hour)
			recs[i].Last += int64(24 * time.Hour)
		}
		o := sp
		o.Sequence, o.Next, o.SeqKnown = m.seq, m.seq+uint32(m.n), true
		if !batch {
			s.Consume(o, recs)
			return
		}
		e := &store.Encoded{}
		e.AddAll(recs)
		s.ConsumeBatch(o, e)
	}
	for i, m := range msgs {
		send(s, m, i%2 == 1)
	}
	origin := store.Origin{Exporter: "192.0.2.3", Domain: 3}
	held := func(st *store.Store) int {
		t.Helper()
		n := 0
		if err := st.Flows(store.Query{}, func(f store.StoredFlow) error {
			if f.Origin == origin {
				n++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The set stored names as many numbers as the store holds records of
	// the origin (which numbers: the replay below).
	named := func(st *store.Store) (int, int) {
		t.Helper()
		sets, err := st.SeqSets()
		if err != nil {
			t.Fatal(err)
		}
		set := sets[store.SeqOrigin{Origin: origin, Instance: 7}]
		if set == nil {
			return 0, 0
		}
		n := 0
		for _, r := range set.Ranges() {
			n += int(r[1]-r[0]) + 1
		}
		return n, len(set.Ranges())
	}
	if err := s.commit(); err == nil {
		t.Fatal("a commit on the full disk succeeded")
	}
	if err := os.Remove(small); err != nil {
		t.Fatal(err)
	}
	err = s.commit()
	got := held(s.st)
	if err == nil || got == 0 || got >= int(next) {
		t.Fatalf("room for ~%d records freed, backlog of %d: %d stored (err %v)", room, next, got, err)
	}
	n, ranges := named(s.st)
	if n != got {
		t.Fatalf("the stored sequence set names %d numbers, the store holds %d records of the origin", n, got)
	}
	if s.StreamEnd(sp) == nil {
		t.Fatal("StreamEnd acknowledged a spooling exporter's records partly stored")
	}
	t.Logf("room for ~%d records freed: %d of %d stored, the set in %d ranges", room, got, next, ranges)

	// Killed: a new collector on the store as it stands, room for the
	// rest, the spool replays every message.
	if err := os.Remove(large); err != nil {
		t.Fatal(err)
	}
	s2, _ := diskServer(t, db)
	seqs, err := s2.st.SeqSets()
	if err != nil {
		t.Fatal(err)
	}
	s2.seqs = seqs
	for i, m := range msgs {
		send(s2, m, i%2 == 0)
	}
	if err := s2.commit(); err != nil {
		t.Fatalf("with room for the replay: %v", err)
	}
	if all := held(s2.st); all != int(next) || s2.duplicates != uint64(got+500) {
		t.Fatalf("after the replay: %d records of the origin stored, %d numbers sent; %d duplicates, want %d (stored before) + 500 (the overlap)",
			all, next, s2.duplicates, got)
	}
	if n, _ := named(s2.st); n != int(next) {
		t.Fatalf("the set names %d numbers, %d stored", n, next)
	}
}
