package symptom

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// simdOut is the room for candidate positions one call of the vectorised
// loops fills (on the caller's stack, zeroed per call: 512 bytes, room for
// two 64-position blocks; with 1 KiB the zeroing cost 200-byte packets
// about 5 %).
const simdOut = 128

// teddyMin is the shortest payload the Teddy prefilter takes; shorter ones
// go through the bitmap prefilter (scan3).
const teddyMin = 34

// teddyMaxGrams bounds the grams the Teddy filter is built for: with more,
// its eight buckets pass most positions and the bitmap is faster.
const teddyMaxGrams = 400

// fdrMinGrams: a database with more trigger grams than this is prefiltered
// by FDR (a variable so that tests can take small databases through it).
var fdrMinGrams = teddyMaxGrams

// teddyMasks is the Teddy filter (Hyperscan's shuffle over nibbles): each
// gram is put in one of 16 buckets, eight per table set; in a set,
// lo[k][x] has the bit of every bucket holding a gram whose byte k has low
// nibble x, hi[k][x] likewise for the high nibble. A position passes when
// some bucket bit survives the AND of the six lookups of its three bytes
// in either set. Each 16-byte table is stored twice (both 128-bit lanes of
// a 256-bit shuffle); nib is 0x0F in every byte. The layout is the
// assembly's.
type teddyMasks struct {
	a   [6][32]byte // lo0, hi0, lo1, hi1, lo2, hi2 of buckets 0-7
	nib [32]byte
	b   [6][32]byte // the same for buckets 8-15
}

// commonGrams are 3-grams frequent in traffic (runs of zeros, of 0xFF, of
// spaces, line ends): a bucket is not made to pass one the database lacks.
var commonGrams = []uint32{0x000000, 0xFFFFFF, 0x202020, 0x0A0D0A, 0x0D0A0D, 0x000001, 0x010000, 0x000100}

// newTeddy builds the filter for grams (low 3 bytes of each). Grams go
// greedily to the bucket whose nibble sets grow least (by the product of
// their sizes, the bucket's pass rate on uniform bytes), largest first in
// sorted order, so that grams sharing nibbles share a bucket.
func newTeddy(grams []uint32) *teddyMasks {
	g := slices.Clone(grams)
	slices.Sort(g)
	g = slices.Compact(g)
	var sets [16][6]uint16 // per bucket: nibble sets lo0, hi0, ...
	cost := func(s *[6]uint16) float64 {
		c := 1.0
		for _, x := range s {
			c *= float64(bits.OnesCount16(x))
		}
		return c
	}
	inDB := map[uint32]bool{}
	for _, x := range g {
		inDB[x] = true
	}
	passes := func(s *[6]uint16, x uint32) bool {
		for k := range 3 {
			b := byte(x >> (8 * k))
			if s[2*k]&(1<<(b&15)) == 0 || s[2*k+1]&(1<<(b>>4)) == 0 {
				return false
			}
		}
		return true
	}
	for _, x := range g {
		var add [6]uint16
		for k := range 3 {
			b := byte(x >> (8 * k))
			add[2*k], add[2*k+1] = 1<<(b&15), 1<<(b>>4)
		}
		best, bestD := 0, math.Inf(1)
		for bk := range sets {
			grown := sets[bk]
			for j := range grown {
				grown[j] |= add[j]
			}
			d := cost(&grown) - cost(&sets[bk])
			for _, cg := range commonGrams {
				if !inDB[cg] && passes(&grown, cg) && !passes(&sets[bk], cg) {
					d += 1e12 // a bucket passing runs of zeros is no filter
				}
			}
			if d < bestD {
				best, bestD = bk, d
			}
		}
		for j := range add {
			sets[best][j] |= add[j]
		}
	}
	t := &teddyMasks{}
	for bk := range sets {
		tabs, bit := &t.a, byte(1)<<(bk&7)
		if bk >= 8 {
			tabs = &t.b
		}
		for j, set := range sets[bk] {
			for x := range 16 {
				if set&(1<<x) != 0 {
					tabs[j][x] |= bit
					tabs[j][16+x] |= bit
				}
			}
		}
	}
	for i := range t.nib {
		t.nib[i] = 0x0F
	}
	return t
}

