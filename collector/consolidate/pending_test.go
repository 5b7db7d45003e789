package consolidate

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/mira-project/mira/flow"
)

// TestIndexAgainstMap puts and removes keys whose hashes are drawn from
// a few values at the start and the end of the table, so that clusters
// are long and wrap around its end, and checks after every step that
// the index finds exactly what a map holds.
func TestIndexAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c := New(nil)
	hashes := []uint32{0, 1, 2, 61, 62, 63, 127, 1023, 1<<31 + 63}
	type item struct {
		h  uint32
		ei uint32
	}
	want := map[connKey]item{}
	keys := make([]connKey, 300)
	hashOf := map[connKey]uint32{}
	for i := range keys {
		keys[i] = newConnKey(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), netip.MustParseAddr("2001:db8::1"), uint16(i), 80, 6)
		hashOf[keys[i]] = hashes[r.IntN(len(hashes))]
	}
	check := func(step int) {
		t.Helper()
		for _, k := range keys {
			_, ei := c.find(&k, hashOf[k])
			if w := want[k]; ei != w.ei {
				t.Fatalf("step %d: key %v: index gives connection %d, want %d", step, k.A(), ei, w.ei)
			}
		}
		if c.pending.n != len(want) {
			t.Fatalf("step %d: %d used slots, %d keys", step, c.pending.n, len(want))
		}
	}
	for step := 0; step < 20000; step++ {
		k := keys[r.IntN(len(keys))]
		h := hashOf[k]
		slot, ei := c.find(&k, h)
		switch {
		case ei == 0:
			ei = c.conns.Alloc()
			c.setKey(c.conns.At(ei), &k)
			c.pending.put(slot, h, ei)
			want[k] = item{h, ei}
		case r.IntN(3) == 0:
			// A newer connection of the key.
			n := c.conns.Alloc()
			c.setKey(c.conns.At(n), &k)
			c.pending.setConn(slot, n)
			want[k] = item{h, n}
		default:
			c.pending.remove(slot)
			delete(want, k)
		}
		if step%37 == 0 || len(want) < 40 {
			check(step)
		}
	}
	check(-1)
}

// TestCompleteBeforeSome completes a random part of many pending
// connections (removing keys from the index while walking it) and checks
// that exactly that part was completed and the rest still pairs.
func TestCompleteBeforeSome(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for round := 0; round < 20; round++ {
		var got []Biflow
		c := New(&Config{Window: time.Second, Batch: true, Sink: func(b *Biflow) { got = append(got, *b) }})
		const n = 3000
		old := map[uint16]bool{}
		recs := make([]flow.Record, n)
		for i := range recs {
			first := t0 + int64(10*time.Second)
			if r.IntN(2) == 0 {
				first = t0
				old[uint16(i)] = true
			}
			recs[i] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
				Dst: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Sport: uint16(i), Dport: 443, Proto: 6},
				Packets: 1, Octets: 100, First: first, Last: first + int64(time.Second)}
			if i%3 == 0 { // IPv6 keys are held apart
				recs[i].Src = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 14: byte(i >> 8), 15: byte(i)})
				recs[i].Dst = netip.MustParseAddr("2001:db8::1:1")
			}
		}
		for i := range recs {
			c.AddRecord(Origin{Probe: "p"}, &recs[i], false)
		}
		c.CompleteBefore(t0 + int64(5*time.Second))
		if len(got) != len(old) || c.Stats().Pending != n-len(old) {
			t.Fatalf("round %d: %d completed, %d pending; want %d, %d", round, len(got), c.Stats().Pending, len(old), n-len(old))
		}
		for _, b := range got {
			if !old[b.Sport] || b.First != t0 {
				t.Fatalf("round %d: completed %v:%d starting %d", round, b.Src, b.Sport, b.First-t0)
			}
		}
		got = got[:0]
		// The reverse of every pending one pairs with it.
		for i := range recs {
			if old[uint16(i)] {
				continue
			}
			x := recs[i]
			x.Src, x.Dst, x.Sport, x.Dport = x.Dst, x.Src, x.Dport, x.Sport
			c.AddRecord(Origin{Probe: "p"}, &x, false)
		}
		c.Flush()
		if len(got) != n-len(old) || c.Stats().Paired != uint64(n-len(old)) {
			t.Fatalf("round %d: %d biflows after flush, %d paired; want %d", round, len(got), c.Stats().Paired, n-len(old))
		}
		checkEmpty(t, c)
	}
}

