package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/flow"
)

// TestNextSequenceSources: a session's first message is compared with
// the position this node moved last, unless SeqBucket holds a newer one
// saved by another node (the exporter went there and came back); a
// connection that has the position keeps it from others until it ends.
func TestNextSequenceSources(t *testing.T) {
	g := NewIngest(nil, nil)
	a := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:40000"), Domain: 1, Transport: "tcp"}
	key := posKeyOf(a).bucketKey()
	if key != "1.0.192.0.2.1" {
		t.Fatalf("bucket key %q", key)
	}
	if _, ok := g.NextSequence(a); ok {
		t.Fatal("a position from nowhere")
	}
	g.remote = map[string]savedPos{key: {next: 100, saved: time.Now().Add(-time.Hour), node: "other"}}
	if n, ok := g.NextSequence(a); !ok || n != 100 {
		t.Fatalf("saved by another node, none here: %d %v, want 100", n, ok)
	}
	// This node moves it (a message up to 150 on connection a).
	m := a
	m.Sequence, m.Next, m.SeqKnown = 140, 150, true
	g.Consume(m, nil)
	b := a
	b.Exporter = netip.MustParseAddrPort("192.0.2.1:40001")
	if _, ok := g.NextSequence(b); ok {
		t.Fatal("another connection seeded from a position a live connection has")
	}
	if err := g.StreamEnd(a); err != nil {
		t.Fatalf("StreamEnd of a connection whose records (none) all went: %v", err)
	}
	if n, ok := g.NextSequence(b); !ok || n != 150 {
		t.Fatalf("after the connection ended: %d %v, want this node's 150 (the saved one is older)", n, ok)
	}
	g.remote[key] = savedPos{next: 300, saved: time.Now().Add(time.Second), node: "other"}
	if n, ok := g.NextSequence(b); !ok || n != 300 {
		t.Fatalf("another node saved a newer position: %d %v, want 300", n, ok)
	}
	g.remote[key] = savedPos{next: 120, saved: time.Now().Add(time.Second), node: g.ID}
	if n, ok := g.NextSequence(b); !ok || n != 150 {
		t.Fatalf("this node's own save read back: %d %v, want its memory's 150", n, ok)
	}
}

// TestPositionsSavedAfterAcks: a position is saved only once every
// batch published up to the flush that carried its message is resolved
// (acknowledged, or given up and counted), whatever order the
// acknowledgements come in.
func TestPositionsSavedAfterAcks(t *testing.T) {
	g := NewIngest(nil, nil)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1, Transport: "udp", SeqKnown: true}
	o.Next = 10
	g.Consume(o, nil)
	g.batches = 3 // the flush published batches 1-3
	g.stampPending()
	o.Next = 20
	g.Consume(o, nil) // waits for the next flush
	saved := func() (uint32, bool) {
		g.mu.Lock()
		defer g.mu.Unlock()
		pp, ok := g.unsaved[posKeyOf(o)]
		return pp.next, ok
	}
	g.resolved(3)
	g.resolved(1)
	if _, ok := saved(); ok {
		t.Fatal("saved with batch 2 in flight")
	}
	g.resolved(2)
	if n, ok := saved(); !ok || n != 10 {
		t.Fatalf("batches 1-3 resolved: %d %v, want 10", n, ok)
	}
	if g.PositionsUnsaved() != 2 {
		t.Fatalf("%d unsaved, want 2 (10 to write, 20 waiting)", g.PositionsUnsaved())
	}
	g.batches = 4
	g.stampPending()
	g.resolved(4)
	if n, ok := saved(); !ok || n != 20 {
		t.Fatalf("batch 4 resolved: %d %v, want 20", n, ok)
	}
}

// TestLossSavedWithPositions: the sequence loss a node counts goes to
// its stats once the position after it is saved in SeqBucket (a node
// killed before leaves it to the exporter's next session, which counts
// the gap from the saved position), also for an exporter that sent no
// record batch yet (options only).
func TestLossSavedWithPositions(t *testing.T) {
	_, _, js := embeddedJS(t)
	kv, err := js.KeyValue(context.Background(), SeqBucket)
	if err != nil {
		t.Fatal(err)
	}
	g := NewIngest(js, nil)
	g.seqKV = kv
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1, Transport: "udp",
		SeqKnown: true, Sequence: 15, Next: 20, Lost: 5}
	g.Consume(o, nil)
	counted := collector.Stats{LostRecords: 5}
	if n := g.stats(counted).Lost; n != 0 {
		t.Fatalf("loss in the stats before its position is saved: %d", n)
	}
	g.FlushAll() // nothing published: the position waits for no batch
	g.savePositions(context.Background())
	if n := g.stats(counted).Lost; n != 5 {
		t.Fatalf("position saved: stats' loss %d, want 5", n)
	}
	e, err := kv.Get(context.Background(), posKeyOf(o).bucketKey())
	if err != nil {
		t.Fatal(err)
	}
	if sp, err := decodeSavedPos(e.Value()); err != nil || sp.next != 20 || sp.node != g.ID {
		t.Fatalf("saved %+v, %v; want 20 by %s", sp, err, g.ID)
	}
	select {
	case <-g.statsNow:
	default:
		t.Fatal("the stats were not asked to be saved with the loss")
	}
}

// TestStreamEndConfirms: a connection's end is confirmed (StoredAck)
// once JetStream acknowledged its records, not when records were
// dropped unpublished during it.
func TestStreamEndConfirms(t *testing.T) {
	ns, _, js := embeddedJS(t)
	g := NewIngest(js, nil)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:40000"), Domain: 1, Transport: "tcp",
		SeqKnown: true, Next: 30}
	recs := make([]flow.Record, 30)
	for i := range recs {
		recs[i].Key = flow.Key{Src: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Dst: netip.MustParseAddr("192.0.2.9"), Proto: 6}
	}
	g.Consume(o, recs)
	if err := g.StreamEnd(o); err != nil {
		t.Fatalf("records published: %v", err)
	}
	if n := g.Published.Load(); n != 30 {
		t.Fatalf("confirmed with %d of 30 records acknowledged", n)
	}
	// The server gone: the next connection's records are not
	// acknowledged in time.
	ns.Shutdown()
	o.Exporter = netip.MustParseAddrPort("192.0.2.1:40001")
	g.Consume(o, recs)
	if err := g.StreamEnd(o); err == nil {
		t.Fatal("confirmed without JetStream")
	}
}
