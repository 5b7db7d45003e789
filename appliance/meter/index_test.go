package meter

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
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
			var tk key
			setKey(&tk, &p)
			if tk.flowKey() != k {
				t.Fatalf("key %v round-trips to %v", k, tk.flowKey())
			}
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
// lines of an entry, and entries a multiple of 128 bytes so those lines
// are one aligned pair (fetched together).
func TestEntryLayout(t *testing.T) {
	var e entry
	if off := unsafe.Offsetof(e.seqKnown); off > 128 {
		t.Errorf("hot fields end at offset %d, beyond two cache lines", off)
	}
	// What every payload packet reads (scan state, scanned octets, the
	// application metadata counter) is in the two lines AddBatch
	// prefetches.
	for _, f := range []struct {
		name string
		end  uintptr
	}{
		{"st", unsafe.Offsetof(e.st) + unsafe.Sizeof(e.st)},
		{"scanned", unsafe.Offsetof(e.scanned) + unsafe.Sizeof(e.scanned)},
		{"app", unsafe.Offsetof(e.app) + 1},
		{"ftp", unsafe.Offsetof(e.ftp) + 1},
	} {
		if f.end > 128 {
			t.Errorf("%s ends at offset %d, beyond the two prefetched lines", f.name, f.end)
		}
	}
	if unsafe.Sizeof(e)%128 != 0 {
		t.Errorf("entry size %d is not a multiple of 128", unsafe.Sizeof(e))
	}
}

// TestAddrWords checks the fast path of addrWords against As16.
func TestAddrWords(t *testing.T) {
	if !addrInMemory {
		t.Log("netip.Addr layout changed: addrWords uses As16")
	}
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.20.30.40", "::", "::1", "2001:db8::ff00:42:8329", "::ffff:192.0.2.128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		hi, lo, is4 := addrWords(a)
		b := a.As16()
		var want [16]byte
		for i := 0; i < 8; i++ {
			want[i] = byte(hi >> (56 - 8*i))
			want[8+i] = byte(lo >> (56 - 8*i))
		}
		if b != want || is4 != a.Is4() {
			t.Errorf("%s: words %x %x %v", s, hi, lo, is4)
		}
		if back := wordsAddr(hi, lo, is4); back != a {
			t.Errorf("%s: round trip gives %s", s, back)
		}
	}
}

// TestHashSpread checks that hashKey spreads keys differing only in one
// address byte, or only in the address family, over the index's home
// slots.
func TestHashSpread(t *testing.T) {
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
			for _, p := range []decode.Packet{{Src: a, Dst: b4, Sport: 1234, Dport: 80, Proto: 6}, {Src: b4, Dst: a, Sport: 80, Dport: 1234, Proto: 6}} {
				var k key
				setKey(&k, &p)
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
