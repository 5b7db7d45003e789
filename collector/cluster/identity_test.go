package cluster

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestIdentity: as mira-collector, the cluster stores a spooled replay
// (same spool instance, same sequence numbers) once, and the records of
// an exporter without a spool instance that restarts its sequence
// numbers (same address, domain and sequence numbers, new records) all.
func TestIdentity(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	g := NewIngest(js, nil)
	recs := func(base uint32) []flow.Record {
		r := make([]flow.Record, 40)
		for j := range r {
			x := base + uint32(j)
			r[j] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, 0, byte(x >> 8), byte(x)}),
				Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6}, Packets: 1, Octets: 100}
		}
		return r
	}
	plain := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	spooled := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.2:4739"), Domain: 1, Instance: 0x5eed}
	g.Consume(plain, recs(0))
	g.Consume(plain, recs(1000)) // restarted: sequence 0 again
	g.Consume(spooled, recs(2000))
	g.Consume(spooled, recs(2000)) // replayed from its spool
	g.FlushAll()
	const want = 3 * 40
	w, err := OpenWorker("w", t.TempDir()+"/w.db", nc, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for w.Stored.Load() < want+40 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The worker keeps the batches as they came; the merge keeps one
	// copy of each record identity.
	st, err := store.Open(filepath.Join(t.TempDir(), "merged.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs, err := Gather(ctx, nc, js, st)
	cancel()
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if gs.Records != want || gs.Duplicates != 40 {
		t.Errorf("merged %d records, %d duplicates; want %d records, 40 duplicates (the spool replay)", gs.Records, gs.Duplicates, want)
	}
	n := 0
	if err := st.Flows(store.Query{}, func(store.StoredFlow) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("merged store holds %d records, want %d", n, want)
	}
}