// TestCloneIndependent checks that a clone completes the pending
// connections with everything they hold (application metadata, symptoms,
// parts by flow interval), and that adding to it leaves the original as
// it was.
func TestCloneIndependent(t *testing.T) {
	mk := func() *Consolidator { return New(&Config{Window: time.Minute}) }
	a := rec("192.0.2.1", "198.51.100.7", 40001, 443, 10, 1000, 0, time.Second)
	a.App.ServerName = "example.org"
	a.Symptoms = []flow.SymptomCount{{ID: 3, Count: 2}}
	a.SamplingFlowInterval = 4
	b := a
	b.First += int64(time.Second)
	b.Last += int64(time.Second)
	b.SamplingFlowInterval = 8 // a second part
	b.App = flow.App{}
	orig := mk()
	orig.Add(Origin{Probe: "p"}, []flow.Record{a, b})
	ref := mk()
	ref.Add(Origin{Probe: "p"}, []flow.Record{a, b})
	ref.Flush()
	want := ref.Biflows()

	cl := orig.Clone(nil)
	more := a
	more.First += int64(2 * time.Second)
	more.Last += int64(2 * time.Second)
	more.SamplingFlowInterval = 8
	more.Symptoms = []flow.SymptomCount{{ID: 3, Count: 5}, {ID: 4, Count: 1}}
	more.App = flow.App{HTTPHost: "other"}
	cl.Add(Origin{Probe: "p"}, []flow.Record{more})
	cl.Flush()
	checkEmpty(t, cl)
	if g := cl.Biflows(); len(g) != 1 || g[0].App.ServerName != "example.org" || g[0].Packets != 30 || len(g[0].Symptoms) != 2 {
		t.Fatalf("clone gave %+v", g)
	}
	orig.Flush()
	checkEmpty(t, orig)
	got := orig.Biflows()
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("%d and %d biflows", len(got), len(want))
	}
	g, w := got[0], want[0]
	if g.App != w.App || g.App.ServerName != "example.org" || g.App.HTTPHost != "" || g.Packets != w.Packets ||
		g.Est != w.Est || len(g.Symptoms) != 1 || g.Symptoms[0] != (flow.SymptomCount{ID: 3, Count: 4}) {
		t.Fatalf("original after the clone was added to: %+v, want %+v", g, w)
	}
}

// TestEndBeforeLast: a record ended by FIN, then one of the same
// direction and probe that started before that end but ended after it
// (exported late) joins the connection; one starting after the FIN's end
// but before the connection's last end starts a new connection (the end
// by FIN is kept apart from the last end).
func TestEndBeforeLast(t *testing.T) {
	c := New(&Config{Window: time.Minute, Batch: true})
	r1 := rec("192.0.2.1", "198.51.100.7", 40001, 80, 5, 500, 0, 10*time.Second)
	r1.EndReason = flow.EndDetected
	r2 := rec("192.0.2.1", "198.51.100.7", 40001, 80, 2, 200, 5*time.Second, 20*time.Second)
	r3 := rec("192.0.2.1", "198.51.100.7", 40001, 80, 1, 100, 15*time.Second, 16*time.Second)
	for _, r := range []flow.Record{r1, r2, r3} {
		c.AddRecord(Origin{Probe: "p"}, &r, false)
	}
	c.Flush()
	bs := c.Biflows()
	if len(bs) != 2 || bs[0].Packets != 7 || bs[0].Last != r2.Last || bs[1].Packets != 1 {
		t.Fatalf("biflows %+v", bs)
	}
}

