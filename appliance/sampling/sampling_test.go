package sampling

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/mira-project/mira/appliance/decode"
)

func pkt(i int) decode.Packet {
	return decode.Packet{
		Src:   netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		Dst:   netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 7)}),
		Sport: uint16(1024 + i%50000), Dport: 443, Proto: 6,
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", None, false}, {"none", None, false}, {"count", Count, false},
		{"deterministic", Count, false}, {"random", Random, false}, {"flow", Flow, false},
		{"hash", Flow, false}, {"bogus", None, true},
	} {
		got, err := ParseMode(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCountExact(t *testing.T) {
	s, err := New(&Config{Mode: "count", Interval: 10})
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i := 0; i < 1000; i++ {
		p := pkt(i)
		k := s.Keep(&p)
		if k != (i%10 == 0) {
			t.Fatalf("packet %d: keep %v", i, k)
		}
		if k {
			kept++
		}
	}
	if kept != 100 {
		t.Fatalf("kept %d of 1000 at 1 in 10", kept)
	}
	if seen, k := s.Stats(); seen != 1000 || k != 100 {
		t.Fatalf("stats %d %d", seen, k)
	}
	if s.PacketInterval() != 10 || s.FlowInterval() != 0 || s.SelectorAlgorithm() != AlgCountSystematic || s.LegacyAlgorithm() != LegacyDeterministic {
		t.Fatalf("descriptors: %d %d %d %d", s.PacketInterval(), s.FlowInterval(), s.SelectorAlgorithm(), s.LegacyAlgorithm())
	}
}

func TestUnsampled(t *testing.T) {
	for _, c := range []*Config{nil, {}, {Mode: "random", Interval: 1}, {Mode: "none", Interval: 100}} {
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			p := pkt(i)
			if !s.Keep(&p) {
				t.Fatalf("%+v: packet %d dropped", c, i)
			}
		}
		if s.Mode() != None || s.Interval() != 1 || s.PacketInterval() != 0 || s.SelectorAlgorithm() != 0 {
			t.Fatalf("%+v: %v %d", c, s.Mode(), s.Interval())
		}
	}
}

// TestRandomRate checks that the kept share over many seeds stays within
// 5 standard deviations of 1/N, and that seeds give different streams.
func TestRandomRate(t *testing.T) {
	const n, total = 20, 200000
	var prev uint64
	for seed := uint64(0); seed < 5; seed++ {
		s, _ := New(&Config{Mode: "random", Interval: n, Seed: seed})
		var kept uint64
		var sig uint64
		for i := 0; i < total; i++ {
			p := pkt(i)
			if s.Keep(&p) {
				kept++
				sig = sig*31 + uint64(i)
			}
		}
		mean := float64(total) / n
		sd := math.Sqrt(total * (1.0 / n) * (1 - 1.0/n))
		if math.Abs(float64(kept)-mean) > 5*sd {
			t.Errorf("seed %d: kept %d, want %.0f ± %.0f", seed, kept, mean, 5*sd)
		}
		if seed > 0 && sig == prev {
			t.Errorf("seed %d selected the same packets as seed %d", seed, seed-1)
		}
		prev = sig
	}
}

// TestFlowSymmetric checks that both directions of every connection get
// the same decision, in every sampler sharing the seed (another probe).
func TestFlowSymmetric(t *testing.T) {
	a, _ := New(&Config{Mode: "flow", Interval: 4, Seed: 7})
	b := a.Clone(3)
	kept := 0
	const total = 40000
	for i := 0; i < total; i++ {
		p := pkt(i)
		r := p
		r.Src, r.Dst, r.Sport, r.Dport = p.Dst, p.Src, p.Dport, p.Sport
		ka := a.Keep(&p)
		if kb := b.Keep(&r); ka != kb {
			t.Fatalf("connection %d: forward %v reverse %v", i, ka, kb)
		}
		if ka {
			kept++
		}
	}
	mean := total / 4.0
	sd := math.Sqrt(total * 0.25 * 0.75)
	if math.Abs(float64(kept)-mean) > 5*sd {
		t.Fatalf("kept %d connections, want %.0f ± %.0f", kept, mean, 5*sd)
	}
	// Another seed selects other connections.
	c, _ := New(&Config{Mode: "flow", Interval: 4, Seed: 8})
	same := 0
	for i := 0; i < 1000; i++ {
		p := pkt(i)
		if c.Keep(&p) == a.KeepFlow(p.Src, p.Dst, p.Sport, p.Dport, p.Proto) {
			same++
		}
	}
	if same == 1000 {
		t.Fatal("seed does not change the selection")
	}
	if a.FlowInterval() != 4 || a.PacketInterval() != 0 || a.LegacyAlgorithm() != LegacyRandom {
		t.Fatalf("descriptors %d %d %d", a.FlowInterval(), a.PacketInterval(), a.LegacyAlgorithm())
	}
}

func TestICMPBothDirections(t *testing.T) {
	s, _ := New(&Config{Mode: "flow", Interval: 2, Seed: 1})
	for i := 0; i < 200; i++ {
		req := decode.Packet{Src: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Dst: netip.MustParseAddr("192.0.2.1"), Dport: 8 << 8, Proto: 1}
		rep := decode.Packet{Src: req.Dst, Dst: req.Src, Dport: 0, Proto: 1}
		if s.Keep(&req) != s.Keep(&rep) {
			t.Fatalf("echo %d split", i)
		}
	}
}

func TestKeepAllocs(t *testing.T) {
	for _, m := range []string{"none", "count", "random", "flow"} {
		s, _ := New(&Config{Mode: m, Interval: 8})
		p := pkt(1)
		if n := testing.AllocsPerRun(1000, func() { s.Keep(&p) }); n != 0 {
			t.Errorf("%s: %v allocs per packet", m, n)
		}
	}
}

func BenchmarkKeep(b *testing.B) {
	for _, m := range []string{"count", "random", "flow", "flow-v6"} {
		b.Run(m, func(b *testing.B) {
			s, _ := New(&Config{Mode: strings.TrimSuffix(m, "-v6"), Interval: 100})
			p := pkt(12345)
			if strings.HasSuffix(m, "-v6") {
				p.Src, p.Dst = netip.MustParseAddr("2001:db8::1:2"), netip.MustParseAddr("2001:db8:ffff::443")
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.Sport = uint16(i)
				s.Keep(&p)
			}
		})
	}
}
