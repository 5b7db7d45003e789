package sampling

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
)

// TestBOBKnownAnswers checks BOB against published values of Jenkins'
// lookup2 (the test patterns of com.j256.jenkinshash, "verified against
// the C sources") and against the RFC 5475 A.2 C code compiled with gcc
// on this machine for keys of the two lengths FlowHash uses (13 and 37
// bytes: one and three full 12-byte blocks plus a tail).
func TestBOBKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		key  string
		init uint32
		want uint32
	}{
		{"", 0, 3175731469},
		{"a", 0, 703514648},
		{"hello", 0, 3070638494},
		{"wow", 0, 627410295},
		{"\x00", 0, 1843378377},
		{"\xff\x80\x40\x01", 0, 3359486273},
		{"this is 11c", 0, 3384459500},
		{"this is 12ch", 0, 313177311},
		{"this is >12ch", 0, 2321813933},
		{"this is much large than 12 characters", 0, 2771373033},
		{"hello", 3070638494, 1535955511},
	} {
		if got := BOB([]byte(tc.key), tc.init); got != tc.want {
			t.Errorf("BOB(%q, %d) = %d, want %d", tc.key, tc.init, got, tc.want)
		}
	}
	var k [37]byte
	for i := range k {
		k[i] = byte(i*37 + 11)
	}
	for _, tc := range []struct {
		n          int
		init, want uint32
	}{
		{13, 0, 2074959090}, {13, 0xdeadbeef, 1257873653},
		{37, 0, 1855583215}, {37, 0xdeadbeef, 2962255204},
	} {
		if got := BOB(k[:tc.n], tc.init); got != tc.want {
			t.Errorf("BOB(%d-byte key, %#x) = %d, want %d", tc.n, tc.init, got, tc.want)
		}
	}
}

// TestFlowHashKey checks the documented key layout: the lower endpoint
// first, addresses in their own length, ports big-endian, protocol last.
func TestFlowHashKey(t *testing.T) {
	key := func(a, b netip.Addr, pa, pb uint16, proto uint8) []byte {
		k := append(a.AsSlice(), b.AsSlice()...)
		k = binary.BigEndian.AppendUint16(k, pa)
		k = binary.BigEndian.AppendUint16(k, pb)
		return append(k, proto)
	}
	lo4, hi4 := netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("192.0.2.1")
	lo6, hi6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, tc := range []struct {
		name      string
		src, dst  netip.Addr
		sp, dp    uint16
		proto     uint8
		canonical []byte
	}{
		{"v4 low first", lo4, hi4, 40000, 443, 6, key(lo4, hi4, 40000, 443, 6)},
		{"v4 high first", hi4, lo4, 443, 40000, 6, key(lo4, hi4, 40000, 443, 6)},
		{"v4 same address", lo4, lo4, 9000, 53, 17, key(lo4, lo4, 53, 9000, 17)},
		{"v6", hi6, lo6, 53, 5353, 17, key(lo6, hi6, 5353, 53, 17)},
		{"icmp", hi4, lo4, 0, 0x0800, 1, key(lo4, hi4, 0, 0, 1)},
		{"icmpv6", lo6, hi6, 0, 0x8000, 58, key(lo6, hi6, 0, 0, 58)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := len(tc.canonical); n != 13 && n != 37 {
				t.Fatalf("key of %d bytes", n)
			}
			for _, init := range []uint32{0, 7, 0xfeedface} {
				want := BOB(tc.canonical, init)
				if got := FlowHash(init, tc.src, tc.dst, tc.sp, tc.dp, tc.proto); got != want {
					t.Fatalf("init %d: FlowHash %d, BOB of canonical key %d", init, got, want)
				}
				if got := FlowHash(init, tc.dst, tc.src, tc.dp, tc.sp, tc.proto); got != want {
					t.Fatalf("init %d: reverse direction %d, want %d", init, got, want)
				}
			}
		})
	}
}

// TestHashRange checks the announced ranges against what Keep does: the
// selected range is the share of outputs kept, and the kept share of
// many connections matches it.
func TestHashRange(t *testing.T) {
	for _, tc := range []struct {
		n    uint32
		seed uint64
		init uint32
	}{
		{2, 0, 0}, {10, 7, 7}, {100, 1 << 40, 1 << 8}, {3, 0xffffffff00000001, 0xfffffffe},
	} {
		s, err := New(&Config{Mode: "flow", Interval: tc.n, Seed: tc.seed})
		if err != nil {
			t.Fatal(err)
		}
		init, lo, hi, ok := s.HashRange()
		if !ok || init != tc.init || lo != 0 {
			t.Fatalf("1 in %d: HashRange %d %d %d %v", tc.n, init, lo, hi, ok)
		}
		size := float64(hi) + 1
		if p := size / HashOutputRangeSize; p != s.Probability() || math.Abs(p*float64(tc.n)-1) > 1e-6 {
			t.Fatalf("1 in %d: selected %v of 2^32 (p %v), Probability %v", tc.n, size, p, s.Probability())
		}
		const total = 50000
		kept := 0
		for i := 0; i < total; i++ {
			p := pkt(i)
			h := FlowHash(init, p.Src, p.Dst, p.Sport, p.Dport, p.Proto)
			if k := s.KeepFlow(p.Src, p.Dst, p.Sport, p.Dport, p.Proto); k != (h >= lo && h <= hi) {
				t.Fatalf("connection %d: hash %d, kept %v, range [%d, %d]", i, h, k, lo, hi)
			} else if k {
				kept++
			}
		}
		p := s.Probability()
		if sd := math.Sqrt(total * p * (1 - p)); math.Abs(float64(kept)-total*p) > 5*sd {
			t.Errorf("1 in %d: kept %d of %d, want %.0f ± %.0f", tc.n, kept, total, total*p, 5*sd)
		}
	}
	if _, _, _, ok := mustNew(t, &Config{Mode: "random", Interval: 4}).HashRange(); ok {
		t.Fatal("random sampling reports a hash range")
	}
}

func mustNew(t *testing.T, c *Config) *Sampler {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzFlowHash checks, for any 5-tuple, that both directions hash alike
// and that the hash is BOB of the canonical key.
func FuzzFlowHash(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, uint16(1234), uint16(80), uint8(6), uint32(0))
	f.Add(make([]byte, 16), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(0), uint16(0x8000), uint8(58), uint32(99))
	f.Fuzz(func(t *testing.T, a, b []byte, sp, dp uint16, proto uint8, init uint32) {
		src, ok1 := netip.AddrFromSlice(a)
		dst, ok2 := netip.AddrFromSlice(b)
		if !ok1 || !ok2 || src.Is4() != dst.Is4() {
			return
		}
		h := FlowHash(init, src, dst, sp, dp, proto)
		if r := FlowHash(init, dst, src, dp, sp, proto); r != h {
			t.Fatalf("forward %d reverse %d", h, r)
		}
		if proto == 1 || proto == 58 {
			sp, dp = 0, 0
		}
		if c := src.Compare(dst); c > 0 || c == 0 && sp > dp {
			src, dst, sp, dp = dst, src, dp, sp
		}
		k := append(src.AsSlice(), dst.AsSlice()...)
		k = append(k, byte(sp>>8), byte(sp), byte(dp>>8), byte(dp), proto)
		if w := BOB(k, init); w != h {
			t.Fatalf("FlowHash %d, BOB of key %x %d", h, k, w)
		}
	})
}
