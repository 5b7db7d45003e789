package symptom

// automaton is an Aho-Corasick automaton compiled into a dense DFA over
// byte classes. It is used only at packet boundaries (see scan.go), so its
// size matters more than its speed; rows near the root stay in cache.
type automaton struct {
	class  [256]uint8 // byte -> class; case-folding automata fold here
	nc     uint32     // number of classes
	shift  uint32     // rows are 1<<shift entries (nc rounded up to a power of 2)
	trans  []uint32   // state<<shift + class -> next state<<shift (built)
	t16    []uint16   // the same as state ids when they fit 16 bits
	t32    []uint32   // the same as state ids otherwise
	depth  []uint16   // length of the string a state stands for
	nl     []bool     // the state's string ends with '\n'
	outIdx []uint32   // outputs of state s: outs[outIdx[s]:outIdx[s+1]]
	outs   []uint32   // entry indices
	start  uint32     // state at stream start (after a virtual '\n')
	// starts has a bit for the first 3 bytes (raw case variants) of every
	// word: a suffix of the stream that is a state of depth >= 3 begins at
	// a position whose 3-gram is in it.
	starts *[1024]uint64
	maxLen int // longest pattern string
	// startStep[b] is the state after byte b from start, with startSlow
	// set when that state reaches back further than b or has outputs
	// (head must run); most packets of a fresh direction need no more.
	startStep *[256]uint32
}

const startSlow = 1 << 31

// maxT16States is the largest automaton with 16-bit tables (a variable so
// tests can exercise the 32-bit ones).
var maxT16States = 1 << 16

type acWord struct {
	s     []byte // already folded for a folding automaton
	entry int32  // -1: no output (structural only)
}

type trieEdge struct {
	c    uint8
	next uint32
}

func buildAutomaton(words []acWord, fold bool) *automaton {
	a := &automaton{}
	// Byte classes: every byte used in a word gets its own class (its
	// folded partner shares it); all other bytes share class 0.
	var used [256]bool
	for _, w := range words {
		for _, c := range w.s {
			used[c] = true
		}
	}
	nc := uint32(1)
	var cls [256]uint8
	for c := 0; c < 256; c++ {
		if used[c] {
			cls[c] = uint8(nc)
			nc++
		}
	}
	if nc > 256 { // all 256 bytes used: no spare class needed
		nc = 0
		for c := 0; c < 256; c++ {
			cls[c] = uint8(nc)
			nc++
		}
	}
	for c := 0; c < 256; c++ {
		b := byte(c)
		if fold {
			b = foldByte(b)
		}
		a.class[c] = cls[b]
	}
	a.nc = nc

	// Trie.
	kids := [][]trieEdge{nil}
	depth := []uint16{0}
	last := []byte{0}
	own := [][]uint32{nil}
	for _, w := range words {
		s := uint32(0)
		for _, c := range w.s {
			k := a.class[c]
			next := uint32(0)
			for _, e := range kids[s] {
				if e.c == k {
					next = e.next
					break
				}
			}
			if next == 0 {
				next = uint32(len(kids))
				kids = append(kids, nil)
				depth = append(depth, depth[s]+1)
				last = append(last, c)
				own = append(own, nil)
				kids[s] = append(kids[s], trieEdge{k, next})
			}
			s = next
		}
		if len(w.s) > a.maxLen {
			a.maxLen = len(w.s)
		}
		if w.entry >= 0 {
			own[s] = append(own[s], uint32(w.entry))
		}
	}
	n := uint32(len(kids))
	for 1<<a.shift < nc {
		a.shift++
	}
	a.trans = make([]uint32, int(n)<<a.shift)
	a.depth = depth
	a.nl = make([]bool, n)
	for s := range a.nl {
		a.nl[s] = depth[s] > 0 && last[s] == '\n'
	}
	fail := make([]uint32, n)
	outs := make([][]uint32, n)
	queue := make([]uint32, 0, n)
	sh := a.shift
	for _, e := range kids[0] {
		a.trans[e.c] = e.next << sh
		queue = append(queue, e.next)
	}
	for q := 0; q < len(queue); q++ {
		s := queue[q]
		f := fail[s]
		outs[s] = append(append([]uint32(nil), own[s]...), outs[f]...)
		row := a.trans[s<<sh : s<<sh+nc]
		copy(row, a.trans[f<<sh:f<<sh+nc])
		for _, e := range kids[s] {
			row[e.c] = e.next << sh
			fail[e.next] = a.trans[f<<sh+uint32(e.c)] >> sh
			queue = append(queue, e.next)
		}
	}
	a.outIdx = make([]uint32, n+1)
	total := 0
	for s := uint32(0); s < n; s++ {
		a.outIdx[s] = uint32(total)
		total += len(outs[s])
	}
	a.outIdx[n] = uint32(total)
	a.outs = make([]uint32, 0, total)
	for s := uint32(0); s < n; s++ {
		a.outs = append(a.outs, outs[s]...)
	}
	a.start = a.trans[uint32(a.class['\n'])] >> sh
	if int(n) <= maxT16States {
		a.t16 = make([]uint16, len(a.trans))
		for i, v := range a.trans {
			a.t16[i] = uint16(v >> sh)
		}
	} else {
		a.t32 = make([]uint32, len(a.trans))
		for i, v := range a.trans {
			a.t32[i] = v >> sh
		}
	}
	a.startStep = new([256]uint32)
	for c := 0; c < 256; c++ {
		v := a.trans[a.start<<sh+uint32(a.class[c])] >> sh
		if a.depth[v] > 1 || a.outIdx[v] != a.outIdx[v+1] {
			v |= startSlow
		}
		a.startStep[c] = v
	}
	a.trans = nil
	a.starts = new([1024]uint64)
	for _, w := range words {
		if len(w.s) < 3 {
			continue
		}
		for _, g := range variants(w.s[:3], fold) {
			h := hash3(gram3(g)) >> 16
			a.starts[h>>6] |= 1 << (h & 63)
		}
	}
	return a
}

func (a *automaton) states() int { return len(a.depth) }

func foldByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