// pass tells whether the gram at p[i:i+3] passes the filter.
func (t *teddyMasks) pass(p []byte, i int) bool {
	a, b, c := p[i]&15, p[i+1]&15, p[i+2]&15
	x, y, z := p[i]>>4, p[i+1]>>4, p[i+2]>>4
	return t.a[0][a]&t.a[1][x]&t.a[2][b]&t.a[3][y]&t.a[4][c]&t.a[5][z] != 0 ||
		t.b[0][a]&t.b[1][x]&t.b[2][b]&t.b[3][y]&t.b[4][c]&t.b[5][z] != 0
}

// teddyGo is the portable teddyAVX2: the same positions, in the same
// blocks of 32.
func teddyGo(t *teddyMasks, base unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	p := unsafe.Slice((*byte)(base), n)
	cnt := 0
	for ; i+34 <= n && cnt <= simdOut-32; i += 32 {
		for j := i; j < i+32; j++ {
			if t.pass(p, j) {
				out[cnt] = uint32(j)
				cnt++
			}
		}
	}
	return i, cnt
}

// firstMasks is the search for the bytes 1- and 2-byte triggers start
// with (at most four, each broadcast in set), with a companion byte each:
// at distance dist[j] from a byte set[j], a candidate has a byte equal to
// cval[j] under cmask[j] (a 2-byte trigger's common bits of its second
// byte; a validator's second sync byte). A zero mask accepts any byte. The
// layout is the assembly's.
type firstMasks struct {
	set, cmask, cval [4][32]byte
	dist             [4]int
}

func newFirstMasks(bytes []byte, comp [4]companion) *firstMasks {
	f := &firstMasks{}
	for j := range 4 {
		k := j % len(bytes)
		for x := range 32 {
			f.set[j][x] = bytes[k]
			f.cmask[j][x] = comp[k].mask
			f.cval[j][x] = comp[k].val
		}
		f.dist[j] = comp[k].dist
	}
	return f
}

// maxDist is the largest companion distance.
func (f *firstMasks) maxDist() int { return max(f.dist[0], f.dist[1], f.dist[2], f.dist[3]) }

// firstGo is the portable firstAVX2.
func firstGo(f *firstMasks, base unsafe.Pointer, n, i int, out *[simdOut]uint32) (int, int) {
	p := unsafe.Slice((*byte)(base), n+f.maxDist())
	cnt := 0
	for ; i+32 <= n && cnt <= simdOut-32; i += 32 {
		for q := i; q < i+32; q++ {
			for j := range 4 {
				if p[q] == f.set[j][0] && p[q+f.dist[j]]&f.cmask[j][0] == f.cval[j][0] {
					out[cnt] = uint32(q)
					cnt++
					break
				}
			}
		}
	}
	return i, cnt
}

// companion is a byte every occurrence of an entry has at dist from its
// trigger's first byte, under mask (zero mask: none known).
type companion struct {
	dist      int
	mask, val byte
}

// merge is the companion two entries starting with the same byte share:
// the same distance, the bits both fix to the same value.
func (a companion) merge(b companion) companion {
	if a.dist != b.dist {
		return companion{}
	}
	m := a.mask & b.mask &^ (a.val ^ b.val)
	if m == 0 {
		return companion{}
	}
	return companion{a.dist, m, a.val & m}
}

// shortCompanion is the companion of a 1- or 2-byte-trigger entry.
func shortCompanion(e *entry) companion {
	if len(e.trig) >= 2 {
		c := companion{1, 0xFF, e.trig[1]}
		if e.nocase && foldByte(e.trig[1]) != foldByte(e.trig[1]^0x20) {
			c.mask, c.val = 0xDF, e.trig[1]&0xDF
		}
		return c
	}
	if e.kind == KindValidate && e.sync.mask != 0 && e.sync.dist > 0 {
		return e.sync
	}
	return companion{}
}

// scanTeddy is scan3 for payloads of at least teddyMin bytes: it tests
// the gram at every position with the Teddy filter and looks the survivors
// up in the table of the triggers' chosen grams (rareGram). Unlike scan3's bitmap, the
// Teddy filter does not hold the first grams of the automaton words, so it
// cannot tell where they may restart (stream finds that out).
func (m *matcher) scanTeddy(c *Counts, p []byte, off uint64, prevNL bool) {
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	var out [simdOut]uint32
	t := m.teddy
	if off >= m.farFrom {
		t = m.teddyFar // past the windows of depth-bounded triggers
	}
	i := 0
	for i+teddyMin <= n {
		next, cnt := teddyScan(t, base, n, i, &out)
		for _, q := range out[:cnt] {
			m.verify0(c, p, int(q), off, prevNL)
		}
		i = next
	}
	if i < n-2 {
		// The last block overlaps the one before; positions before i are
		// done.
		_, cnt := teddyScan(t, base, n, n-teddyMin, &out)
		for _, q := range out[:cnt] {
			if int(q) < i {
				continue
			}
			m.verify0(c, p, int(q), off, prevNL)
		}
	}
}

