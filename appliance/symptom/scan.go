package symptom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unsafe"
)

// maxAnchoredSpan is the widest window tried position by position.
const maxAnchoredSpan = 64

// The prefilter's gram bitmap has a fixed size so that the hot loop indexes
// a fixed-size array without bounds checks: 2^bloomBits bits (32 KiB).
const (
	bloomBits  = 18
	bloomShift = 32 - bloomBits
	bloomWords = 1 << (bloomBits - 6)
	hashMul    = 0x9E3779B1
	hashMul8   = hashMul << 8 & 0xFFFFFFFF // hash3 in one multiply
)

type matcher struct {
	ents   []entry
	cs     *automaton    // case-sensitive literals (never nil)
	ci     *automaton    // case-folded literals (nil if none)
	starts *[1024]uint64 // union of cs.starts and ci.starts

	// 3-byte grams: bitmap, then an exact open-addressing table whose slot
	// holds gram | (bucket+1)<<32; a bucket is lists[bidx[b]:bidx[b+1]].
	bloom   *[bloomWords]uint64
	grams   gramTable
	has3    bool // some trigger of 3 or more bytes
	maxWord int  // longest automaton word
	// 2-byte and 1-byte triggers.
	has2       bool
	set2       *[1024]uint64
	tab2       []uint32 // gram -> bucket+1
	has1       bool
	tab1       [256]uint32
	first      [256]bool // a 1- or 2-byte trigger starts with this byte
	firstBytes []byte    // the bytes marked in first
	tail3      []uint32  // 3-byte-trigger entries, tried at an odd len(p)-3
	// Entries with a small window (start anchors, offset/depth) are tried
	// at each start position of their window instead of by trigger. Those
	// with a single start position are pinned: grouped by the stream
	// position of their trigger's first byte and looked up by that byte.
	anchored  []uint32
	pinned    []pinGroup
	anchorEnd uint64 // the largest window end
	bidx      []uint32
	lists     []cand
	// Vectorised prefilters (simd.go), when haveSIMD: the Teddy filter
	// over one gram of each trigger (rareGram) with its exact table of those
	// grams; from stream offset farFrom on, teddyFar, without the grams
	// of triggers whose window has ended. And the search for the bytes
	// 1- and 2-byte triggers start with (at most four): firstC with
	// their companion bytes, firstP without (for the last firstDist
	// bytes of a payload).
	teddy, teddyFar *teddyMasks
	teddyStart      *teddyMasks // the automata's first grams (restartTeddy)
	farFrom         uint64
	grams0          gramTable // the Teddy path's chosen trigger grams
	firstC, firstP  *firstMasks
	firstDist       int
	simdFirst       bool
	// The FDR prefilter (fdr.go) for databases with more than
	// teddyMaxGrams trigger grams, instead of the bitmap.
	fdr *fdr
	// With FDR: start2[x] is the length of the longest word that begins
	// with the two bytes x (restartBloom's first test: a word begun d
	// bytes before the end of a packet matters only if it has d bytes or
	// more; one of d bytes ending the packet is kept, so that the state
	// is the same as the other paths'),
	// and last2[x] holds both automata's
	// states (cs | ci<<16) after the two bytes x from the root: the end
	// state of most packets, with no word begun in their last bytes
	// (nil unless both automata have 16-bit tables).
	start2 *[1 << 16]uint8
	last2  []uint32
}

// pinGroup holds the pinned entries whose trigger begins at stream
// position pos: those starting with byte b are ents[idx[b]:idx[b+1]].
type pinGroup struct {
	pos  uint64
	idx  [257]uint16
	ents []uint32
	// cands[j] is ents[j] as a candidate (its trigger's first 8
	// bytes): most pinned entries tried fail on those, which one load
	// and compare tells without calling try.
	cands []cand
}

// cand is a bucket member: entry e whose trigger has the bucket's gram at
// offset d. word and mask hold the trigger's first 8 bytes (letters without
// their case bit when nocase) for a quick check before try. A literal of at
// most 16 bytes that may lie anywhere has fast set (candLit, with candBOL
// when line-anchored, candLong when longer than 8 bytes: word2 and mask2
// hold bytes 8-15): the quick checks are all of try's and its symptom sym
// is counted without reading the entry.
type cand struct {
	e, d         uint32
	sym          uint16
	fast         uint8
	word, mask   uint64
	word2, mask2 uint64
}

const (
	candLit = 1 << iota
	candBOL
	candLong
)

func newCand(ents []entry, v uint32) cand {
	e := &ents[v>>1]
	c := cand{e: v >> 1, d: v & 1}
	for k := 0; k < 8 && k < len(e.trig); k++ {
		b, mk := e.trig[k], byte(0xFF)
		if e.nocase && b >= 'a' && b <= 'z' {
			b, mk = b&0xDF, 0xDF
		}
		c.word |= uint64(b) << (8 * k)
		c.mask |= uint64(mk) << (8 * k)
	}
	if e.kind == KindLiteral && len(e.trig) <= 16 && e.toff == 0 && e.length == len(e.trig) &&
		e.lo == 0 && e.hi == ^uint64(0) {
		c.sym, c.fast = e.sym, candLit
		if e.bol {
			c.fast |= candBOL
		}
		if len(e.trig) > 8 {
			c.fast |= candLong
			for k := 8; k < len(e.trig); k++ {
				b, mk := e.trig[k], byte(0xFF)
				if e.nocase && b >= 'a' && b <= 'z' {
					b, mk = b&0xDF, 0xDF
				}
				c.word2 |= uint64(b) << (8 * (k - 8))
				c.mask2 |= uint64(mk) << (8 * (k - 8))
			}
		}
	}
	return c
}

