package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/flow"
)

// consumeN hands n records of distinct connections over to g, in
// messages of 30, and flushes them: the batches published.
func consumeN(g *Ingest, n int) {
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	recs := make([]flow.Record, 30)
	for i := 0; i < n; i += len(recs) {
		for j := range recs {
			x := uint32(i + j)
			recs[j] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}),
				Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6}, Packets: 1, Octets: 100}
		}
		o.Sequence = uint32(i)
		g.Consume(o, recs[:min(len(recs), n-i)])
	}
	g.FlushAll()
}

// TestIngestNeverBlocks: with the NATS server gone, the collecting
// process's hand-over returns at once and every record is accounted for:
// published before the loss, or counted unpublished once its
// publication's budget (PublishRetry, short here) ran out.
func TestIngestNeverBlocks(t *testing.T) {
	ns, _, js := embeddedJS(t)
	g := NewIngest(js, nil)
	g.PublishRetry, g.retryWait = 2*time.Second, 10*time.Millisecond
	ns.Shutdown()
	const total = 20000 * 30
	start := time.Now()
	consumeN(g, total)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("handing over %d records took %v with NATS down", total, d)
	}
	deadline := time.Now().Add(60 * time.Second)
	for g.Published.Load()+g.Unpublished.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("published %d + unpublished %d of %d records", g.Published.Load(), g.Unpublished.Load(), total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g.Published.Load()+g.Unpublished.Load() != total || g.Unpublished.Load() == 0 || g.Pending() != 0 {
		t.Errorf("published %d + unpublished %d, %d handed over, %d batches in flight", g.Published.Load(), g.Unpublished.Load(), total, g.Pending())
	}
	t.Logf("%d records handed over in %v; %d unpublished", total, time.Since(start), g.Unpublished.Load())
}

// TestIngestPublishRetryBudget: a batch JetStream does not acknowledge
// (the flow stream gone: "no responders", as while a stream elects its
// leader) is published again until PublishRetry has passed since its
// first publication, never given up earlier, and then counted
// unpublished exactly once; its positions may pass it.
func TestIngestPublishRetryBudget(t *testing.T) {
	_, _, js := embeddedJS(t)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, FlowStream); err != nil {
		t.Fatal(err)
	}
	g := NewIngest(js, nil)
	g.PublishRetry, g.retryWait = 1500*time.Millisecond, 10*time.Millisecond
	const total = 3000
	start := time.Now()
	consumeN(g, total)
	g.mu.Lock()
	batches := g.batches
	g.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for g.Unpublished.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records counted unpublished", g.Unpublished.Load(), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	given := time.Since(start)
	if given < g.PublishRetry {
		t.Errorf("records given up after %v, before their budget of %v", given, g.PublishRetry)
	}
	g.mu.Lock()
	resolvedTo := g.resolvedTo
	g.mu.Unlock()
	if g.Unpublished.Load() != total || g.Published.Load() != 0 || g.Pending() != 0 || resolvedTo != batches {
		t.Errorf("unpublished %d, published %d of %d; %d in flight; batches resolved to %d of %d",
			g.Unpublished.Load(), g.Published.Load(), total, g.Pending(), resolvedTo, batches)
	}
	if r := g.Retried.Load(); r < batches {
		t.Errorf("%d batches published again %d times within %v", batches, r, g.PublishRetry)
	}
	t.Logf("%d records in %d batches given up after %v, %d publications again", total, batches, given, g.Retried.Load())
}

// TestIngestRetriesThroughOutage: the flow stream unavailable longer
// than the former budget of 8 attempts (its batches published again 16
// times each): nothing is counted unpublished, the batches stay in
// flight, and once the stream is back every record is published, each
// batch stored once.
func TestIngestRetriesThroughOutage(t *testing.T) {
	_, _, js := embeddedJS(t)
	ctx := context.Background()
	if err := js.DeleteStream(ctx, FlowStream); err != nil {
		t.Fatal(err)
	}
	g := NewIngest(js, nil)
	g.retryWait = time.Millisecond // back-off: 1, 2, 4, 8, 8 ... ms
	const total = 3000
	consumeN(g, total)
	g.mu.Lock()
	batches := g.batches
	g.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for g.Retried.Load() < 16*batches {
		if time.Now().After(deadline) || g.Unpublished.Load() > 0 {
			t.Fatalf("%d batches published again %d times; %d records unpublished", batches, g.Retried.Load(), g.Unpublished.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if u, p := g.Unpublished.Load(), g.Pending(); u != 0 || p != int64(batches) {
		t.Fatalf("during the outage: %d records unpublished, %d of %d batches in flight", u, p, batches)
	}
	if err := Setup(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	for g.Published.Load() < total {
		if time.Now().After(deadline) || g.Unpublished.Load() > 0 {
			t.Fatalf("after the outage: published %d, unpublished %d of %d", g.Published.Load(), g.Unpublished.Load(), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s, err := js.Stream(ctx, FlowStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != batches || g.Unpublished.Load() != 0 || g.Pending() != 0 {
		t.Errorf("%d batches stored of %d; %d records unpublished, %d batches in flight", n, batches, g.Unpublished.Load(), g.Pending())
	}
	t.Logf("%d records in %d batches published after %d publications again; longest %v",
		total, batches, g.Retried.Load(), time.Duration(g.longestRetry.Load()).Round(time.Millisecond))
}

// TestPublishRetryDefault: an Ingest made without a configuration
// retries as long as collector.yaml's default says.
func TestPublishRetryDefault(t *testing.T) {
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	if g := NewIngest(nil, nil); cfg.Cluster.PublishRetry != g.PublishRetry {
		t.Errorf("collector.yaml: cluster.publish_retry %v, NewIngest %v", cfg.Cluster.PublishRetry, g.PublishRetry)
	}
}

// TestIngestAnnouncementGivenUp: an announcement (no records) that
// JetStream never acknowledges within the budget is counted, as records
// are.
func TestIngestAnnouncementGivenUp(t *testing.T) {
	_, _, js := embeddedJS(t)
	if err := js.DeleteStream(context.Background(), OptionsStream); err != nil {
		t.Fatal(err)
	}
	g := NewIngest(js, nil)
	g.PublishRetry, g.retryWait = 200*time.Millisecond, 10*time.Millisecond
	g.mu.Lock()
	g.publishOptions(optionsMessage{})
	g.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for g.AnnouncementsUnpublished.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the announcement was not counted unpublished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a, r, p := g.AnnouncementsUnpublished.Load(), g.Unpublished.Load(), g.Pending(); a != 1 || r != 0 || p != 0 {
		t.Errorf("announcements unpublished %d, records unpublished %d, in flight %d; want 1, 0, 0", a, r, p)
	}
}

func TestLogEvery(t *testing.T) {
	var l logEvery
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		n    uint64
		want bool
	}{{0, 1, true}, {100 * time.Millisecond, 0, false}, {900 * time.Millisecond, 0, false}, {time.Second, 3, true}, {1500 * time.Millisecond, 0, false}, {3 * time.Second, 2, true}}
	for _, s := range steps {
		n, ok := l.due(t0.Add(s.at))
		if n != s.n || ok != s.want {
			t.Errorf("at %v: due = %d, %v; want %d, %v", s.at, n, ok, s.n, s.want)
		}
	}
}
