package meter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
)

var (
	a4 = netip.MustParseAddr("192.0.2.1")
	b4 = netip.MustParseAddr("198.51.100.7")
)

func pkt(sport, dport uint16, flags uint8, n int) decode.Packet {
	return decode.Packet{Src: a4, Dst: b4, Sport: sport, Dport: dport, Proto: 6, IPVersion: 4, OuterLen: n, InnerLen: n, TCPFlags: flags}
}

const sec = int64(time.Second)

type collect struct{ recs []flow.Record }

func (c *collect) sink(r []flow.Record) { c.recs = append(c.recs, r...) }

func TestCountsAndFlush(t *testing.T) {
	var c collect
	tab := New(&Config{ExportBatch: 1}, c.sink)
	base := int64(1552590234892000000) // 2019-03-14
	for i := 0; i < 5; i++ {
		p := pkt(40001, 25, 0x18, 100+i)
		tab.Add(&p, base+int64(i)*sec, 3)
	}
	if len(c.recs) != 0 {
		t.Fatalf("exported early: %+v", c.recs)
	}
	tab.Flush()
	if len(c.recs) != 1 {
		t.Fatalf("got %d records, want 1", len(c.recs))
	}
	r := c.recs[0]
	if r.Packets != 5 || r.Octets != 510 || r.First != base || r.Last != base+4*sec || r.TCPFlags != 0x18 || r.EndReason != flow.EndForced || r.Ingress != 3 {
		t.Errorf("record %+v", r)
	}
	if s := tab.Stats(); s.Active != 0 || s.Created != 1 || s.Expired[flow.EndForced] != 1 || s.Packets != 5 {
		t.Errorf("stats %+v", s)
	}
}

func TestIdleTimeout(t *testing.T) {
	var c collect
	tab := New(&Config{IdleTimeout: 10 * time.Second, ExportBatch: 1}, c.sink)
	p1 := pkt(1, 2, 0, 60)
	p2 := pkt(3, 4, 0, 60)
	tab.Add(&p1, 0, 0)
	tab.Add(&p2, 5*sec, 0)
	tab.Add(&p2, 11*sec, 0) // p1 idle for 11s: expires
	if len(c.recs) != 1 || c.recs[0].Sport != 1 || c.recs[0].EndReason != flow.EndIdle {
		t.Fatalf("records %+v", c.recs)
	}
	tab.Tick(30 * sec)
	if len(c.recs) != 2 || c.recs[1].Sport != 3 || c.recs[1].Packets != 2 {
		t.Fatalf("records after tick %+v", c.recs)
	}
}

func TestActiveTimeoutSplitsLongFlow(t *testing.T) {
	var c collect
	tab := New(&Config{ActiveTimeout: 60 * time.Second, IdleTimeout: 30 * time.Second}, c.sink)
	p := pkt(1, 2, 0x10, 100)
	for i := int64(0); i < 150; i++ { // one packet a second for 150 s
		tab.Add(&p, i*sec, 0)
	}
	tab.Flush()
	var pk uint64
	reasons := map[flow.EndReason]int{}
	for _, r := range c.recs {
		pk += r.Packets
		reasons[r.EndReason]++
		if r.Last-r.First >= 60*sec {
			t.Errorf("record spans %v, beyond the active timeout", time.Duration(r.Last-r.First))
		}
	}
	if pk != 150 || len(c.recs) != 3 || reasons[flow.EndActive] != 2 || reasons[flow.EndForced] != 1 {
		t.Errorf("got %d records %v, %d packets", len(c.recs), reasons, pk)
	}
}

func TestTCPEnd(t *testing.T) {
	var c collect
	tab := New(&Config{TCPEndTimeout: 2 * time.Second, ExportBatch: 1}, c.sink)
	syn, fin, ack := pkt(1, 2, 0x02, 60), pkt(1, 2, 0x11, 52), pkt(1, 2, 0x10, 52)
	other := pkt(9, 9, 0x10, 52)
	tab.Add(&syn, 0, 0)
	tab.Add(&fin, 1*sec, 0)
	tab.Add(&ack, 2*sec, 0) // the last ACK stays in the flow
	tab.Add(&other, 3*sec, 0)
	if len(c.recs) != 0 {
		t.Fatalf("exported before the grace period: %+v", c.recs)
	}
	tab.Add(&other, 4*sec+1, 0)
	if len(c.recs) != 1 || c.recs[0].Packets != 3 || c.recs[0].EndReason != flow.EndDetected || c.recs[0].TCPFlags != 0x13 {
		t.Fatalf("records %+v", c.recs)
	}
}

func TestTableFullEvictsOldest(t *testing.T) {
	var c collect
	tab := New(&Config{MaxFlows: 4, ExportBatch: 1}, c.sink)
	for i := 0; i < 6; i++ {
		p := pkt(uint16(i), 80, 0, 60)
		tab.Add(&p, int64(i)*sec/10, 0)
	}
	// Flow 0 and 1 were least recently seen.
	if len(c.recs) != 2 || c.recs[0].Sport != 0 || c.recs[1].Sport != 1 || c.recs[0].EndReason != flow.EndResource {
		t.Fatalf("records %+v", c.recs)
	}
	s := tab.Stats()
	if s.Evicted() != 2 || s.Active != 4 {
		t.Errorf("stats %+v", s)
	}
	// Touching flow 2 makes flow 3 the oldest.
	p2 := pkt(2, 80, 0, 60)
	tab.Add(&p2, sec, 0)
	p9 := pkt(9, 80, 0, 60)
	tab.Add(&p9, sec, 0)
	if c.recs[2].Sport != 3 {
		t.Errorf("evicted %d, want 3", c.recs[2].Sport)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	tab := New(&Config{MaxFlows: 1024}, func([]flow.Record) {})
	pk := make([]decode.Packet, 2000)
	for i := range pk {
		pk[i] = pkt(uint16(i), 443, 0x10, 1500)
	}
	var ts int64
	allocs := testing.AllocsPerRun(50, func() {
		for i := range pk {
			ts += 1000
			tab.Add(&pk[i], ts, 0)
		}
	})
	if allocs > 0 {
		t.Errorf("Add allocates: %.1f allocs per 2000 packets", allocs)
	}
}

func BenchmarkAdd(b *testing.B) {
	tab := New(nil, func([]flow.Record) {})
	const nflows = 20000
	pk := make([]decode.Packet, nflows)
	for i := range pk {
		pk[i] = pkt(uint16(i), 443, 0x10, 1500)
		pk[i].Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var ts int64
	for i := 0; i < b.N; i++ {
		ts += 300
		tab.Add(&pk[i%nflows], ts, 0)
	}
}
