package symptom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

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
	ents []entry
	cs   *automaton // case-sensitive literals (never nil)
	ci   *automaton // case-folded literals (nil if none)

	// 4-byte grams: bitmap, then an exact open-addressing table whose slot
	// holds gram | (bucket+1)<<32; a bucket is lists[bidx[b]:bidx[b+1]].
	bloom  *[bloomWords]uint64
	gkeys  []uint64
	gshift uint32
	gmask  uint32
	// 2-byte triggers (2 and 3 byte patterns) and 1-byte triggers.
	has2  bool
	set2  *[1024]uint64
	tab2  []uint32 // gram -> bucket+1
	has1  bool
	tab1  [256]uint32
	first [256]bool // a 1- or 2-byte trigger starts with this byte
	tail3 []uint32 // 3-byte-trigger entries, tried at an odd len(p)-3
	bidx  []uint32
	lists []uint32
}

func newMatcher(ents []entry) (*matcher, error) {
	m := &matcher{ents: ents, bloom: new([bloomWords]uint64)}
	var csw, ciw []acWord
	anyBOL := false
	buckets := map[uint32][]uint32{} // 3-byte gram -> entry<<1|gram offset
	b2 := map[uint16][]uint32{}
	b1 := map[uint8][]uint32{}
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
		switch n := len(e.trig); {
		case n >= 3:
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
	if anyBOL {
		// Lets Scan tell whether the previous packet ended with '\n'.
		csw = append(csw, acWord{[]byte{'\n'}, -1})
	}
	m.cs = buildAutomaton(csw, false)
	if len(ciw) > 0 {
		m.ci = buildAutomaton(ciw, true)
	}

	m.bidx = []uint32{0}
	addBucket := func(l []uint32) uint32 {
		m.lists = append(m.lists, l...)
		m.bidx = append(m.bidx, uint32(len(m.lists)))
		return uint32(len(m.bidx) - 1) // bucket+1
	}
	size := 16
	for size < 2*len(buckets) {
		size *= 2
	}
	m.gkeys = make([]uint64, size)
	m.gshift = uint32(32 - log2(size))
	m.gmask = uint32(size - 1)
	for _, x := range sortedKeys32(buckets) {
		b := addBucket(buckets[x])
		h := hash3(x)
		// Two bits in one word: bits 14-19 and 8-13 of the hash.
		m.bloom[h>>(bloomShift+6)] |= 1<<(h>>bloomShift&63) | 1<<(h>>8&63)
		j := h >> m.gshift
		for m.gkeys[j] != 0 {
			j = (j + 1) & m.gmask
		}
		m.gkeys[j] = uint64(x) | uint64(b)<<32
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
	return m, nil
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

func sortedKeys32(m map[uint32][]uint32) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Insertion order does not matter for correctness; sort for
	// reproducible tables.
	sortUint32(keys)
	return keys
}

func sortUint32(a []uint32) {
	// Small helper to avoid importing sort/slices generics in a hot file.
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
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
	m.prefilter(c, payload, streamOffset, prevNL)
	st.cs = m.stream(m.cs, s1, c, payload, streamOffset) + 1
	if m.ci != nil {
		st.ci = m.stream(m.ci, s2, c, payload, streamOffset) + 1
	}
	return len(payload)
}

// stream advances automaton a over p from state s. Only matches that
// began in an earlier packet are counted here (the prefilter counts the
// others); once the state no longer reaches back before p, the automaton is
// restarted near the end of p, just far enough to compute the state for the
// next packet.
func (m *matcher) stream(a *automaton, s uint32, c *Counts, p []byte, off uint64) uint32 {
	if a.t16 != nil {
		return walk(m, a, a.t16, s, c, p, off)
	}
	return walk(m, a, a.t32, s, c, p, off)
}

func walk[T uint16 | uint32](m *matcher, a *automaton, trans []T, s uint32, c *Counts, p []byte, off uint64) uint32 {
	n := len(p)
	i := 0
	class, sh := &a.class, a.shift
	for ; i < n && int(a.depth[s]) > i; i++ {
		s = uint32(trans[s<<sh+uint32(class[p[i]])])
		if a.outIdx[s] != a.outIdx[s+1] {
			m.spanning(a, s, c, i, off)
		}
	}
	// The state after p is the longest suffix of the stream that is a
	// state. Restart from the root at the first position of the last
	// maxLen-1 bytes where such a suffix could begin: one whose 3-gram
	// starts a word, or the last two bytes.
	if n-2 > i {
		j := max(n-(a.maxLen-1), 0)
		for ; j < n-2; j++ {
			h := hash3(gram3(p[j:])) >> 16
			if a.starts[h>>6]&(1<<(h&63)) != 0 {
				break
			}
		}
		if j > i {
			s, i = 0, j
		}
	}
	for ; i < n; i++ {
		s = uint32(trans[s<<sh+uint32(class[p[i]])])
	}
	return s
}

// spanning counts the outputs of state s, reached at byte i of the packet,
// that started before the packet.
func (m *matcher) spanning(a *automaton, s uint32, c *Counts, i int, off uint64) {
	for _, ei := range a.outs[a.outIdx[s]:a.outIdx[s+1]] {
		e := &m.ents[ei]
		alen := len(e.trig)
		if e.bol {
			alen++
		}
		astart := int64(off) + int64(i+1) - int64(alen)
		if astart >= int64(off) {
			continue // inside this packet: the prefilter's
		}
		start := astart
		if e.bol {
			start++ // past the '\n' (virtual at stream start)
		}
		if start < 0 {
			continue
		}
		if uint64(start) < e.lo || uint64(start)+uint64(e.length) > e.hi {
			continue
		}
		c.add(e.sym)
	}
}

// prefilter finds every occurrence that lies wholly inside p.
func (m *matcher) prefilter(c *Counts, p []byte, off uint64, prevNL bool) {
	if len(m.gkeys) > 0 {
		m.scan3(c, p, off, prevNL)
		if q := len(p) - 3; q >= 0 && q&1 == 1 {
			for _, ei := range m.tail3 {
				m.try(c, &m.ents[ei], p, q, off, prevNL)
			}
		}
	}
	if m.has2 || m.has1 {
		m.scanShort(c, p, off, prevNL)
	}
}

// scan3 tests the 3-byte gram at every even position against the bitmap.
func (m *matcher) scan3(c *Counts, p []byte, off uint64, prevNL bool) {
	bloom := m.bloom
	n := len(p)
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
			m.verify3(c, p, i, off, prevNL)
		}
		if w := bloom[h1>>(bloomShift+6)]; w&(1<<(h1>>bloomShift&63)) != 0 && w&(1<<(h1>>8&63)) != 0 {
			m.verify3(c, p, i+2, off, prevNL)
		}
		if w := bloom[h2>>(bloomShift+6)]; w&(1<<(h2>>bloomShift&63)) != 0 && w&(1<<(h2>>8&63)) != 0 {
			m.verify3(c, p, i+4, off, prevNL)
		}
	}
	for ; i+3 <= n; i += 2 {
		h := hash3(gram3(p[i:]))
		if w := bloom[h>>(bloomShift+6)]; w&(1<<(h>>bloomShift&63)) != 0 && w&(1<<(h>>8&63)) != 0 {
			m.verify3(c, p, i, off, prevNL)
		}
	}
}

func (m *matcher) verify3(c *Counts, p []byte, i int, off uint64, prevNL bool) {
	x := gram3(p[i:])
	j := hash3(x) >> m.gshift
	for {
		k := m.gkeys[j]
		if k == 0 {
			return
		}
		if uint32(k) == x {
			b := k >> 32
			m.tryList(c, m.lists[m.bidx[b-1]:m.bidx[b]], p, i, off, prevNL)
			return
		}
		j = (j + 1) & m.gmask
	}
}

// tryList tries the entries of a bucket; each is entry<<1|d where d is the
// position of the gram in the trigger.
func (m *matcher) tryList(c *Counts, l []uint32, p []byte, i int, off uint64, prevNL bool) {
	for _, v := range l {
		q := i - int(v&1)
		if q >= 0 {
			m.try(c, &m.ents[v>>1], p, q, off, prevNL)
		}
	}
}

// scanShort finds 1- and 2-byte triggers; first marks the bytes they start
// with, so most positions cost one table load.
func (m *matcher) scanShort(c *Counts, p []byte, off uint64, prevNL bool) {
	first := &m.first
	for i, b := range p {
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
