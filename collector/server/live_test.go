package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// liveServer runs a Server on loopback TCP and UDP listeners.
type liveServer struct {
	*Server
	db     string
	tcp    string
	udp    string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T) *liveServer { return startServerWith(t, nil) }

// startServerWith is startServer that lets set change the Server before
// it runs.
func startServerWith(t *testing.T, set func(*Server)) *liveServer {
	t.Helper()
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"tcp://127.0.0.1:0", "udp://127.0.0.1:0"}
	cfg.DB = filepath.Join(t.TempDir(), "live.db")
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Addrs = make(chan []net.Addr, 1)
	if set != nil {
		set(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &liveServer{Server: s, db: cfg.DB, cancel: cancel, done: make(chan error, 1)}
	go func() { ls.done <- s.Run(ctx) }()
	select {
	case a := <-s.Addrs:
		ls.tcp, ls.udp = a[0].String(), a[1].String()
	case err := <-ls.done:
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.stop(t) })
	return ls
}

// stop cancels Run and waits for it (once).
func (ls *liveServer) stop(t *testing.T) {
	t.Helper()
	if ls.done == nil {
		return
	}
	ls.cancel()
	if err := <-ls.done; err != nil {
		t.Error(err)
	}
	ls.done = nil
}

func (ls *liveServer) counts() (stored, busy uint64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.stored, ls.busy
}

// until polls cond until it holds or 20 s pass.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendTCP exports n random records (seed) over one TCP connection.
func sendTCP(t *testing.T, addr string, seed uint64, n int) {
	t.Helper()
	stream := exportStream(t, nil, ipfixtest.Random(seed, n))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
}

// flowsInStore lists the flows of a running collector's store as `mira
// flows --db` does (read-only, waiting up to 2 s for the lock) and
// returns the flow count.
func flowsInStore(t *testing.T, db string) int {
	t.Helper()
	st, err := store.Open(db, &store.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("mira flows --db on a running collector's store: %v", err)
	}
	defer st.Close()
	l, err := report.FlowsFromStore(context.Background(), st, store.Query{}, report.Options{Limit: 1})
	if err != nil {
		t.Fatalf("mira flows --db on a running collector's store: %v", err)
	}
	return l.Summary.Flows
}

// TestReportWhileCollecting: `mira flows --db` reads the store of a
// running collector; while a reader holds the file the collector keeps
// the records it receives and stores them once the reader is gone.
func TestReportWhileCollecting(t *testing.T) {
	ls := startServer(t)
	sendTCP(t, ls.tcp, 1, 5000)
	until(t, "5000 records stored", func() bool { s, _ := ls.counts(); return s == 5000 })
	if n := flowsInStore(t, ls.db); n != 5000 {
		t.Fatalf("mira flows saw %d flows, want 5000", n)
	}

	r, err := store.Open(ls.db, &store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("a reader cannot open the running collector's store: %v", err)
	}
	sendTCP(t, ls.tcp, 2, 3000)
	until(t, "a commit deferred by the reader", func() bool { _, b := ls.counts(); return b > 0 })
	until(t, "8000 records decoded", func() bool { return ls.coll.Stats().Records == 8000 })
	if s, _ := ls.counts(); s != 5000 {
		t.Fatalf("stored %d records while a reader held the file, want 5000", s)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	until(t, "8000 records stored after the reader left", func() bool { s, _ := ls.counts(); return s == 8000 })
	ls.stop(t)
	if n := flowsInStore(t, ls.db); n != 8000 {
		t.Fatalf("store holds %d flows after shutdown, want 8000", n)
	}
}

// TestShutdownStoresEverythingDecoded: cancelling Run while records are
// arriving stores every record the collecting process decoded (the
// listeners are stopped and drained before the final commit).
func TestShutdownStoresEverythingDecoded(t *testing.T) {
	ls := startServer(t)
	sendTCP(t, ls.tcp, 3, 50000)
	until(t, "the first records", func() bool { return ls.coll.Stats().Records > 0 })
	ls.stop(t)
	decoded := ls.coll.Stats().Records
	stored, _ := ls.counts()
	if stored != decoded {
		t.Fatalf("decoded %d records, stored %d", decoded, stored)
	}
	if n := flowsInStore(t, ls.db); uint64(n) != decoded {
		t.Fatalf("store holds %d flows, decoded %d", n, decoded)
	}
}

// TestPendingLimitCountsDrops: while the store is unavailable, records
// beyond the pending limit are dropped and counted, not kept without
// bound; the ones kept are stored once the store is back.
func TestPendingLimitCountsDrops(t *testing.T) {
	s, r := lockedServer(t, 50*time.Millisecond)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.9:4739"), Domain: 3}
	recs := ipfixtest.Random(9, 600)
	s.Consume(o, recs)
	if err := s.commit(); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("commit with a reader holding the file: %v, want ErrLocked", err)
	}
	s.Consume(o, recs) // 1200 > 1000: dropped
	s.Consume(o, recs[:400])
	if s.dropped != 600 || s.pending.n != 1000 || s.busy != 1 {
		t.Fatalf("dropped %d, pending %d, busy %d; want 600, 1000, 1", s.dropped, s.pending.n, s.busy)
	}
	r.Close()
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	if s.stored != 1000 || s.pending.n != 0 {
		t.Fatalf("stored %d, pending %d after the reader left; want 1000, 0", s.stored, s.pending.n)
	}
}

// lockedServer returns a server with a pending limit of 1000 records on
// a store it opens with Release (waiting timeout for the file), and a
// reader r holding that store, so that the server's commits fail with
// store.ErrLocked until r is closed. Both close with the test.
func lockedServer(t *testing.T, timeout time.Duration) (s *Server, r *store.Store) {
	t.Helper()
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = filepath.Join(t.TempDir(), "busy.db")
	s = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.maxPending = 1000
	st, err := store.Open(cfg.DB, &store.Options{Release: true, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s.st = st
	r, err = store.Open(cfg.DB, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// storedStats reads a running collector's stored counters as `mira
// report --db` does (read-only, waiting up to 2 s for the lock).
func storedStats(t *testing.T, db string) store.Stats {
	t.Helper()
	st, err := store.Open(db, &store.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIdleStatsNotRewritten: the counters are saved once at the first
// tick and then only when something was counted, so an idle collector
// does not open and sync its store every tick.
func TestIdleStatsNotRewritten(t *testing.T) {
	ls := startServerWith(t, func(s *Server) { s.statsEvery = 20 * time.Millisecond })
	until(t, "the counters saved once", func() bool { return !storedStats(t, ls.db).Updated.IsZero() })
	first := storedStats(t, ls.db)
	time.Sleep(300 * time.Millisecond) // 15 ticks with nothing counted
	if idle := storedStats(t, ls.db); !idle.Updated.Equal(first.Updated) {
		t.Fatalf("the counters were written again with nothing counted (updated %v, then %v)", first.Updated, idle.Updated)
	}
	sendTCP(t, ls.tcp, 3, 100)
	until(t, "100 records counted in the store", func() bool { return storedStats(t, ls.db).Records == 100 })
}
