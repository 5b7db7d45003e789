package consolidate

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestConnKeyAddrs checks that the compact key gives back the addresses it
// was made of and orders them as netip.Addr.Compare does (Flush's output
// order depends on it).
func TestConnKeyAddrs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func() netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.IntN(3)) // few values: many ties
		}
		switch r.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte(b[:4]))
		case 1:
			b[10], b[11] = 0xff, 0xff // mapped form, kept as IPv6
			for i := 0; i < 10; i++ {
				b[i] = 0
			}
		}
		return netip.AddrFrom16(b)
	}
	sign := func(c int) int { return min(max(c, -1), 1) }
	for i := 0; i < 20000; i++ {
		x, y := addr(), addr()
		k := newConnKey(x, y, 1, 2, 6)
		if k.A() != x || k.B() != y {
			t.Fatalf("%v %v: key gives back %v %v", x, y, k.A(), k.B())
		}
		got := compareKeyAddr(k.a, k.b, k.fam&famA4 != 0, k.fam&famB4 != 0)
		if want := x.Compare(y); sign(got) != sign(want) {
			t.Fatalf("%v vs %v: %d, netip says %d", x, y, got, want)
		}
	}
}