func newMatcher(ents []entry) (*matcher, error) {
	m := &matcher{ents: ents, bloom: new([bloomWords]uint64)}
	var csw, ciw []acWord
	anyBOL := false
	buckets := map[uint32][]uint32{} // 3-byte gram -> entry<<1|gram offset
	b2 := map[uint16][]uint32{}
	b1 := map[uint8][]uint32{}
	pins := map[uint64][]uint32{} // trigger position -> pinned entries
	l0 := map[uint32][]uint64{}   // Teddy gram -> entry<<32 | its offset in the trigger
	var long []uint32             // entries with triggers of 3 or more bytes
	for i := range ents {
		e := &ents[i]
		if len(e.trig) == 0 {
			return nil, errors.New("empty trigger")
		}
		if e.bol {
			anyBOL = true
		}
		if e.kind == KindLiteral {
			w := e.trig
			if e.bol {
				w = append([]byte{'\n'}, w...)
			}
			if e.nocase {
				ciw = append(ciw, acWord{w, int32(i)})
			} else {
				csw = append(csw, acWord{w, int32(i)})
			}
		}
		if e.hi != ^uint64(0) && (e.hi-e.lo <= maxAnchoredSpan || e.hi-e.lo == uint64(e.length)) {
			// Tried only where the window lies: no trigger needed.
			if e.hi-e.lo == uint64(e.length) {
				pins[e.lo+uint64(e.toff)] = append(pins[e.lo+uint64(e.toff)], uint32(i))
			} else {
				m.anchored = append(m.anchored, uint32(i))
			}
			m.anchorEnd = max(m.anchorEnd, e.hi)
			continue
		}
		switch n := len(e.trig); {
		case n >= 3:
			long = append(long, uint32(i))
			// For the Teddy path: the trigger's least common gram.
			d := rareGram(e.trig, e.nocase)
			for _, g := range variants(e.trig[d:d+3], e.nocase) {
				x := gram3(g)
				if l := l0[x]; len(l) == 0 || l[len(l)-1] != uint64(i)<<32|uint64(d) {
					l0[x] = append(l, uint64(i)<<32|uint64(d))
				}
			}
			// Grams at trigger offsets 0 and 1, so the scan loop can test
			// every other position. A 3-byte trigger's offset-1 gram is
			// completed with every possible next byte; such a trigger at
			// an odd position ending the packet is left to tail3.
			for _, g := range variants(e.trig[:3], e.nocase) {
				x := gram3(g)
				buckets[x] = appendOnce(buckets[x], uint32(i)<<1)
			}
			if n == 3 {
				m.tail3 = append(m.tail3, uint32(i))
				for _, g := range variants(e.trig[1:3], e.nocase) {
					for x := 0; x < 256; x++ {
						k := gram3(append(g[:2:2], byte(x)))
						buckets[k] = appendOnce(buckets[k], uint32(i)<<1|1)
					}
				}
			} else {
				for _, g := range variants(e.trig[1:4], e.nocase) {
					x := gram3(g)
					buckets[x] = appendOnce(buckets[x], uint32(i)<<1|1)
				}
			}
		case n == 2:
			m.has2 = true
			for _, g := range variants(e.trig[:2], e.nocase) {
				x := binary.LittleEndian.Uint16(g)
				b2[x] = appendOnce(b2[x], uint32(i)<<1)
			}
		default:
			m.has1 = true
			for _, g := range variants(e.trig[:1], e.nocase) {
				b1[g[0]] = appendOnce(b1[g[0]], uint32(i)<<1)
			}
		}
	}
	m.pinned = pinGroups(ents, pins)
	if anyBOL {
		// Lets Scan tell whether the previous packet ended with '\n'.
		csw = append(csw, acWord{[]byte{'\n'}, -1})
	}
	m.cs = buildAutomaton(csw, false)
	m.starts = m.cs.starts
	if len(ciw) > 0 {
		m.ci = buildAutomaton(ciw, true)
		m.starts = new([1024]uint64)
		for i := range m.starts {
			m.starts[i] = m.cs.starts[i] | m.ci.starts[i]
		}
	}

	m.bidx = []uint32{0}
	addBucket := func(l []uint32) uint32 {
		for _, v := range l {
			m.lists = append(m.lists, newCand(ents, v))
		}
		m.bidx = append(m.bidx, uint32(len(m.lists)))
		return uint32(len(m.bidx) - 1) // bucket+1
	}
	m.grams = newGramTable(len(buckets))
	m.has3 = len(buckets) > 0
	if m.has3 {
		// The first 3-gram of every automaton word, so that scan3's hits
		// also say where a word may begin (see prefilter).
		for k, ws := range [][]acWord{csw, ciw} {
			for _, w := range ws {
				m.maxWord = max(m.maxWord, len(w.s))
				if len(w.s) >= 3 {
					for _, g := range variants(w.s[:3], k == 1) {
						h := hash3(gram3(g))
						m.bloom[h>>(bloomShift+6)] |= 1<<(h>>bloomShift&63) | 1<<(h>>8&63)
					}
				}
			}
		}
	}
	if haveSIMD && m.has3 && len(l0) > fdrMinGrams {
		m.fdr = newFDR(m, long)
		m.start2 = new([1 << 16]uint8)
		for k, ws := range [][]acWord{csw, ciw} {
			for _, w := range ws {
				if len(w.s) >= 3 {
					for _, g := range variants(w.s[:2], k == 1) {
						x := uint16(g[0]) | uint16(g[1])<<8
						m.start2[x] = uint8(max(int(m.start2[x]), min(len(w.s), 255)))
					}
				}
			}
		}
		if m.cs.t16 != nil && (m.ci == nil || m.ci.t16 != nil) {
			m.last2 = make([]uint32, 1<<16)
			for x := range m.last2 {
				b := []byte{byte(x), byte(x >> 8)}
				v := tail(m.cs, m.cs.t16, 0, 0, 0, b)
				if m.ci != nil {
					v |= tail(m.ci, m.ci.t16, 0, 0, 0, b) << 16
				}
				m.last2[x] = v
			}
		}
	}
	if haveSIMD && m.has3 && len(l0) <= teddyMaxGrams {
		b0 := map[uint32]uint32{} // gram -> bucket+1
		for _, x := range sortedKeys32d(l0) {
			for _, v := range l0[x] {
				c := newCand(ents, uint32(v>>32)<<1)
				c.d = uint32(v)
				m.lists = append(m.lists, c)
			}
			m.bidx = append(m.bidx, uint32(len(m.lists)))
			b0[x] = uint32(len(m.bidx) - 1)
		}
		var far []uint32
		for _, x := range sortedKeys32d(l0) {
			bounded := true
			for _, v := range l0[x] {
				if e := &ents[v>>32]; e.hi == ^uint64(0) {
					bounded = false
				} else {
					m.farFrom = max(m.farFrom, e.hi)
				}
			}
			if !bounded {
				far = append(far, x)
			}
		}
		m.teddy = newTeddy(sortedKeys32d(l0))
		var wg []uint32 // first grams of the automata's words
		for k, ws := range [][]acWord{csw, ciw} {
			for _, w := range ws {
				if len(w.s) >= 3 {
					for _, g := range variants(w.s[:3], k == 1) {
						wg = append(wg, gram3(g))
					}
				}
			}
		}
		if len(wg) > 0 && len(wg) <= teddyMaxGrams {
			m.teddyStart = newTeddy(wg)
		}
		m.teddyFar = m.teddy
		if len(far) < len(l0) {
			m.teddyFar = newTeddy(far)
		} else {
			m.farFrom = ^uint64(0)
		}
		m.grams0 = newGramTable(len(b0))
		for _, x := range sortedKeys32u(b0) {
			m.grams0.put(x, b0[x])
		}
	}
	for _, x := range sortedKeys32(buckets) {
		b := addBucket(buckets[x])
		h := hash3(x)
		// Two bits in one word: bits 14-19 and 8-13 of the hash.
		m.bloom[h>>(bloomShift+6)] |= 1<<(h>>bloomShift&63) | 1<<(h>>8&63)
		m.grams.put(x, b)
	}
	if m.has2 {
		m.set2 = new([1024]uint64)
		m.tab2 = make([]uint32, 1<<16)
		for x := 0; x < 1<<16; x++ {
			if l, ok := b2[uint16(x)]; ok {
				m.tab2[x] = addBucket(l)
				m.set2[x>>6] |= 1 << (x & 63)
				m.first[x&0xFF] = true
			}
		}
	}
	for x := 0; x < 256; x++ {
		if l, ok := b1[uint8(x)]; ok {
			m.tab1[x] = addBucket(l)
			m.first[x] = true
		}
	}
	for x := 0; x < 256; x++ {
		if m.first[x] {
			m.firstBytes = append(m.firstBytes, byte(x))
		}
	}
	if k := len(m.firstBytes); haveSIMD && k > 0 && k <= 4 {
		m.simdFirst = true
		var comp [4]companion
		for j, b := range m.firstBytes {
			var l []cand
			if t := m.tab1[b]; t != 0 {
				l = append(l, m.lists[m.bidx[t-1]:m.bidx[t]]...)
			}
			for x := 0; m.has2 && x < 256; x++ {
				if t := m.tab2[uint16(b)|uint16(x)<<8]; t != 0 {
					l = append(l, m.lists[m.bidx[t-1]:m.bidx[t]]...)
				}
			}
			for i, cd := range l {
				cc := shortCompanion(&m.ents[cd.e])
				if i == 0 {
					comp[j] = cc
				} else {
					comp[j] = comp[j].merge(cc)
				}
			}
		}
		m.firstC = newFirstMasks(m.firstBytes, comp)
		m.firstP = newFirstMasks(m.firstBytes, [4]companion{})
		m.firstDist = m.firstC.maxDist()
		if m.firstDist == 0 {
			m.firstC = m.firstP
		}
	}
	return m, nil
}

