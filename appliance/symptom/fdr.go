package symptom

import (
	"math"
	"math/bits"
	"slices"
	"unsafe"
)

// The FDR prefilter (after Hyperscan's FDR) for large databases: a
// shift-or over the payload's "super-characters". Each trigger is
// represented by a window of at most eight of its bytes; the triggers are
// put in eight buckets. The super-character at position x is p[x] and the
// low fdrDomain-8 bits of p[x+1]; tab[sc] has bit 8k+b clear when some
// window of bucket b may have super-character sc k bytes before its last
// byte (with its next byte, when the trigger goes on past the window).
// ORing tab[sc(x)] shifted by x bytes over a block of positions leaves, in
// byte lane e, a clear bit b only if every lane of some window of bucket b
// ending at e allows its super-character. Those positions are confirmed
// in an exact table of the windows' last three bytes (fdr.grams).
//
// A position costs one table load, a shift and an OR; unlike the Teddy
// filter (16 buckets of 3-byte grams), which passes most positions once
// the database has about 2,000 grams, a window of up to eight bytes keeps
// eight buckets of 125 triggers selective.

// fdrDomain is the super-character's width in bits: p[x] and the low five
// bits of p[x+1] (below the ASCII case bit, so that a case-insensitive
// byte needs no variants in the second place). 2^13 entries of 8 bytes.
const fdrDomain = 13

// fdrRead is how many bytes one block of 16 positions reads from its start
// (the last position's super-character is loaded as 4 bytes).
const fdrRead = 19

// fdrOut is the room for candidate positions one call of the FDR loop
// fills (zeroed per packet: kept small).
const fdrOut = 48

// fdrArgs is the kernels' view of the table (the layout is the assembly's).
type fdrArgs struct {
	tab   unsafe.Pointer // 1<<fdrDomain uint64
	nmask uint32         // ^(1<<fdrDomain - 1), ANDN's operand
	_     uint32
	// stride is 1, or 2 when only even positions (from a block's start)
	// are looked up: a window's lanes of one parity then decide.
	stride int
	// shm[k] keeps bytes 2k+2 to 2k+9 of 16 (fdr2AVX512 loads a word
	// shifted up by 2k+2 bytes from that many bytes before it).
	shm [3][16]byte
}

// fdr is the compiled FDR prefilter.
type fdr struct {
	args  fdrArgs
	tab   []uint64
	start uint64    // the lanes of positions 0-7 no window can end at (it would start before 0)
	grams gramTable // last 3 bytes of a window -> bucket+1 of m.lists (cand.d: the gram's offset in the trigger)
}

// fdrLit is a trigger's window.
type fdrLit struct {
	e      uint32 // entry
	s, w   int    // window: trig[s:s+w]
	nocase bool
	next   int // the trigger's byte after the window, -1 if none
	trig   []byte
}

// fdrWindow picks the window of at most 8 bytes of t whose bytes are least
// common (byteWeight), the first of equals.
func fdrWindow(t []byte, nocase bool) (int, int) {
	w := min(len(t), 8)
	best, bw := 0, math.Inf(1)
	for s := 0; s+w <= len(t); s++ {
		c := 0.0
		for _, b := range t[s : s+w] {
			c += math.Log(float64(byteWeight(b, nocase)))
		}
		if c < bw {
			best, bw = s, c
		}
	}
	return best, w
}

// fdrBuckets splits lits (sorted by window length) into at most 8
// contiguous runs minimising Hyperscan's cost, count^1.05 / minlen^3 per
// bucket, and returns each literal's bucket.
func fdrBuckets(lits []fdrLit) []int {
	n := len(lits)
	// Boundaries at length changes and every step literals, so that the
	// search stays small for large sets.
	step := max(1, n/256)
	var cuts []int // candidate run starts
	for i := 0; i < n; i++ {
		if i == 0 || lits[i].w != lits[i-1].w || i%step == 0 {
			cuts = append(cuts, i)
		}
	}
	cuts = append(cuts, n)
	k := len(cuts)
	cost := func(a, b int) float64 { // lits[cuts[a]:cuts[b]]
		cnt := float64(cuts[b] - cuts[a])
		l := float64(lits[cuts[a]].w)
		return math.Pow(cnt, 1.05) / (l * l * l)
	}
	const nb = 8
	inf := math.Inf(1)
	// best[j][b]: least cost of cuts[0:j] in b buckets.
	best := make([][nb + 1]float64, k)
	from := make([][nb + 1]int, k)
	for j := range best {
		for b := range best[j] {
			best[j][b] = inf
		}
	}
	best[0][0] = 0
	for j := 1; j < k; j++ {
		for b := 1; b <= nb; b++ {
			for a := 0; a < j; a++ {
				if best[a][b-1] == inf {
					continue
				}
				if c := best[a][b-1] + cost(a, j); c < best[j][b] {
					best[j][b], from[j][b] = c, a
				}
			}
		}
	}
	bb := 1
	for b := 1; b <= nb; b++ {
		if best[k-1][b] < best[k-1][bb] {
			bb = b
		}
	}
	out := make([]int, n)
	for j, b := k-1, bb; j > 0; j, b = from[j][b], b-1 {
		for i := cuts[from[j][b]]; i < cuts[j]; i++ {
			out[i] = b - 1
		}
	}
	return out
}

