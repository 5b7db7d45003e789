package server

import (
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// TestDiskFullRetention: a store with retention by size on a disk that
// fills up between retention ticks (records arriving faster than the
// 30 s tick prunes): a commit that fails for want of space applies
// retention at once, so the next commit stores the records waiting
// instead of the backlog growing until no commit can fit. Without it
// every commit after the disk filled fails.
func TestDiskFullRetention(t *testing.T) {
	dir := peertest.Tmpfs(t, 8<<20)
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = filepath.Join(dir, "full.db")
	cfg.Retention.MaxSize = 4 << 20
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := store.Open(cfg.DB, &store.Options{Release: true, SegmentSize: segmentSize(cfg.Retention.MaxSize)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s.st = st
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.9:4739"), Domain: 3}
	consumed, failures := 0, 0
	for i := 0; i < 40; i++ {
		recs := ipfixtest.Random(uint64(i+1), 20000)
		s.Consume(o, recs)
		consumed += len(recs)
		before := s.werrs
		s.commitOrPrune()
		if s.werrs > before {
			failures++
		}
	}
	if failures == 0 {
		t.Fatalf("the disk never filled (%d records stored)", s.stored)
	}
	s.commitOrPrune()
	if s.pending.n != 0 || s.stored+s.dropped != uint64(consumed) {
		t.Fatalf("after %d failed commits: stored %d, dropped %d, pending %d of %d; the store did not make room (last error: %v)",
			failures, s.stored, s.dropped, s.pending.n, consumed, s.lastErr)
	}
	size, err := st.DataSize()
	if err != nil {
		t.Fatal(err)
	}
	if size > 2*cfg.Retention.MaxSize {
		t.Fatalf("store holds %d bytes, max_size %d", size, cfg.Retention.MaxSize)
	}
	t.Logf("%d commits failed for want of space, every record stored (%d), store %d bytes", failures, s.stored, size)
}