// pinGroups indexes pinned entries by trigger position and first byte
// (both cases when nocase), keeping entry order within a byte.
func pinGroups(ents []entry, pins map[uint64][]uint32) []pinGroup {
	pos := make([]uint64, 0, len(pins))
	for p := range pins {
		pos = append(pos, p)
	}
	slices.Sort(pos)
	out := make([]pinGroup, len(pos))
	for k, p := range pos {
		g := &out[k]
		g.pos = p
		var by [256][]uint32
		for _, ei := range pins[p] {
			b := ents[ei].trig[0]
			by[b] = append(by[b], ei)
			if ents[ei].nocase && b >= 'a' && b <= 'z' {
				by[b-'a'+'A'] = append(by[b-'a'+'A'], ei)
			}
		}
		for b := range by {
			g.idx[b] = uint16(len(g.ents))
			g.ents = append(g.ents, by[b]...)
		}
		g.idx[256] = uint16(len(g.ents))
		for _, ei := range g.ents {
			g.cands = append(g.cands, newCand(ents, ei<<1))
		}
	}
	return out
}

func gram3(g []byte) uint32 { return uint32(g[0]) | uint32(g[1])<<8 | uint32(g[2])<<16 }

// hash3 hashes the low 3 bytes of v: the product's bits 0-23 depend only on
// them, and the shift drops the rest.
func hash3(v uint32) uint32 { return v * hashMul8 }