// TestICMPPorts: an ICMP echo's biflow has its request's type and code,
// another ICMP message's its own, a TCP biflow its initiator's ports.
func TestICMPPorts(t *testing.T) {
	c := New(nil)
	req := rec("192.0.2.1", "198.51.100.7", 0, 8<<8, 1, 84, 0, time.Second)
	req.Proto = 1
	rep := rec("198.51.100.7", "192.0.2.1", 0, 0, 1, 84, time.Millisecond, time.Second)
	rep.Proto = 1
	unr := rec("198.51.100.9", "192.0.2.1", 0, 3<<8|3, 1, 56, 0, time.Second)
	unr.Proto = 1
	// The initiator is b->a (the higher address): its ports are the
	// key's swapped.
	tcp := rec("192.0.2.1", "198.51.100.7", 443, 40001, 1, 60, time.Millisecond, time.Second)
	tcpReq := rec("198.51.100.7", "192.0.2.1", 40001, 443, 1, 60, 0, time.Second)
	tcpReq.TCPFlags = 0x02
	c.Add(Origin{Probe: "p"}, []flow.Record{rep, req, unr, tcp, tcpReq})
	c.Flush()
	got := map[string][2]uint16{}
	for _, b := range c.Biflows() {
		got[b.Src.String()+">"+b.Dst.String()+"/"+string(rune('0'+b.Proto))] = [2]uint16{b.Sport, b.Dport}
	}
	want := map[string][2]uint16{
		"192.0.2.1>198.51.100.7/1": {0, 8 << 8},
		"198.51.100.9>192.0.2.1/1": {0, 3<<8 | 3},
		"198.51.100.7>192.0.2.1/6": {40001, 443},
	}
	if len(got) != len(want) {
		t.Fatalf("biflows %v", got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s: ports %v, want %v (all: %v)", k, got[k], w, got)
		}
	}
}

// checkEmpty checks that a Consolidator with nothing pending holds
// nothing: every slab index released, no attrs interned, no key indexed.
func checkEmpty(t *testing.T, c *Consolidator) {
	t.Helper()
	if c.conns.InUse() != 0 || c.obs.InUse() != 0 || c.exts.InUse() != 0 || c.syms.InUse() != 0 ||
		c.apps.InUse() != 0 || c.attrTab.InUse() != 0 || c.addrs.InUse() != 0 {
		t.Fatalf("slab indices not released: conns %d obs %d exts %d syms %d apps %d attrs %d addrs %d",
			c.conns.InUse(), c.obs.InUse(), c.exts.InUse(), c.syms.InUse(), c.apps.InUse(), c.attrTab.InUse(), c.addrs.InUse())
	}
	if len(c.attrIx) != 0 || c.pending.n != 0 || len(c.strs.ix) != 0 || c.strs.s.InUse() != 0 {
		t.Fatalf("%d attrs interned, %d keys indexed, %d names interned", len(c.attrIx), c.pending.n, len(c.strs.ix))
	}
}