// byteVariants lists a byte and, when nocase and a letter, its other case.
func byteVariants(b byte, nocase bool) []byte {
	if nocase && (b|0x20) >= 'a' && (b|0x20) <= 'z' {
		return []byte{b | 0x20, b &^ 0x20}
	}
	return []byte{b}
}

// newFDR builds the prefilter for entries idx of ents (triggers of at
// least 3 bytes); it appends the confirm lists to m.lists.
func newFDR(m *matcher, idx []uint32) *fdr {
	ents := m.ents
	lits := make([]fdrLit, 0, len(idx))
	for _, ei := range idx {
		e := &ents[ei]
		s, w := fdrWindow(e.trig, e.nocase)
		l := fdrLit{e: ei, s: s, w: w, nocase: e.nocase, next: -1, trig: e.trig}
		if s+w < len(e.trig) {
			l.next = int(e.trig[s+w])
		}
		lits = append(lits, l)
	}
	slices.SortStableFunc(lits, func(a, b fdrLit) int { return a.w - b.w })
	bucket := fdrBuckets(lits)

	// Two words of padding on either side for fdr2AVX512's shifted loads.
	mem := make([]uint64, 1<<fdrDomain+4)
	f := &fdr{tab: mem[2 : 2+1<<fdrDomain]}
	for i := range f.tab {
		f.tab[i] = ^uint64(0)
	}
	var minW [8]int
	for b := range minW {
		minW[b] = 9
	}
	for i, l := range lits {
		minW[bucket[i]] = min(minW[bucket[i]], l.w)
	}
	const hiBits = 1<<(fdrDomain-8) - 1
	for i, l := range lits {
		b := bucket[i]
		win := l.trig[l.s : l.s+l.w]
		for k := 0; k < minW[b]; k++ {
			bit := uint64(1) << (8*k + b)
			b0 := byteVariants(win[l.w-1-k], l.nocase)
			var b1 []int // values of the second byte's domain bits
			switch {
			case k > 0:
				for _, v := range byteVariants(win[l.w-k], l.nocase) {
					b1 = append(b1, int(v)&hiBits)
				}
			case l.next >= 0:
				for _, v := range byteVariants(byte(l.next), l.nocase) {
					b1 = append(b1, int(v)&hiBits)
				}
			default:
				for v := 0; v <= hiBits; v++ {
					b1 = append(b1, v)
				}
			}
			for _, x := range b0 {
				for _, y := range b1 {
					f.tab[int(x)|y<<8] &^= bit
				}
			}
		}
	}
	// Lanes beyond a bucket's shortest window do not constrain it.
	var free uint64
	for b, w := range minW {
		for k := w; k < 8; k++ {
			free |= 1 << (8*k + b)
		}
		// Its windows cannot end before position w-1.
		for e := 0; e < w-1 && e < 8; e++ {
			f.start |= 1 << (8*e + b)
		}
	}
	for i := range f.tab {
		f.tab[i] &^= free
	}
	f.args = fdrArgs{tab: unsafe.Pointer(unsafe.SliceData(f.tab)), nmask: ^uint32(1<<fdrDomain - 1), stride: 1}
	for k := range f.args.shm {
		for j := 2*k + 2; j < 2*k+10; j++ {
			f.args.shm[k][j] = 0xFF
		}
	}
	if f.passRate(2) <= fdrStride2Rate {
		f.args.stride = 2
	}

	// Confirm lists: the last gram of each window.
	byGram := map[uint32][]uint64{} // gram -> entry<<32 | gram offset in the trigger
	for _, l := range lits {
		d := l.s + l.w - 3
		for _, g := range variants(l.trig[d:d+3], l.nocase) {
			x := gram3(g)
			byGram[x] = append(byGram[x], uint64(l.e)<<32|uint64(d))
		}
	}
	f.grams = newGramTable(len(byGram))
	for _, x := range sortedKeys32d(byGram) {
		for _, v := range byGram[x] {
			c := newCand(ents, uint32(v>>32)<<1)
			c.d = uint32(v)
			m.lists = append(m.lists, c)
		}
		m.bidx = append(m.bidx, uint32(len(m.lists)))
		f.grams.put(x, uint32(len(m.bidx)-1))
	}
	return f
}