func appendOnce(l []uint32, v uint32) []uint32 {
	if len(l) > 0 && l[len(l)-1] == v {
		return l
	}
	return append(l, v)
}

func log2(n int) int {
	l := 0
	for 1<<l < n {
		l++
	}
	return l
}

func sortedKeys32d(m map[uint32][]uint64) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys32u(m map[uint32]uint32) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys32(m map[uint32][]uint32) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // reproducible tables
	return keys
}

// variants returns every case variant of a folded gram (just g when
// case-sensitive).
func variants(g []byte, nocase bool) [][]byte {
	out := [][]byte{append([]byte(nil), g...)}
	if !nocase {
		return out
	}
	for i, c := range g {
		if c < 'a' || c > 'z' {
			continue
		}
		n := len(out)
		for k := 0; k < n; k++ {
			v := append([]byte(nil), out[k]...)
			v[i] = c - 'a' + 'A'
			out = append(out, v)
		}
	}
	return out
}

// Scan feeds the next in-order payload bytes of one flow direction;
// streamOffset is the offset of payload[0] in that direction's payload
// (0 for the first byte). It adds one occurrence to c for every pattern
// match that ends in payload, and returns the number of bytes scanned
// (fewer than len(payload) once the scan limit is reached).
// Scan does not retain payload and does not allocate.
func (db *DB) Scan(st *State, c *Counts, payload []byte, streamOffset uint64) int {
	if db.limit > 0 {
		if streamOffset >= db.limit {
			return 0
		}
		if rest := db.limit - streamOffset; uint64(len(payload)) > rest {
			payload = payload[:rest]
		}
	}
	if len(payload) == 0 {
		return 0
	}
	m := db.m
	var s1, s2 uint32
	prevNL := false
	switch {
	case st.cs != 0:
		s1 = st.cs - 1
		prevNL = m.cs.nl[s1]
	case streamOffset == 0:
		s1 = m.cs.start
		prevNL = true
	}
	if m.ci != nil {
		switch {
		case st.ci != 0:
			s2 = st.ci - 1
		case streamOffset == 0 && st.cs == 0:
			s2 = m.ci.start
		}
	}
	r := m.prefilter(c, payload, streamOffset, prevNL, true)
	s1, s2 = m.stream(s1, s2, c, payload, streamOffset, r)
	st.cs = s1 + 1
	if m.ci != nil {
		st.ci = s2 + 1
	}
	return len(payload)
}

// ScanDatagram counts the symptoms in payload scanned as a whole from the
// start of its flow direction, when no state goes on to a next packet (a
// UDP or ICMP datagram, scanned on its own): exactly what Scan counts
// with a zero State and streamOffset 0, without running the boundary
// automata, whose end state only a next packet of the stream would use.
// It returns the number of bytes scanned.
func (db *DB) ScanDatagram(c *Counts, payload []byte) int {
	if db.limit > 0 && uint64(len(payload)) > db.limit {
		payload = payload[:db.limit]
	}
	if len(payload) == 0 {
		return 0
	}
	m := db.m
	m.prefilter(c, payload, 0, true, false)
	// The automata's start state stands for the start of a line: words
	// that take it for their first byte are counted by head, which
	// stops within the longest word; the tail only computes the state.
	if a := m.cs; a.t16 != nil {
		head(m, a, a.t16, a.start, c, payload, 0)
	} else {
		head(m, a, a.t32, a.start, c, payload, 0)
	}
	if b := m.ci; b != nil {
		if b.t16 != nil {
			head(m, b, b.t16, b.start, c, payload, 0)
		} else {
			head(m, b, b.t32, b.start, c, payload, 0)
		}
	}
	return len(payload)
}

