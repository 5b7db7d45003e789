package cluster

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/flow"
)

// TestIngestNeverBlocks: with the NATS server gone, the collecting
// process's hand-over returns at once and every record is accounted for:
// published before the loss, or counted unpublished.
func TestIngestNeverBlocks(t *testing.T) {
	ns, _, js := embeddedJS(t)
	g := NewIngest(js, nil)
	ns.Shutdown()
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	recs := make([]flow.Record, 30)
	const msgs = 20000
	start := time.Now()
	for i := range msgs {
		for j := range recs {
			x := uint32(i*len(recs) + j)
			recs[j] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}),
				Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6}, Packets: 1, Octets: 100}
		}
		o.Sequence = uint32(i * len(recs))
		g.Consume(o, recs)
	}
	g.FlushAll()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("handing over %d records took %v with NATS down", msgs*len(recs), d)
	}
	total := uint64(msgs * len(recs))
	deadline := time.Now().Add(60 * time.Second)
	for g.Published.Load()+g.Unpublished.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("published %d + unpublished %d of %d records", g.Published.Load(), g.Unpublished.Load(), total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g.Published.Load()+g.Unpublished.Load() != total || g.Unpublished.Load() == 0 {
		t.Errorf("published %d + unpublished %d, %d handed over", g.Published.Load(), g.Unpublished.Load(), total)
	}
	t.Logf("%d records handed over in %v; %d unpublished", total, time.Since(start), g.Unpublished.Load())
}
