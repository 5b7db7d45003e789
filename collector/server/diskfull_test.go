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
	var log bytes.Buffer
	s := New(cfg, slog.New(slog.NewTextHandler(&log, nil)))
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
	// Each failure is logged, and so is the recovery.
	if n, m := strings.Count(log.String(), "no space left on device"), strings.Count(log.String(), "store writes succeed again"); n != failures || m == 0 {
		t.Fatalf("log has %d ENOSPC errors (want %d) and %d recoveries (want some):\n%s", n, failures, m, log.String())
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

// TestDiskFullNoBusyRetry: once commits fail for want of space, full
// batches wait for the commit interval (1 s) instead of each arriving
// message retrying at once: a collector on a full disk made up to 345
// failed commits a second, each encoding and writing its whole backlog
// and logging an error.
func TestDiskFullNoBusyRetry(t *testing.T) {
	dir := peertest.Tmpfs(t, 2<<20)
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"udp://127.0.0.1:0"}
	cfg.DB = filepath.Join(dir, "full.db")
	cfg.Rollups.Enabled = false
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Addrs = make(chan []net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var addr string
	select {
	case a := <-s.Addrs:
		addr = a[0].String()
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		<-done
	}()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	werrs := func() uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.werrs
	}
	// A message a millisecond until the disk is full.
	msgs := udpMessages(t, 5000)
	send := func(d time.Duration) {
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			c.Write(msgs[i%len(msgs)])
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for werrs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the 2 MiB disk never filled")
		}
		send(200 * time.Millisecond)
	}
	before, start := werrs(), time.Now()
	send(3 * time.Second)
	failed, took := werrs()-before, time.Since(start)
	if max := uint64(took/commitInterval) + 2; failed > max {
		t.Fatalf("%d failed commits in %v on a full disk, want at most %d (one per commit interval)", failed, took, max)
	}
	t.Logf("%d failed commits in %v on a full disk", failed, took)
}

// udpMessages exports n random records as IPFIX messages (templates
// first), one per datagram.
func udpMessages(t *testing.T, n int) [][]byte {
	t.Helper()
	stream := exportStream(t, nil, ipfixtest.Random(77, n))
	var msgs [][]byte
	for b := stream; len(b) >= 4; {
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 16 || l > len(b) {
			t.Fatalf("bad message length %d", l)
		}
		msgs = append(msgs, b[:l])
		b = b[l:]
	}
	return msgs
}