// head advances automaton a over p from state s while the state still
// reaches back before p, counting the matches that began in an earlier
// packet (the prefilter counts the others). It returns the state and the
// position reached; from there on the state depends on p alone.
func head[T uint16 | uint32](m *matcher, a *automaton, trans []T, s uint32, c *Counts, p []byte, off uint64) (uint32, int) {
	i := 0
	class, sh := &a.class, a.shift
	for ; i < len(p) && int(a.depth[s]) > i; i++ {
		s = uint32(trans[s<<sh+uint32(class[p[i]])])
		if a.outIdx[s] != a.outIdx[s+1] {
			m.spanning(a, s, c, i, off)
		}
	}
	return s, i
}

// restart returns where the state after p can be computed from: the state
// is the longest suffix of the stream that is a state, so it begins in the
// last maxLen-1 bytes, at a position whose 3-gram starts a word, or in the
// last two bytes.
func restart(starts *[1024]uint64, maxLen int, p []byte) int {
	n := len(p)
	j := max(n-(maxLen-1), 0)
	for ; j < n-2; j++ {
		h := hash3(gram3(p[j:])) >> 16
		if starts[h>>6]&(1<<(h&63)) != 0 {
			break
		}
	}
	return j
}

// tail runs automaton a from state s at p[i:] to the end of p, skipping
// ahead to the restart point j when that lies beyond i.
func tail[T uint16 | uint32](a *automaton, trans []T, s uint32, i, j int, p []byte) uint32 {
	if j > i {
		s, i = 0, j
	}
	class, sh := &a.class, a.shift
	for ; i < len(p); i++ {
		s = uint32(trans[s<<sh+uint32(class[p[i]])])
	}
	return s
}

// tail2 is tail for both automata at once (16-bit tables), so that their
// dependency chains overlap.
func tail2(a, b *automaton, s1 uint32, i1 int, s2 uint32, i2, j int, p []byte) (uint32, uint32) {
	if j > i1 {
		s1, i1 = 0, j
	}
	if j > i2 {
		s2, i2 = 0, j
	}
	for ; i1 < i2; i1++ {
		s1 = uint32(a.t16[s1<<a.shift+uint32(a.class[p[i1]])])
	}
	for ; i2 < i1; i2++ {
		s2 = uint32(b.t16[s2<<b.shift+uint32(b.class[p[i2]])])
	}
	t1, t2, c1, c2, sh1, sh2 := a.t16, b.t16, &a.class, &b.class, a.shift, b.shift
	for i := i1; i < len(p); i++ {
		x := p[i]
		s1 = uint32(t1[s1<<sh1+uint32(c1[x])])
		s2 = uint32(t2[s2<<sh2+uint32(c2[x])])
	}
	return s1, s2
}

// stream advances the boundary automata over p and returns their states
// after it.
func (m *matcher) stream(s1, s2 uint32, c *Counts, p []byte, off uint64, r int) (uint32, uint32) {
	a, b := m.cs, m.ci
	var i1, i2 int
	switch {
	case a.depth[s1] == 0: // the root reaches back nowhere
	case s1 == a.start && a.startStep[p[0]]&startSlow == 0:
		s1, i1 = a.startStep[p[0]], 1
	case a.t16 != nil:
		s1, i1 = head(m, a, a.t16, s1, c, p, off)
	default:
		s1, i1 = head(m, a, a.t32, s1, c, p, off)
	}
	if b == nil {
		j := r
		if j < 0 && len(p)-2 > i1 {
			j = restart(a.starts, a.maxLen, p)
		}
		if j == len(p)-2 && j > i1 && m.last2 != nil {
			return m.last2[uint32(p[j])|uint32(p[j+1])<<8], 0
		}
		if a.t16 != nil {
			return tail(a, a.t16, s1, i1, j, p), 0
		}
		return tail(a, a.t32, s1, i1, j, p), 0
	}
	switch {
	case b.depth[s2] == 0:
	case s2 == b.start && b.startStep[p[0]]&startSlow == 0:
		s2, i2 = b.startStep[p[0]], 1
	case b.t16 != nil:
		s2, i2 = head(m, b, b.t16, s2, c, p, off)
	default:
		s2, i2 = head(m, b, b.t32, s2, c, p, off)
	}
	j := r
	if j < 0 && len(p)-2 > min(i1, i2) {
		j = restart(m.starts, max(a.maxLen, b.maxLen), p)
	}
	if j == len(p)-2 && j > max(i1, i2) && m.last2 != nil {
		v := m.last2[uint32(p[j])|uint32(p[j+1])<<8]
		return v & 0xFFFF, v >> 16
	}
	if a.t16 != nil && b.t16 != nil {
		return tail2(a, b, s1, i1, s2, i2, j, p)
	}
	if a.t16 != nil {
		s1 = tail(a, a.t16, s1, i1, j, p)
	} else {
		s1 = tail(a, a.t32, s1, i1, j, p)
	}
	if b.t16 != nil {
		s2 = tail(b, b.t16, s2, i2, j, p)
	} else {
		s2 = tail(b, b.t32, s2, i2, j, p)
	}
	return s1, s2
}

