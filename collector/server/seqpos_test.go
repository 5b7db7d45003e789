package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix"
)

// seqServer is a collector on db as Run starts one (sequence sets and
// positions loaded from the store), without listeners: tests hand it
// streams. Closing its store without a commit is a crash.
func seqServer(t *testing.T, db string) *Server {
	t.Helper()
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = db
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := store.Open(db, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.st = st
	if s.seqs, err = st.SeqSets(); err != nil {
		t.Fatal(err)
	}
	pos, err := st.SeqNexts()
	if err != nil {
		t.Fatal(err)
	}
	s.loadPos(pos)
	s.coll = collector.New(s, nil)
	return s
}

// seqMessage is one IPFIX message of domain with n flow records numbered
// from seq, its template included; with instance not 0 a message
// announcing the spool instance goes first, numbered seq-1 (as a
// spooling exporter's first message on a connection:
// exporter.Spool.writeTemplates).
func seqMessage(domain, seq uint32, n int, instance uint64) []byte {
	const export = 1_700_000_000
	var pre []byte
	if instance != 0 {
		pre = ipfix.AppendHeader(nil, ipfix.Header{ExportTime: export, Sequence: seq - 1, Domain: domain})
		var s int
		pre, s = ipfix.AppendSetHeader(pre, ipfix.OptionsSetID)
		pre = ipfix.AppendTemplate(pre, ipfix.SpoolOptionsTemplate(ipfix.DefaultPEN))
		pre = ipfix.FinishSet(pre, s, 0)
		pre, s = ipfix.AppendSetHeader(pre, ipfix.SpoolOptionsTemplateID)
		pre = ipfix.AppendSpoolRecord(pre, domain, instance)
		pre = ipfix.FinishSet(pre, s, 0)
		ipfix.FinishMessage(pre)
	}
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: export, Sequence: seq, Domain: domain})
	b, s := ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
	b = ipfix.AppendTemplate(b, &ipfix.Template{ID: 256, Fields: []ipfix.Field{
		{ID: ipfix.IESourceIPv4Address, Length: 4}, {ID: ipfix.IEDestinationIPv4Address, Length: 4},
		{ID: ipfix.IEProtocolIdentifier, Length: 1},
		{ID: ipfix.IEPacketDeltaCount, Length: 4}, {ID: ipfix.IEOctetDeltaCount, Length: 4},
		{ID: ipfix.IEFlowStartSeconds, Length: 4}, {ID: ipfix.IEFlowEndSeconds, Length: 4},
	}})
	b = ipfix.FinishSet(b, s, 0)
	if n > 0 {
		b, s = ipfix.AppendSetHeader(b, 256)
		for i := range n {
			x := seq + uint32(i) // distinct records
			b = append(b, 10, 1, byte(x>>8), byte(x), 10, 2, 0, 1, 6, 0, 0, 0, 2, 0, 0, 0, 100)
			b = binary.BigEndian.AppendUint32(b, export-10)
			b = binary.BigEndian.AppendUint32(b, export)
		}
		b = ipfix.FinishSet(b, s, 0)
	}
	ipfix.FinishMessage(b)
	return append(pre, b...)
}

// serve hands msgs to s as one TCP connection of exporter ap, which
// ends.
func serve(s *Server, ap netip.AddrPort, msgs ...[]byte) {
	o := collector.Origin{Exporter: ap, Transport: "tcp"}
	s.coll.ServeStream(context.Background(), bytes.NewReader(bytes.Join(msgs, nil)), o)
	s.StreamEnd(o)
}

// listenUDP starts s's UDP listener until the test ends (or stop).
func listenUDP(t *testing.T, s *Server) (addr *net.UDPAddr, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := s.coll.ListenUDP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop = func() { cancel(); s.coll.Wait() }
	t.Cleanup(stop)
	return a.(*net.UDPAddr), stop
}