// verify0 looks the gram at p[i:] up in the table of the triggers' chosen
// grams and tries its candidates.
func (m *matcher) verify0(c *Counts, p []byte, i int, off uint64, prevNL bool) {
	if b := m.grams0.find(gram3(p[i:])); b != 0 {
		m.tryList(c, m.lists[m.bidx[b-1]:m.bidx[b]], p, i, off, prevNL)
	}
}

// scanFirst is scanShort with the vectorised search for the bytes that
// 1- and 2-byte triggers start with (at most four).
func (m *matcher) scanFirst(c *Counts, p []byte, off uint64, prevNL bool) {
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	var out [simdOut]uint32
	i := 0
	for i+32+m.firstDist <= n {
		next, cnt := firstScan(m.firstC, base, n-m.firstDist, i, &out)
		for _, q := range out[:cnt] {
			m.shortAt(c, p, int(q), int(q)+1, off, prevNL)
		}
		i = next
	}
	if m.firstDist > 0 {
		for i+32 <= n {
			next, cnt := firstScan(m.firstP, base, n, i, &out)
			for _, q := range out[:cnt] {
				m.shortAt(c, p, int(q), int(q)+1, off, prevNL)
			}
			i = next
		}
	}
	m.shortAt(c, p, i, n, off, prevNL)
}

// restartTeddy is restart (over the union of both automata's word starts)
// with the candidates of the teddyStart filter, for len(p) >= teddyMin: the
// first position in the last maxWord-1 bytes whose gram starts a word, else
// the last two bytes.
func (m *matcher) restartTeddy(p []byte) int {
	n := len(p)
	lo := max(n-(m.maxWord-1), 0)
	base := unsafe.Pointer(unsafe.SliceData(p))
	var out [simdOut]uint32
	i := min(lo, n-teddyMin)
	for i+teddyMin <= n {
		next, cnt := teddyScan(m.teddyStart, base, n, i, &out)
		for _, q := range out[:cnt] {
			if int(q) >= lo && m.startsAt(p, int(q)) {
				return int(q)
			}
		}
		i = next
	}
	if i < n-2 {
		_, cnt := teddyScan(m.teddyStart, base, n, n-teddyMin, &out)
		for _, q := range out[:cnt] {
			if int(q) >= max(i, lo) && m.startsAt(p, int(q)) {
				return int(q)
			}
		}
	}
	return max(n-2, lo)
}

// startsAt tells whether the gram at p[q:] may start an automaton word.
func (m *matcher) startsAt(p []byte, q int) bool {
	h := hash3(gram3(p[q:])) >> 16
	return m.starts[h>>6]&(1<<(h&63)) != 0
}

// byteWeight estimates how common a byte is in traffic (text above all):
// a trigger is looked up by its gram whose weights' product is least.
func byteWeight(b byte, nocase bool) int {
	switch {
	case b == ' ':
		return 10
	case b >= 'a' && b <= 'z':
		return 8
	case b >= 'A' && b <= 'Z':
		if nocase {
			return 8
		}
		return 3
	case b == 0:
		return 8
	case b == '\r' || b == '\n' || b == 0xFF:
		return 4
	case b >= '0' && b <= '9', strings.IndexByte(".,;:/=<>\"'-_()", b) >= 0:
		return 3
	case b > ' ' && b < 0x7F:
		return 2
	}
	return 1
}

// rareGram is the offset of a trigger's least common 3-gram (see
// byteWeight); the first of equals.
func rareGram(t []byte, nocase bool) int {
	best, bw := 0, -1
	for d := 0; d+3 <= len(t); d++ {
		w := byteWeight(t[d], nocase) * byteWeight(t[d+1], nocase) * byteWeight(t[d+2], nocase)
		if bw < 0 || w < bw {
			best, bw = d, w
		}
	}
	return best
}