// spanning counts the outputs of state s, reached at byte i of the packet,
// that started before the packet.
func (m *matcher) spanning(a *automaton, s uint32, c *Counts, i int, off uint64) {
	for _, ei := range a.outs[a.outIdx[s]:a.outIdx[s+1]] {
		e := &m.ents[ei]
		// back counts the pattern's bytes before p. The automaton word of
		// a line-anchored pattern starts one byte earlier, at its '\n'
		// (virtual at the stream start), so it spans already at back 0.
		back := len(e.trig) - (i + 1)
		if back < 0 || (back == 0 && !e.bol) {
			continue // inside this packet: the prefilter's
		}
		if uint64(back) > off {
			continue // would start before the stream
		}
		start := off - uint64(back)
		if start < e.lo || start+uint64(e.length) > e.hi {
			continue
		}
		c.add(e.sym)
	}
}

// prefilter finds every occurrence that lies wholly inside p. With
// restart it returns where the boundary automata may restart near the end
// of p (see restart), or -1 if it cannot tell; without (a datagram, whose
// automata state no next packet reads) it may return -1 regardless.
func (m *matcher) prefilter(c *Counts, p []byte, off uint64, prevNL, restart bool) int {
	if off < m.anchorEnd {
		m.scanAnchored(c, p, off, prevNL)
	}
	r := -1
	if m.fdr != nil {
		m.scanFDR(c, p, off, prevNL)
		if restart {
			r = m.restartBloom(p)
		}
	} else if m.teddy != nil && len(p) >= teddyMin {
		// Every position is tested: no odd tail to look after.
		m.scanTeddy(c, p, off, prevNL)
		if restart && m.teddyStart != nil {
			r = m.restartTeddy(p)
		}
	} else if m.has3 {
		n := len(p)
		first := m.scan3(c, p, off, prevNL, max(n-m.maxWord+1, 0))
		if q := n - 3; q >= 0 && q&1 == 1 {
			for _, ei := range m.tail3 {
				m.try(c, &m.ents[ei], p, q, off, prevNL)
			}
		}
		// Every automaton word's first 3-gram is in the bitmap, and scan3
		// tests even positions with the grams at offsets 0 and 1, so a
		// word beginning at q in [lim, n-4] hits at q or q+1.
		r = max(min(first-1, n-3), 0)
	}
	if m.has2 || m.has1 {
		if m.simdFirst {
			m.scanFirst(c, p, off, prevNL)
		} else {
			m.scanShort(c, p, off, prevNL)
		}
	}
	return r
}

// restartBloom is restart with the bitmap, which holds the first 3-gram
// of every automaton word (two bits each, so it passes fewer positions
// than the automata's starts): the first position in the last maxWord-1
// bytes whose gram may start a word, else the last two bytes.
func (m *matcher) restartBloom(p []byte) int {
	n := len(p)
	j := max(n-(m.maxWord-1), 0)
	bloom := m.bloom
	base := unsafe.Pointer(unsafe.SliceData(p))
	start2 := m.start2
	for ; j+8 <= n; j += 6 {
		// The grams at j..j+5 out of one load; their first two bytes
		// tested first (no word this long begins there: next), written
		// out for the six positions (the loop cost a third more).
		x := load64(base, j)
		d := n - j
		if int(start2[uint16(x)]) >= d && bloomHas(bloom, uint32(x)) {
			return j
		}
		if int(start2[uint16(x>>8)]) >= d-1 && bloomHas(bloom, uint32(x>>8)) {
			return j + 1
		}
		if int(start2[uint16(x>>16)]) >= d-2 && bloomHas(bloom, uint32(x>>16)) {
			return j + 2
		}
		if int(start2[uint16(x>>24)]) >= d-3 && bloomHas(bloom, uint32(x>>24)) {
			return j + 3
		}
		if int(start2[uint16(x>>32)]) >= d-4 && bloomHas(bloom, uint32(x>>32)) {
			return j + 4
		}
		if int(start2[uint16(x>>40)]) >= d-5 && bloomHas(bloom, uint32(x>>40)) {
			return j + 5
		}
	}
	if j < n-2 && n >= 8 {
		// The last positions (fewer than 6) out of the last 8 bytes.
		x := load64(base, n-8) >> (8 * (8 - (n - j)))
		for ; j < n-2; j, x = j+1, x>>8 {
			y := uint32(x)
			if int(start2[uint16(y)]) < n-j {
				continue
			}
			h := y * hashMul8
			if w := bloom[h>>(bloomShift+6)]; w&(1<<(h>>bloomShift&63)) != 0 && w&(1<<(h>>8&63)) != 0 {
				return j
			}
		}
	}
	for ; j < n-2; j++ {
		h := hash3(gram3(p[j:]))
		if w := bloom[h>>(bloomShift+6)]; w&(1<<(h>>bloomShift&63)) != 0 && w&(1<<(h>>8&63)) != 0 {
			break
		}
	}
	return j
}