// TestCloneRandom feeds random records (two probes, both directions, IPv4
// and IPv6, ICMP echo, FIN ends, port reuse, symptoms, changing flow
// intervals, application metadata) in start order; half way through it
// clones the consolidator, and feeds the rest to the original and other
// records (some directions reversed, other counts and symptoms) to the
// clone, in turns: each must complete what a consolidator never cloned
// completes from the same records.
func TestCloneRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	hosts := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}
	for round := 0; round < 30; round++ {
		var recs []flow.Record
		var origins []Origin
		for i := 0; i < 400; i++ {
			v6 := r.IntN(2) * 2
			src, dst := hosts[v6+r.IntN(2)], hosts[v6+r.IntN(2)]
			x := flow.Record{Key: flow.Key{Src: src, Dst: dst, Sport: uint16(1000 + r.IntN(3)), Dport: uint16(80 + r.IntN(2)), Proto: 6},
				Packets: uint64(1 + r.IntN(9)), Octets: uint64(40 + r.IntN(1500)),
				First: t0 + int64(r.IntN(600))*int64(time.Second)}
			x.Last = x.First + int64(r.IntN(30))*int64(time.Second)
			switch r.IntN(6) {
			case 0:
				x.Proto, x.Sport, x.Dport = 1, 0, uint16([]int{8 << 8, 0, 3<<8 | 1}[r.IntN(3)])
			case 1:
				x.EndReason = flow.EndDetected
			case 2:
				x.Symptoms = []flow.SymptomCount{{ID: uint16(r.IntN(3)), Count: 1}, {ID: uint16(3 + r.IntN(2)), Count: 2}}
			case 3:
				x.SamplingFlowInterval = uint32(1 + r.IntN(3))
				x.Aggregate, x.Category = uint32(r.IntN(3)), uint16(r.IntN(3))
			case 4:
				x.App.ServerName = []string{"a.example", "b.example"}[r.IntN(2)]
			}
			x.TCPFlags = uint8(r.IntN(256))
			recs = append(recs, x)
			origins = append(origins, Origin{Probe: []string{"p", "q"}[r.IntN(2)]})
		}
		slices.SortStableFunc(recs, func(a, b flow.Record) int { return cmp.Compare(a.First, b.First) })
		other := slices.Clone(recs) // the clone's second half
		for i := range other {
			x := &other[i]
			if i%2 == 0 {
				x.Src, x.Dst, x.Sport, x.Dport = x.Dst, x.Src, x.Dport, x.Sport
			}
			x.Packets++
			x.Symptoms = []flow.SymptomCount{{ID: uint16(i % 4), Count: 3}}
			x.App.HTTPHost = "h.example"
		}
		half := len(recs) / 2
		cfg := &Config{Window: 20 * time.Second, Batch: true}
		a, ref, ref2 := New(cfg), New(cfg), New(cfg)
		var cl *Consolidator
		var before int
		for i := range recs {
			if i == half {
				cl = a.Clone(nil)
				before = len(a.out)
			}
			a.AddRecord(origins[i], &recs[i], false)
			ref.AddRecord(origins[i], &recs[i], false)
			if cl == nil {
				ref2.AddRecord(origins[i], &recs[i], false)
				continue
			}
			cl.AddRecord(origins[i], &other[i], false)
			ref2.AddRecord(origins[i], &other[i], false)
		}
		for _, c := range []*Consolidator{a, cl, ref, ref2} {
			c.Flush()
		}
		ga, gc, gr, gr2 := a.Biflows(), cl.Biflows(), ref.Biflows(), ref2.Biflows()
		// An empty symptom list is nil or not as the reused Biflow's
		// history has it.
		for _, bs := range [][]Biflow{ga, gc, gr, gr2} {
			for i := range bs {
				if len(bs[i].Symptoms) == 0 {
					bs[i].Symptoms = nil
				}
			}
		}
		if !reflect.DeepEqual(ga, gr) {
			t.Fatalf("round %d: the cloned consolidator's biflows differ from one never cloned", round)
		}
		if before == 0 || len(gc) == 0 || len(gr2) < before || !reflect.DeepEqual(gr2[before:], gc) {
			t.Fatalf("round %d: the clone gave %d biflows, one never cloned %d after %d (or others)", round, len(gc), len(gr2)-before, before)
		}
		for _, c := range []*Consolidator{a, cl} {
			checkEmpty(t, c)
		}
	}
}

// TestPendingLayout keeps the pending state's sizes (the memory per
// pending flow, BenchmarkPendingMemory, is made of them).
func TestPendingLayout(t *testing.T) {
	for _, x := range []struct {
		name       string
		size, want uintptr
	}{
		{"conn", unsafe.Sizeof(conn{}), 48},
		{"obs", unsafe.Sizeof(obs{}), 64},
		{"symNode", unsafe.Sizeof(symNode{}), 12},
		{"appRec", unsafe.Sizeof(appRec{}), 24},
	} {
		if x.size != x.want {
			t.Errorf("%s is %d bytes, want %d", x.name, x.size, x.want)
		}
	}
}
