package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/flow"
)

// BenchmarkPipeline measures an ingest node's publishing rate (records
// handed over by the collecting process until JetStream acknowledged
// them) and one worker's storing rate (records stored and acked), each
// against an embedded NATS server in the same process: b.N records in
// messages of 30 records of distinct connections, published in
// batches by partition (RunIngest's linger timer flushes every 50 ms:
// here every 64 messages), with sequence positions moved (and kept
// until their batches are acknowledged).
func BenchmarkPipeline(b *testing.B) {
	_, nc, js := embeddedJS(b)
	ctx := context.Background()
	g := NewIngest(js, nil)
	const perMsg = 30
	msg := make([]flow.Record, perMsg)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += perMsg {
		n := min(perMsg, b.N-i)
		for j := range n {
			x := uint32(i + j)
			msg[j] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}),
				Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6},
				Packets: 10, Octets: 4000, First: int64(x) * 1e6, Last: int64(x)*1e6 + 5e8}
		}
		o.Sequence, o.Next, o.SeqKnown = uint32(i), uint32(i+n), true
		for g.Pending() >= maxInFlight-Partitions {
			time.Sleep(50 * time.Microsecond) // the benchmark, unlike a socket, can wait
		}
		g.Consume(o, msg[:n])
		if i/perMsg%64 == 63 {
			g.FlushAll() // RunIngest's linger timer's, about every 2000 records
		}
	}
	g.FlushAll()
	for g.Published.Load()+g.Unpublished.Load() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	ingest := time.Since(start)
	if u := g.Unpublished.Load(); u > 0 {
		b.Fatalf("%d records unpublished", u)
	}
	w, err := OpenWorker("bench", b.TempDir()+"/w.db", nc, js, nil)
	if err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- w.Run(wctx) }()
	deadline := time.Now().Add(10 * time.Minute)
	for w.Stored.Load() < uint64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	work := time.Since(start)
	cancel()
	<-done
	if s := w.Stored.Load(); s != uint64(b.N) {
		b.Fatalf("worker stored %d of %d", s, b.N)
	}
	b.ReportMetric(float64(b.N)/ingest.Seconds(), "ingest-rec/s")
	b.ReportMetric(float64(b.N)/work.Seconds(), "worker-rec/s")
}