// sendUDP sends msg from socket u to addr and waits until s decoded it.
func sendUDP(t *testing.T, s *Server, u *net.UDPConn, addr *net.UDPAddr, msg []byte) {
	t.Helper()
	// The server has the message's records once its exporter's position
	// moved (ConsumeBatch notes it with them): the collector's message
	// count moves before, when it decoded the datagram, and a commit
	// between the two missed the records.
	o := collector.Origin{Exporter: u.LocalAddr().(*net.UDPAddr).AddrPort(), Domain: binary.BigEndian.Uint32(msg[12:16]), Transport: "udp"}
	o.Exporter = netip.AddrPortFrom(o.Exporter.Addr().Unmap(), o.Exporter.Port())
	before, known := s.NextSequence(o)
	if _, err := u.WriteToUDP(msg, addr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if next, ok := s.NextSequence(o); ok && (!known || next != before) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not take a datagram's records within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// udpSocket is an exporter's UDP socket (its source port stays).
func udpSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// storedRecords counts the records in s's store.
func storedRecords(t *testing.T, s *Server) int {
	t.Helper()
	n := 0
	if err := s.st.Flows(store.Query{}, func(store.StoredFlow) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedLost is the store's sequence loss (what reports show).
func storedLost(t *testing.T, s *Server) uint64 {
	t.Helper()
	st, err := s.st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Lost
}

// TestSeqPositionsAcrossRestarts: a collector killed with records
// decoded but not committed, restarted on its store, counts what the
// kill lost as the gap between the committed position and the
// exporter's first message on its next connection (from a new source
// port), exactly once; an exporter restarted at 0 is re-seeded without
// loss; over UDP the position is per source port, so another exporter
// behind the same address is not compared with it; a spooling
// exporter's replay after the restart is deduplicated, not counted lost.
func TestSeqPositionsAcrossRestarts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "f.db")
	exp := netip.MustParseAddr("192.0.2.5")
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(exp, port) }

	u1, u2 := udpSocket(t), udpSocket(t)

	a := seqServer(t, db)
	ua, stopA := listenUDP(t, a)
	serve(a, at(40000), seqMessage(1, 0, 10, 0), seqMessage(1, 10, 10, 0)) // committed at its end
	sendUDP(t, a, u1, ua, seqMessage(1, 100, 5, 0))
	serve(a, at(41000), seqMessage(2, 0, 10, 77)) // spooling, domain 2
	if err := a.commit(); err != nil {
		t.Fatal(err)
	}
	// Decoded, not committed: lost in the crash.
	a.coll.ServeStream(context.Background(), bytes.NewReader(seqMessage(1, 20, 10, 0)), collector.Origin{Exporter: at(40001), Transport: "tcp"})
	sendUDP(t, a, u1, ua, seqMessage(1, 105, 3, 0))
	if n := storedRecords(t, a); n != 35 {
		t.Fatalf("before the crash: %d records stored, want 35", n)
	}
	stopA()
	a.st.Close() // the crash: no commit

	b := seqServer(t, db)
	var logged bytes.Buffer
	b.log = slog.New(slog.NewTextHandler(&logged, nil))
	ub, _ := listenUDP(t, b)
	// The exporter reconnects from a new port: messages 20-29 died with
	// the collector, 30-34 were sent while it was down (and lost).
	serve(b, at(40002), seqMessage(1, 35, 5, 0))
	if l := b.coll.Stats().LostRecords; l != 15 {
		t.Errorf("restarted collector counted %d records lost, want 15", l)
	}
	// UDP, the same source port: 105-107 died with the collector,
	// 108-109 were lost on the way.
	sendUDP(t, b, u1, ub, seqMessage(1, 110, 2, 0))
	// Another exporter behind the same address, same domain, another
	// port: not compared.
	sendUDP(t, b, u2, ub, seqMessage(1, 900, 2, 0))
	// The spooling exporter replays 0-9 (stored: duplicates) with 10-14.
	serve(b, at(41001), seqMessage(2, 0, 15, 77))
	if err := b.commit(); err != nil {
		t.Fatal(err)
	}
	st := b.coll.Stats()
	if st.LostRecords != 20 || st.SeededLost != 20 {
		t.Errorf("lost %d (seeded %d), want 20 (20)", st.LostRecords, st.SeededLost)
	}
	// Each gap between sessions is logged at warn level, once.
	for _, want := range []string{
		`level=WARN msg="records lost between transport sessions`,
		`exporter=192.0.2.5:40002 transport=tcp domain=1 records=15 `,
		`transport=udp domain=1 records=5 `,
	} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logged.String())
	}
	if b.duplicates != 10 {
		t.Errorf("%d duplicates dropped, want 10", b.duplicates)
	}
	if n, l := storedRecords(t, b), storedLost(t, b); n != 35+5+2+2+5 || l != 20 {
		t.Errorf("stored %d records, %d lost; want 49 and 20", n, l)
	}

	// A clean restart loses nothing; the exporter restarted (its
	// numbers start at 0 again): re-seeded, nothing counted.
	b.st.Close()
	c := seqServer(t, db)
	serve(c, at(40003), seqMessage(1, 0, 4, 0))
	serve(c, at(40004), seqMessage(1, 4, 4, 0))
	if st := c.coll.Stats(); st.LostRecords != 0 || st.SeqRestarts != 1 {
		t.Errorf("after the exporter's restart: lost %d, restarts %d; want 0 and 1", st.LostRecords, st.SeqRestarts)
	}
	// A domain that sends no records gets no position.
	serve(c, at(40005), seqMessage(3, 0, 0, 0))
	if l := storedLost(t, c); l != 20 {
		t.Errorf("stored loss %d, want 20", l)
	}
	pos, err := c.st.SeqNexts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.SeqPos]uint32{
		{Origin: store.Origin{Exporter: "192.0.2.5", Domain: 1}}:                                                   8,
		{Origin: store.Origin{Exporter: "127.0.0.1", Domain: 1}, Port: uint16(u1.LocalAddr().(*net.UDPAddr).Port)}: 112,
		{Origin: store.Origin{Exporter: "127.0.0.1", Domain: 1}, Port: uint16(u2.LocalAddr().(*net.UDPAddr).Port)}: 902,
		{Origin: store.Origin{Exporter: "192.0.2.5", Domain: 2}}:                                                   15,
	}
	if len(pos) != len(want) {
		t.Errorf("stored positions %v, want %v", pos, want)
	}
	for k, n := range want {
		if p, ok := pos[k]; !ok || p.Next != n || time.Since(p.Updated) > time.Hour {
			t.Errorf("position %+v: %+v, want %d", k, p, n)
		}
	}
}