// bloomHas tests the 3-gram in the low bytes of y against the bitmap.
func bloomHas(bloom *[bloomWords]uint64, y uint32) bool {
	h := y * hashMul8
	w := bloom[h>>(bloomShift+6)]
	return w&(1<<(h>>bloomShift&63)) != 0 && w&(1<<(h>>8&63)) != 0
}

// scan3 tests the 3-byte gram at every even position against the bitmap.
// It returns the first hit at or after lim (len(p) if none), which tells
// the boundary automata where a pattern may begin near the packet's end.
func (m *matcher) scan3(c *Counts, p []byte, off uint64, prevNL bool, lim int) int {
	bloom := m.bloom
	n := len(p)
	first := n
	i := 0
	base := unsafe.Pointer(unsafe.SliceData(p))
	for ; i+8 <= n; i += 6 {
		// Unaligned little-endian load; i+8 <= len(p) (amd64 and arm64
		// allow unaligned loads; see load64 for other targets).
		x := load64(base, i)
		h0 := uint32(x) * hashMul8
		h1 := uint32(x>>16) * hashMul8
		h2 := uint32(x>>32) * hashMul8
		if w := bloom[h0>>(bloomShift+6)]; w&(1<<(h0>>bloomShift&63)) != 0 && w&(1<<(h0>>8&63)) != 0 {
			if i >= lim {
				first = min(first, i)
			}
			m.verify3(c, p, i, off, prevNL)
		}
		if w := bloom[h1>>(bloomShift+6)]; w&(1<<(h1>>bloomShift&63)) != 0 && w&(1<<(h1>>8&63)) != 0 {
			if i+2 >= lim {
				first = min(first, i+2)
			}
			m.verify3(c, p, i+2, off, prevNL)
		}
		if w := bloom[h2>>(bloomShift+6)]; w&(1<<(h2>>bloomShift&63)) != 0 && w&(1<<(h2>>8&63)) != 0 {
			if i+4 >= lim {
				first = min(first, i+4)
			}
			m.verify3(c, p, i+4, off, prevNL)
		}
	}
	for ; i+3 <= n; i += 2 {
		h := hash3(gram3(p[i:]))
		if w := bloom[h>>(bloomShift+6)]; w&(1<<(h>>bloomShift&63)) != 0 && w&(1<<(h>>8&63)) != 0 {
			if i >= lim {
				first = min(first, i)
			}
			m.verify3(c, p, i, off, prevNL)
		}
	}
	return first
}

func (m *matcher) verify3(c *Counts, p []byte, i int, off uint64, prevNL bool) {
	if b := m.grams.find(gram3(p[i:])); b != 0 {
		m.tryList(c, m.lists[m.bidx[b-1]:m.bidx[b]], p, i, off, prevNL)
	}
}

// gramTable is an exact open-addressing table of 3-byte grams: a slot
// holds gram | (bucket+1)<<32, 0 when empty; at most half full.
type gramTable struct {
	keys  []uint64
	shift uint32
	mask  uint32
}

func newGramTable(n int) gramTable {
	size := 16
	for size < 2*n {
		size *= 2
	}
	return gramTable{keys: make([]uint64, size), shift: uint32(32 - log2(size)), mask: uint32(size - 1)}
}

// put adds gram x with bucket b (bucket+1, never 0).
func (t *gramTable) put(x, b uint32) {
	j := hash3(x) >> t.shift
	for t.keys[j] != 0 {
		j = (j + 1) & t.mask
	}
	t.keys[j] = uint64(x) | uint64(b)<<32
}

// find returns gram x's bucket+1, 0 when x is not in the table.
func (t *gramTable) find(x uint32) uint64 {
	j := hash3(x) >> t.shift
	for {
		k := t.keys[j]
		if k == 0 || uint32(k) == x {
			return k >> 32
		}
		j = (j + 1) & t.mask
	}
}

// tryList tries the candidates of a bucket whose gram was found at p[i:].
func (m *matcher) tryList(c *Counts, l []cand, p []byte, i int, off uint64, prevNL bool) {
	for k := range l {
		cd := &l[k]
		q := i - int(cd.d)
		if q < 0 {
			continue
		}
		if q+8 <= len(p) {
			if load64(unsafe.Pointer(unsafe.SliceData(p)), q)&cd.mask != cd.word {
				continue
			}
			if cd.fast != 0 && (cd.fast&candLong == 0 || q+16 <= len(p)) {
				// try's checks for a literal of at most 16 bytes; one
				// anchored at a line start is the automaton's at q 0.
				if cd.fast&candLong != 0 && load64(unsafe.Pointer(unsafe.SliceData(p)), q+8)&cd.mask2 != cd.word2 {
					continue
				}
				if cd.fast&candBOL == 0 || q > 0 && p[q-1] == '\n' {
					c.add(cd.sym)
				}
				continue
			}
		}
		m.try(c, &m.ents[cd.e], p, q, off, prevNL)
	}
}

