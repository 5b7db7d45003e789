package meter

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/mira-project/mira/appliance/flow"
)

// TestIndexAgainstMap drives a small table (so clusters wrap around the
// slot array and deletions shift them) with random flows and checks the
// records against an independent per-key count.
func TestIndexAgainstMap(t *testing.T) {
	for _, maxFlows := range []int{8, 64, 1000} {
		r := rand.New(rand.NewPCG(1, uint64(maxFlows)))
		want := map[flow.Key]uint64{}
		var got []flow.Record
		tab := New(&Config{MaxFlows: maxFlows, IdleTimeout: time.Hour, ExportBatch: 1}, func(rs []flow.Record) { got = append(got, rs...) })
		for n := 0; n < 200000; n++ {
			p := pkt(uint16(r.IntN(3*maxFlows)), 80, 0, 100)
			if r.IntN(2) == 0 {
				p.Src = netip.MustParseAddr("2001:db8::1")
				p.IPVersion = 6
			}
			k := flow.Key{Src: p.Src, Dst: p.Dst, Sport: p.Sport, Dport: p.Dport, Proto: p.Proto}
			want[k]++
			tab.Add(&p, int64(n), 0)
			if s := tab.Stats(); s.Active > uint64(maxFlows) {
				t.Fatalf("%d active flows in a table of %d", s.Active, maxFlows)
			}
			if n%997 == 0 {
				// Every live entry is found under its own key, once.
				live := 0
				for i := int32(0); i < tab.nslab; i++ {
					e := tab.at(i)
					if !e.inUse {
						continue
					}
					live++
					if j, ok := tab.find(&e.key, hashKey(&e.key)); !ok || j != i {
						t.Fatalf("entry %d (%v) not found under its key (got %d, %v)", i, e.key, j, ok)
					}
				}
				if live != tab.idx.n {
					t.Fatalf("%d live entries, index holds %d", live, tab.idx.n)
				}
			}
		}
		tab.Flush()
		have := map[flow.Key]uint64{}
		for _, rec := range got {
			have[rec.Key] += rec.Packets
		}
		if len(have) != len(want) {
			t.Fatalf("max %d: %d keys, want %d", maxFlows, len(have), len(want))
		}
		for k, n := range want {
			if have[k] != n {
				t.Fatalf("max %d: %v has %d packets, want %d", maxFlows, k, have[k], n)
			}
		}
		if tab.idx.n != 0 {
			t.Fatalf("index holds %d after flush", tab.idx.n)
		}
		for _, s := range tab.idx.slots {
			if s.idx != 0 {
				t.Fatal("slot left behind after flush")
			}
		}
	}
}

// TestEntryLayout keeps the per-packet fields within the first two cache
// lines of an entry.
func TestEntryLayout(t *testing.T) {
	var e entry
	if off := unsafe.Offsetof(e.hash); off > 128 {
		t.Errorf("hot fields end at offset %d, beyond two cache lines", off)
	}
	if unsafe.Sizeof(e)%64 != 0 {
		t.Errorf("entry size %d is not a multiple of 64", unsafe.Sizeof(e))
	}
}

// TestHashSpread checks that hashKey spreads keys differing only in one
// address byte, or only in the address family, over the index's home
// slots: it reads netip.Addr's memory directly (see hashKey), so a change
// of that layout in the standard library shows here.
func TestHashSpread(t *testing.T) {
	if unsafe.Sizeof(netip.Addr{}) < 16 {
		t.Fatalf("netip.Addr is %d bytes, hashKey reads 16", unsafe.Sizeof(netip.Addr{}))
	}
	ix := newIndex(1 << 14) // 2^15 slots
	homes := map[uint64]bool{}
	tags := map[uint32]bool{}
	n := 0
	for i := 0; i < 1<<12; i++ {
		for _, v6 := range []bool{false, true} {
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if v6 {
				a = netip.AddrFrom16(a.As16()) // ::ffff:10.0.x.y: same 128 bits, other family
			}
			for _, k := range []flow.Key{{Src: a, Dst: b4, Sport: 1234, Dport: 80, Proto: 6}, {Src: b4, Dst: a, Sport: 80, Dport: 1234, Proto: 6}} {
				h := hashKey(&k)
				homes[ix.home(tagOf(h))] = true
				tags[tagOf(h)] = true
				n++
			}
		}
	}
	// n keys thrown at random into 2^15 slots land in about
	// 2^15*(1-exp(-n/2^15)) = 12,900 distinct ones; a weak hash lands in
	// far fewer.
	if want := 12000; len(homes) < want {
		t.Errorf("%d keys use %d home slots of %d, want at least %d", n, len(homes), len(ix.slots), want)
	}
	if len(tags) < n-2 {
		t.Errorf("%d keys have only %d distinct tags", n, len(tags))
	}
}