// fdrStride2Rate is the largest share of random positions the filter may
// pass with stride 2: a candidate costs about 100 times what stride 2 saves
// per position.
const fdrStride2Rate = 0.002

// passRate estimates the share of positions of random bytes the filter
// passes with the given stride (1 or 2): per bucket, the product of its
// lanes' densities over the lanes of one parity.
func (f *fdr) passRate(stride int) float64 {
	var dens [64]float64
	for _, v := range f.tab {
		for b := 0; b < 64; b++ {
			if v&(1<<b) == 0 {
				dens[b]++
			}
		}
	}
	tot := 0.0
	for par := 0; par < stride; par++ {
		for b := 0; b < 8; b++ {
			pr := 1.0
			for k := par; k < 8; k += stride {
				pr *= dens[8*k+b] / float64(len(f.tab))
			}
			tot += pr / float64(stride)
		}
	}
	return tot
}

// fdrGo is the portable fdrAVX: the positions from i on, 16 per block
// while i+fdrRead <= n and out has room for 16, where some bucket may
// end; *st carries the lanes of the next block's first 8 positions.
func fdrGo(f *fdrArgs, p unsafe.Pointer, n, i int, st *uint64, out *[fdrOut]uint32) (int, int) {
	cnt := 0
	carry := *st
	mask := ^f.nmask
	for ; i+fdrRead <= n && cnt <= fdrOut-16; i += 16 {
		for h := 0; h < 16; h += 8 {
			b := i + h
			lo, hi := carry, uint64(0)
			for j := 0; j < 8; j += f.stride {
				x := uint32(*(*uint16)(unsafe.Add(p, b+j))) & mask
				r := *(*uint64)(unsafe.Add(f.tab, uintptr(x)*8))
				lo |= r << (8 * j)
				hi |= r >> (64 - 8*j) // 0 for j == 0
			}
			carry = hi
			for conf := ^lo; conf != 0; {
				l := bits.TrailingZeros64(conf) >> 3
				out[cnt] = uint32(b + l)
				cnt++
				conf &^= 0xFF << (8 * l)
			}
		}
	}
	*st = carry
	return i, cnt
}

// scanFDR finds every occurrence of the FDR's triggers that lies wholly
// inside p.
func (m *matcher) scanFDR(c *Counts, p []byte, off uint64, prevNL bool) {
	f := m.fdr
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	var out [fdrOut]uint32
	st := f.start
	// The last block reads up to 18 bytes past the payload: bytes read
	// only as the byte after a window that ends the payload, which the
	// table does not look at, or for positions past it, which are
	// dropped. They are read in place when the reads stay inside the
	// memory page of the payload's last byte (as Go's own bytealg reads
	// ahead), else the last positions come from a copy padded with zeros.
	nk := n
	if e := (n-1)&^15 + fdrRead; n > 0 && e > n {
		last := uintptr(base) + uintptr(n-1)
		if last/fdrPage == (last+uintptr(e-n))/fdrPage {
			nk = e
		}
	}
	i := 0
	for i+fdrRead <= nk {
		next, cnt := fdrScan(&f.args, base, nk, i, &st, &out)
		for _, q := range out[:cnt] {
			if int(q) < n {
				m.verifyEnd(c, p, int(q), off, prevNL)
			}
		}
		i = next
	}
	if i >= n {
		return
	}
	var buf [48]byte
	copy(buf[:], p[i:])
	bn := fdrRead
	if n-i > 16 {
		bn += 16
	}
	_, cnt := fdrScan(&f.args, unsafe.Pointer(&buf), bn, 0, &st, &out)
	for _, q := range out[:cnt] {
		if q := i + int(q); q < n {
			m.verifyEnd(c, p, q, off, prevNL)
		}
	}
}

// fdrPage is the smallest memory page: reads that stay inside the page
// of a payload's last byte cannot fault.
const fdrPage = 4096

// verifyEnd confirms the windows that may end at p[q].
func (m *matcher) verifyEnd(c *Counts, p []byte, q int, off uint64, prevNL bool) {
	if q < 2 {
		return
	}
	if b := m.fdr.grams.find(gram3(p[q-2:])); b != 0 {
		m.tryList(c, m.lists[m.bidx[b-1]:m.bidx[b]], p, q-2, off, prevNL)
	}
}