// scanAnchored tries the small-window entries at every start position
// their window has in p.
func (m *matcher) scanAnchored(c *Counts, p []byte, off uint64, prevNL bool) {
	end := off + uint64(len(p))
	for k := range m.pinned {
		g := &m.pinned[k]
		if g.pos < off {
			continue
		}
		if g.pos >= end {
			break // groups ascend by position
		}
		i := int(g.pos - off)
		b := p[i]
		lo, hi := int(g.idx[b]), int(g.idx[int(b)+1])
		if i+8 <= len(p) {
			w := load64(unsafe.Pointer(unsafe.SliceData(p)), i)
			for j := lo; j < hi; j++ {
				if cd := &g.cands[j]; w&cd.mask == cd.word {
					m.try(c, &m.ents[cd.e], p, i, off, prevNL)
				}
			}
			continue
		}
		for _, ei := range g.ents[lo:hi] {
			m.try(c, &m.ents[ei], p, i, off, prevNL)
		}
	}
	for _, ei := range m.anchored {
		e := &m.ents[ei]
		if e.hi <= off || e.lo >= end {
			continue
		}
		lo := max(e.lo, off)
		hi := min(e.hi-uint64(e.length), end-1) // last start position
		for s := lo; s <= hi; s++ {
			m.try(c, e, p, int(s-off)+e.toff, off, prevNL)
		}
	}
}

// scanShort finds 1- and 2-byte triggers; first marks the bytes they start
// with. With at most 4 such bytes, 8 bytes at a time are tested for them
// (SWAR); otherwise each byte costs one table load.
func (m *matcher) scanShort(c *Counts, p []byte, off uint64, prevNL bool) {
	i := 0
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	if k := len(m.firstBytes); k > 0 && k <= 2 {
		// Two lanes suffice (the default database: 'G' and 0xFF).
		t0, t1 := uint64(m.firstBytes[0])*ones, uint64(m.firstBytes[k-1])*ones
		base := unsafe.Pointer(unsafe.SliceData(p))
		for ; i+8 <= len(p); i += 8 {
			x := load64(base, i)
			v0, v1 := x^t0, x^t1
			if ((v0-ones)&^v0|(v1-ones)&^v1)&highs != 0 {
				m.shortAt(c, p, i, i+8, off, prevNL)
			}
		}
	} else if k > 0 && k <= 4 {
		var t [4]uint64
		for j := range t {
			t[j] = uint64(m.firstBytes[j%k]) * ones
		}
		base := unsafe.Pointer(unsafe.SliceData(p))
		for ; i+8 <= len(p); i += 8 {
			x := load64(base, i)
			v0, v1, v2, v3 := x^t[0], x^t[1], x^t[2], x^t[3]
			z := (v0-ones)&^v0 | (v1-ones)&^v1 | (v2-ones)&^v2 | (v3-ones)&^v3
			if z&highs != 0 {
				m.shortAt(c, p, i, i+8, off, prevNL)
			}
		}
	}
	m.shortAt(c, p, i, len(p), off, prevNL)
}

func (m *matcher) shortAt(c *Counts, p []byte, from, to int, off uint64, prevNL bool) {
	first := &m.first
	for i := from; i < to; i++ {
		b := p[i]
		if !first[b] {
			continue
		}
		if t := m.tab1[b]; t != 0 {
			m.tryList(c, m.lists[m.bidx[t-1]:m.bidx[t]], p, i, off, prevNL)
		}
		if m.has2 && i+1 < len(p) {
			x := uint16(b) | uint16(p[i+1])<<8
			if m.set2[x>>6]&(1<<(x&63)) != 0 {
				t := m.tab2[x]
				m.tryList(c, m.lists[m.bidx[t-1]:m.bidx[t]], p, i, off, prevNL)
			}
		}
	}
}

// try verifies entry e with its trigger at p[i:] and counts it.
func (m *matcher) try(c *Counts, e *entry, p []byte, i int, off uint64, prevNL bool) {
	t := e.trig
	if i+len(t) > len(p) {
		return
	}
	q := p[i : i+len(t)]
	if e.nocase {
		for j, b := range t {
			if foldByte(q[j]) != b {
				return
			}
		}
	} else if string(q) != string(t) {
		return
	}
	start := i - e.toff
	if start < 0 || start+e.length > len(p) {
		return
	}
	abs := off + uint64(start)
	if abs < e.lo || abs+uint64(e.length) > e.hi {
		return
	}
	if e.bol {
		switch {
		case start > 0:
			if p[start-1] != '\n' {
				return
			}
		case e.kind == KindLiteral:
			return // the boundary automaton counts it
		case !prevNL:
			return
		}
	}
	switch e.kind {
	case KindMask:
		v := p[start : start+len(e.value)]
		for j, mk := range e.mask {
			if v[j]&mk != e.value[j]&mk {
				return
			}
		}
	case KindValidate:
		if !e.check(p, start) {
			return
		}
	case KindRegex:
		if !e.re.Match(p[start:]) {
			return
		}
	}
	c.add(e.sym)
}

// String describes an entry (for tests and messages).
func (e *entry) String() string {
	return fmt.Sprintf("sym %d trig %s toff %d kind %d nocase %v bol %v [%d,%d)",
		e.sym, quoteBytes(e.trig), e.toff, e.kind, e.nocase, e.bol, e.lo, e.hi)
}
