package consolidate

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

// tiedRecords are, for n keys (some IPv6), a connection closed by FIN
// and a new connection of the same key opened in the same millisecond
// by the same probe, with the same counters but another packet
// sampling: two biflows that tie on start time and key and differ in
// their estimates. In start order.
func tiedRecords(n int) []flow.Record {
	var out []flow.Record
	for i := range n {
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if i%5 == 0 {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		dst := netip.MustParseAddr("192.0.2.1")
		if src.Is6() {
			dst = netip.MustParseAddr("2001:db8::1")
		}
		k := flow.Key{Src: src, Dst: dst, Sport: uint16(1024 + i), Dport: 80, Proto: 17}
		at := t0 + int64(i%3)*int64(time.Millisecond)
		for j, iv := range []uint32{3, 7} {
			r := flow.Record{Key: k, Packets: 5, Octets: uint64(1000 + i), First: at, Last: at, SamplingPacketInterval: iv}
			if j == 0 {
				r.EndReason = flow.EndDetected
			}
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b flow.Record) int { return int(a.First - b.First) })
	return out
}

// emitted runs recs through a Batch Consolidator, completes them with
// complete, and returns the biflows in the order it emitted them.
func emitted(recs []flow.Record, complete func(c *Consolidator)) []Biflow {
	c := New(&Config{Batch: true})
	for i := range recs {
		c.AddRecord(Origin{Probe: "probe-a", Domain: 1}, &recs[i], false)
	}
	complete(c)
	return c.Biflows()
}

// TestEmitOrderTotal: Flush and CompleteBefore emit the same biflows in
// the same order on every run, by start time, then key, then (one key,
// one start) the older connection first, although every Consolidator
// seeds its hash index afresh: the order of the estimates' sums
// (usage, rollups) depends on the records only.
func TestEmitOrderTotal(t *testing.T) {
	recs := tiedRecords(200)
	for _, tc := range []struct {
		name     string
		complete func(c *Consolidator)
	}{
		{"Flush", func(c *Consolidator) { c.Flush() }},
		{"CompleteBefore", func(c *Consolidator) { c.CompleteBefore(t0 + int64(time.Hour)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			for run := range 20 {
				bs := emitted(recs, tc.complete)
				if len(bs) != 400 {
					t.Fatalf("%d biflows, want 400", len(bs))
				}
				for i := 1; i < len(bs); i++ {
					a, b := &bs[i-1], &bs[i]
					if a.First > b.First || (a.First == b.First && a.Key.Compare(b.Key) > 0) {
						t.Fatalf("run %d: biflow %d (%v %v) before %d (%v %v)", run, i-1, a.First, a.Key, i, b.First, b.Key)
					}
					if a.First == b.First && a.Key == b.Key && a.Sampling < b.Sampling {
						t.Fatalf("run %d: the newer connection (sampling %v) of %v before the older (%v)", run, a.Sampling, a.Key, b.Sampling)
					}
				}
				got := fmt.Sprint(bs)
				if run == 0 {
					want = got
				} else if got != want {
					t.Fatalf("run %d emitted another order than run 0", run)
				}
			}
		})
	}
}

// TestHeldReleaseOrder: records held for their domain's options are
// released in origin order, not the held map's: with duplicates kept,
// a connection's biflow lists its origins in the order their records
// were added, the same on every run.
func TestHeldReleaseOrder(t *testing.T) {
	var want []Origin
	for run := range 20 {
		c := New(&Config{AwaitOptions: []string{"*"}, Hold: time.Hour, KeepDuplicates: true})
		for d := range uint32(12) {
			r := rec("10.0.0.1", "10.0.0.2", 40000, 80, 3, 300, 0, time.Second)
			c.Add(Origin{Probe: "p", Domain: 12 - d}, []flow.Record{r})
		}
		c.Flush()
		bs := c.Biflows()
		if len(bs) != 1 || len(bs[0].Origins) != 12 {
			t.Fatalf("run %d: %d biflows %+v", run, len(bs), bs)
		}
		if run == 0 {
			want = bs[0].Origins
			if want[0].Domain != 1 || want[11].Domain != 12 {
				t.Fatalf("origins %v, want domains 1 to 12 in order", want)
			}
		} else if !slices.Equal(bs[0].Origins, want) {
			t.Fatalf("run %d: origins %v, run 0 %v", run, bs[0].Origins, want)
		}
	}
}