// TestSeqPositionOwner: while one TCP connection moves an exporter's
// position, another from the same address and domain (a second exporter
// behind a NAT) is neither seeded from it nor moves it; once the first
// has ended, the next connection is seeded.
func TestSeqPositionOwner(t *testing.T) {
	s := seqServer(t, filepath.Join(t.TempDir(), "f.db"))
	exp := netip.MustParseAddr("192.0.2.6")
	one, two := netip.AddrPortFrom(exp, 1000), netip.AddrPortFrom(exp, 2000)
	o1 := collector.Origin{Exporter: one, Domain: 1, Transport: "tcp", Next: 50, SeqKnown: true}
	s.notePos(o1, true)
	o2 := collector.Origin{Exporter: two, Domain: 1, Transport: "tcp", Next: 7, SeqKnown: true}
	if _, ok := s.NextSequence(o2); ok {
		t.Fatal("a second live connection was seeded")
	}
	s.notePos(o2, true)
	if n, ok := s.NextSequence(o1); !ok || n != 50 {
		t.Fatalf("position %d %v after the other connection's message, want 50", n, ok)
	}
	s.StreamEnd(collector.Origin{Exporter: one, Transport: "tcp"})
	if n, ok := s.NextSequence(o2); !ok || n != 50 {
		t.Fatalf("after the owner ended: %d %v, want 50", n, ok)
	}
}

// TestSeqPositionEviction: beyond maxSeqPos positions the least recently
// moved is forgotten, counted, and deleted from the store at the next
// commit.
func TestSeqPositionEviction(t *testing.T) {
	s := seqServer(t, filepath.Join(t.TempDir(), "f.db"))
	exp := netip.MustParseAddr("192.0.2.7")
	for i := range maxSeqPos + 2 {
		// Ports 1 to maxSeqPos+2 but maxSeqPos: one too many. Port 1's
		// position moves again instead of maxSeqPos's, so port 2's is
		// the least recently moved when the last one comes.
		port := uint16(i + 1)
		if i == maxSeqPos-1 {
			port = 1
		}
		s.notePos(collector.Origin{Exporter: netip.AddrPortFrom(exp, port), Domain: 1, Transport: "udp", Next: uint32(i), SeqKnown: true}, true)
		if i == maxSeqPos-2 {
			if err := s.commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	if s.posEvicted != 1 || len(s.pos) != maxSeqPos {
		t.Fatalf("%d evicted, %d kept; want 1 and %d", s.posEvicted, len(s.pos), maxSeqPos)
	}
	pos, err := s.st.SeqNexts()
	if err != nil {
		t.Fatal(err)
	}
	o := store.Origin{Exporter: "192.0.2.7", Domain: 1}
	if _, ok := pos[store.SeqPos{Origin: o, Port: 2}]; ok || len(pos) != maxSeqPos {
		t.Fatalf("stored %d positions, port 2's kept: %v", len(pos), ok)
	}
	if p := pos[store.SeqPos{Origin: o, Port: 1}]; p.Next != maxSeqPos-1 {
		t.Fatalf("port 1 at %d, want %d", p.Next, maxSeqPos-1)
	}
}
