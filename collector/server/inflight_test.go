package server

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// TestPendingCountsCommitUnderWay: the records of a commit under way
// (here waiting for a reader to let go of the store; on a full disk,
// writing until the error) are still waiting: /metrics counts them as
// pending, and the pending limit counts them, so that records received
// meanwhile are dropped and counted rather than kept beyond it. (A
// collector whose commits kept failing on a full disk showed 0 pending
// beside a million records neither stored nor dropped.)
func TestPendingCountsCommitUnderWay(t *testing.T) {
	s, r := lockedServer(t, 2*time.Second)
	s.coll = collector.New(s, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics{s: s})
	pending := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "mira_collector_pending_records" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no mira_collector_pending_records")
		return 0
	}
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.9:4739"), Domain: 3}
	recs := ipfixtest.Random(9, 600)
	s.Consume(o, recs)
	done := make(chan error, 1)
	go func() { done <- s.commit() }()
	// The commit has taken the records and waits for the reader.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		taken := s.pending.n == 0
		s.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the commit did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if n := pending(); n != 600 {
		t.Fatalf("pending_records %v while a commit of 600 waits, want 600", n)
	}
	s.Consume(o, recs) // 600 under way + 600 > 1000: dropped
	s.mu.Lock()
	dropped := s.dropped
	s.mu.Unlock()
	if dropped != 600 {
		t.Fatalf("dropped %d with 600 under way and 600 more (limit 1000), want 600", dropped)
	}
	if err := <-done; !errors.Is(err, store.ErrLocked) {
		t.Fatalf("commit with a reader holding the file: %v, want ErrLocked", err)
	}
	if n := pending(); n != 600 || s.pending.n != 600 {
		t.Fatalf("pending_records %v (pending %d) after the commit failed, want 600", n, s.pending.n)
	}
	r.Close()
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	if s.stored != 600 || pending() != 0 {
		t.Fatalf("stored %d, pending %v after the reader left; want 600, 0", s.stored, pending())
	}
}
