package cluster

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestView: a snapshot serves the requests of its MaxAge; the next
// request gathers a new one that holds the records stored since; a
// replaced snapshot stays open while a request holds it and is removed
// at its release.
func TestView(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	w, err := OpenWorker("w", filepath.Join(t.TempDir(), "w.db"), nc, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { cancel(); <-done }()
	g := NewIngest(js, nil)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	send := func(base uint32, n int) {
		recs := make([]flow.Record, n)
		for j := range recs {
			x := base + uint32(j)
			recs[j] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, 0, byte(x >> 8), byte(x)}),
				Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6}, Packets: 1, Octets: 100}
		}
		g.Consume(o, recs)
		g.FlushAll()
	}
	stored := func(n uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for w.Stored.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("worker stored %d of %d", w.Stored.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	count := func(st *store.Store) int {
		n := 0
		if err := st.Flows(store.Query{}, func(store.StoredFlow) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	send(0, 50)
	stored(50)
	dir := t.TempDir()
	v := &View{NC: nc, JS: js, Dir: dir, MaxAge: time.Hour}
	st1, rel1, err := v.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(st1); n != 50 {
		t.Errorf("first snapshot: %d records, want 50", n)
	}
	send(1000, 30)
	stored(80)
	st2, rel2, err := v.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2 != st1 {
		t.Error("a second request within MaxAge gathered again")
	}
	rel2()
	v.MaxAge = 0 // the next request gathers
	st3, rel3, err := v.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st3 == st1 {
		t.Fatal("a request after MaxAge got the old snapshot")
	}
	if n := count(st3); n != 80 {
		t.Errorf("new snapshot: %d records, want 80", n)
	}
	// st1 is replaced but still held: open, its file there.
	if n := count(st1); n != 50 {
		t.Errorf("held snapshot: %d records, want 50", n)
	}
	files := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "merged-*.db"))
		return len(m)
	}
	if f := files(); f != 2 {
		t.Errorf("%d snapshot files while two are held", f)
	}
	rel1()
	rel1() // a second release changes nothing
	if f := files(); f != 1 {
		t.Errorf("%d snapshot files after the old one's release, want 1", f)
	}
	rel3()
	v.Close()
	if f := files(); f != 0 {
		t.Errorf("%d snapshot files after Close", f)
	}
	if _, _, err := v.Acquire(ctx); err == nil {
		t.Error("Acquire after Close succeeded")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
