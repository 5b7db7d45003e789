// Package sum adds float64 values exactly, so that a sum does not depend
// on the order its terms were added in, nor on how they were grouped
// into partial sums added afterwards.
//
// MIRA's estimates (collector/consolidate: totals scaled by the inverse
// of a sampling probability, and their variances) are sums of one term
// per biflow. Added in float64, the same terms in another order (a
// report's biflows against the rollups' per-minute cells, a cluster's
// workers each summing their partitions) gave sums that differed in
// their last bits, and so reports that differed byte for byte.
//
// An Exact is a fixed-point number: each term is rounded to a multiple
// of 2^-20 (Unit; the terms are counts, estimates of counts and their
// variances, so this changes a term by at most a millionth of a packet,
// an octet or a squared octet) and the multiples are added as 128-bit
// integers, which is exact, commutative and associative. Terms of 2^107
// or more, negative ones and NaN, which the estimators never make from
// the counters they are given, are added in float64 beside (Over) and
// are exact only as far as float64 is. The zero Exact is 0.
package sum

import (
	"math"
	"math/bits"
)

// FracBits is the number of fractional bits of an Exact: terms are
// rounded to multiples of Unit.
const FracBits = 20

// Unit is the resolution of an Exact.
const Unit = 1.0 / (1 << FracBits)

const (
	scale = 1 << FracBits
	// maxTerm bounds the terms added in fixed point: a term below it is
	// below 2^127 units, so the 128-bit sum can take two of them.
	maxTerm = 0x1p107
	// wrap is the value of 2^128 units, added to Over when the fixed
	// point overflows (after some 2^21 terms of maxTerm; a multiple
	// of a power of two, so Over stays exact).
	wrap = 0x1p108
)

// Exact is an exactly added sum of float64 values. Its fields are
// exported for encodings (gob); Add, Merge and Float are its arithmetic.
type Exact struct {
	// Hi and Lo are the fixed-point sum in units of 2^-FracBits, the
	// high and low 64 bits.
	Hi, Lo uint64
	// Over is the sum of the terms the fixed point does not hold, and
	// of its overflows.
	Over float64
}

// Of returns the Exact of v alone.
func Of(v float64) Exact {
	var e Exact
	e.Add(v)
	return e
}

// OfUint returns the Exact of the integer n (exactly, whatever n).
func OfUint(n uint64) Exact {
	return Exact{Hi: n >> (64 - FracBits), Lo: n << FracBits}
}

// Add adds v to e.
func (e *Exact) Add(v float64) {
	if v == 0 {
		return
	}
	if !(v > 0 && v < maxTerm) {
		e.Over += v
		return
	}
	u := math.Round(v * scale) // exact scaling, then to the nearest unit
	var hi, lo uint64
	if u < 0x1p64 {
		lo = uint64(u)
	} else {
		// u is an integer of 53 significant bits: both halves and their
		// difference are exact.
		hi = uint64(u * 0x1p-64)
		lo = uint64(u - float64(hi)*0x1p64)
	}
	e.add(hi, lo)
}

func (e *Exact) add(hi, lo uint64) {
	var c uint64
	e.Lo, c = bits.Add64(e.Lo, lo, 0)
	e.Hi, c = bits.Add64(e.Hi, hi, c)
	if c != 0 {
		e.Over += wrap
	}
}

// Merge adds o to e: Merge of partial sums gives the sum of all their
// terms, bit for bit, however they were split and in whichever order.
func (e *Exact) Merge(o *Exact) {
	e.add(o.Hi, o.Lo)
	e.Over += o.Over
}

// Sub takes o out of e: after e.Merge(o), e.Sub(o) gives e back, bit
// for bit (but for Over: terms held apart are subtracted in float64).
func (e *Exact) Sub(o *Exact) {
	var b uint64
	e.Lo, b = bits.Sub64(e.Lo, o.Lo, 0)
	e.Hi, b = bits.Sub64(e.Hi, o.Hi, b)
	if b != 0 {
		e.Over -= wrap
	}
	e.Over -= o.Over
}

// IsZero reports whether e is 0.
func (e *Exact) IsZero() bool { return e.Hi == 0 && e.Lo == 0 && e.Over == 0 }

// Float returns e as the float64 nearest its fixed-point value, plus
// Over.
func (e *Exact) Float() float64 {
	var f float64
	if e.Hi == 0 {
		f = float64(e.Lo) // correctly rounded
	} else {
		// The top 64 bits, with the bits below them folded into the
		// lowest (round to odd): converting that to 53 bits rounds as
		// the 128-bit value would.
		n := uint(bits.LeadingZeros64(e.Hi))
		t := e.Hi<<n | e.Lo>>(64-n)
		if e.Lo<<n != 0 {
			t |= 1
		}
		f = math.Ldexp(float64(t), int(64-n))
	}
	return f*Unit + e.Over
}
