package sum

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// terms are estimator-like values: counts, counts scaled by 1/p for
// sampling intervals that are not powers of two (so not integers in
// float64), variances up to 1e30, and fractions.
func terms(rng *rand.Rand, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		N := float64(1 + rng.IntN(1000))
		p := 1 / N
		x := float64(rng.Uint64N(1 << 40))
		switch i % 5 {
		case 0:
			out[i] = x / p
		case 1:
			out[i] = (1 - p) / (p * p) * x * x / float64(1+rng.IntN(1000))
		case 2:
			out[i] = rng.Float64()
		case 3:
			out[i] = float64(rng.Uint64N(1000))
		default:
			out[i] = math.Ldexp(rng.Float64(), rng.IntN(100)-10)
		}
	}
	return out
}

// exactFloat is the float64 nearest the sum of vs each rounded to a
// multiple of Unit, by math/big.
func exactFloat(vs []float64) float64 {
	s := new(big.Float).SetPrec(400)
	for _, v := range vs {
		q := new(big.Float).SetPrec(400).SetFloat64(math.Round(v * scale))
		s.Add(s, q)
	}
	s.Mul(s, new(big.Float).SetFloat64(Unit))
	f, _ := s.Float64()
	return f
}

// TestOrderFree: the sum of the same terms, added in any order and
// split into partial sums merged in any order, is the same Exact, and
// its Float is the float64 nearest the exact sum of the rounded terms.
func TestOrderFree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		vs := terms(rng, 1+rng.IntN(2000))
		var want Exact
		for _, v := range vs {
			want.Add(v)
		}
		if got, ref := want.Float(), exactFloat(vs); got != ref {
			t.Fatalf("round %d: Float %v, want %v (math/big)", round, got, ref)
		}
		for range 5 {
			rng.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
			parts := make([]Exact, 1+rng.IntN(8))
			for _, v := range vs {
				parts[rng.IntN(len(parts))].Add(v)
			}
			var got Exact
			off := rng.IntN(len(parts))
			for j := range parts {
				got.Merge(&parts[(off+j)%len(parts)])
			}
			if got != want || got.Float() != want.Float() {
				t.Fatalf("round %d: %+v (%v), want %+v (%v)", round, got, got.Float(), want, want.Float())
			}
		}
	}
}

// TestFloatSumDiffers shows what Exact is for: the same terms summed in
// float64 in two orders differ.
func TestFloatSumDiffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vs := terms(rng, 2000)
	var a, b float64
	for i := range vs {
		a += vs[i]
		b += vs[len(vs)-1-i]
	}
	if a == b {
		t.Fatalf("float64 sums equal (%v): pick other terms", a)
	}
}

func TestIntegers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var e Exact
	var f float64
	var n uint64
	for range 1000 {
		v := rng.Uint64N(1 << 40)
		e.Add(float64(v))
		f += float64(v)
		n += v
	}
	if e.Float() != f {
		t.Fatalf("integers: %v, want %v", e.Float(), f)
	}
	if o := OfUint(n); o != e {
		t.Fatalf("OfUint(%d) = %+v, want %+v", n, o, e)
	}
	big := OfUint(math.MaxUint64)
	if big.Float() != 0x1p64 || big.Hi != math.MaxUint64>>(64-FracBits) {
		t.Fatalf("OfUint(max) = %+v (%v)", big, big.Float())
	}
}

func TestOver(t *testing.T) {
	var e Exact
	for range 4 {
		e.Add(0x1p106) // 2^126 units each: the fourth wraps 2^128
	}
	if e.Hi != 0 || e.Lo != 0 || e.Over != 0x1p108 || e.Float() != 0x1p108 {
		t.Fatalf("wrap: %+v", e)
	}
	e = Exact{}
	e.Add(1e40)
	e.Add(-2)
	e.Add(3)
	if e.Over != 1e40-2 || e.Float() != 1e40-2+3 {
		t.Fatalf("over: %+v %v", e, e.Float())
	}
	e = Exact{}
	e.Add(math.NaN())
	if !math.IsNaN(e.Float()) {
		t.Fatalf("NaN lost: %+v", e)
	}
	if e := Of(0.5 * Unit); e.Lo != 1 { // rounds half away from zero
		t.Fatalf("half a unit: %+v", e)
	}
	if e := Of(0.4 * Unit); !e.IsZero() {
		t.Fatalf("0.4 unit: %+v", e)
	}
}

// TestSub: the sum of some terms less the sum of a subset of them is the
// sum of the others, bit for bit.
func TestSub(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 50 {
		vs := terms(rng, 1+rng.IntN(500))
		var all, some, rest Exact
		for _, v := range vs {
			all.Add(v)
			if rng.IntN(3) == 0 {
				some.Add(v)
			} else {
				rest.Add(v)
			}
		}
		got := all
		got.Sub(&some)
		if got != rest {
			t.Fatalf("round %d: %+v, want %+v", round, got, rest)
		}
		got.Sub(&rest)
		if !got.IsZero() {
			t.Fatalf("round %d: all less both parts: %+v", round, got)
		}
	}
	var w Exact
	for range 4 {
		w.Add(0x1p106) // wraps
	}
	x := Of(0x1p106)
	w.Sub(&x) // borrows
	if w.Float() != 3*0x1p106 {
		t.Fatalf("borrow: %+v = %v", w, w.Float())
	}
}

// BenchmarkExactAdd adds estimator-like terms to an Exact (against
// BenchmarkFloatAdd, the float64 sum it replaces).
func BenchmarkExactAdd(b *testing.B) {
	vs := terms(rand.New(rand.NewPCG(9, 10)), 4096)
	var e Exact
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Add(vs[i&4095])
	}
	if e.IsZero() {
		b.Fatal("zero")
	}
}

func BenchmarkFloatAdd(b *testing.B) {
	vs := terms(rand.New(rand.NewPCG(9, 10)), 4096)
	var f float64
	for i := 0; b.Loop(); i++ {
		f += vs[i&4095]
	}
	if f == 0 {
		b.Fatal("zero")
	}
}
