package consolidate

import "hash/maphash"

// index maps connection keys to the newest pending connection of each
// key (an index in Consolidator.conns, whose conn holds the key): open
// addressing with linear probing, 8 bytes a slot, at most 3/4 of the
// slots used. A slot holds the low 32 bits of its key's hash (its home
// slot is those bits modulo the table size, so neither growing nor
// removing hashes again, and most probes of other keys end without
// reading their conn) and the connection; 0 is an empty slot. The hash
// is seeded per index: keys come from the network, and a fixed hash
// would let crafted addresses pile up in one cluster.
type index struct {
	seed  maphash.Seed
	slots []uint64
	n     int // used slots
}

func newIndex() index {
	return index{seed: maphash.MakeSeed(), slots: make([]uint64, minIndex)}
}

func (x *index) hash(k *connKey) uint32 {
	return uint32(maphash.Comparable(x.seed, *k))
}

// find returns the slot of key k (hash h) and the newest connection of
// k, or the empty slot where k would go and 0.
func (c *Consolidator) find(k *connKey, h uint32) (int, uint32) {
	slots := c.pending.slots
	mask := uint32(len(slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := slots[i]
		if s == 0 {
			return int(i), 0
		}
		if uint32(s>>32) == h && c.keyIs(c.conns.At(uint32(s)), k) {
			return int(i), uint32(s)
		}
	}
}

// put makes connection ei the newest of the key of hash h whose slot
// (or the empty slot where it goes) find returned. Slot numbers are not
// valid after put or remove.
func (x *index) put(i int, h, ei uint32) {
	if x.slots[i] == 0 {
		x.n++
	}
	x.slots[i] = uint64(h)<<32 | uint64(ei)
	if x.n*4 > len(x.slots)*3 {
		x.grow()
	}
}

// setConn changes the connection of used slot i.
func (x *index) setConn(i int, ei uint32) {
	x.slots[i] = x.slots[i]&^0xffffffff | uint64(ei)
}

func (x *index) grow() { x.resize(2 * len(x.slots)) }

// minIndex is the size an index starts with and does not shrink below.
const minIndex = 64

// shrink halves the table (or more) when at most a quarter of it is
// used, down to minIndex, so that after a burst of keys drains the
// table gives its memory back: the load is then at most 1/2, and
// growing again needs 3/4. Slot numbers are not valid after it; callers
// call it where they hold none.
func (x *index) shrink() {
	if x.n*4 <= len(x.slots) && len(x.slots) > minIndex {
		x.shrinkNow()
	}
}

func (x *index) shrinkNow() {
	n := len(x.slots) / 2
	for n > minIndex && x.n*4 <= n {
		n /= 2
	}
	x.resize(n)
}

func (x *index) resize(n int) {
	old := x.slots
	x.slots = make([]uint64, n)
	mask := uint32(len(x.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := uint32(s>>32) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// remove empties slot i. The slots after it up to the next empty one
// move back where their keys would be lost otherwise (backward shift
// deletion: every key stays reachable from its home, and no tombstones
// lengthen later probes). A slot before i can move to a later one only
// when its cluster wraps around the end of the table.
func (x *index) remove(i int) {
	mask := len(x.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		s := x.slots[j]
		if s == 0 {
			break
		}
		home := int(s>>32) & mask
		// The key of slot j stays when its home lies cyclically in (i, j].
		var stays bool
		if i < j {
			stays = i < home && home <= j
		} else {
			stays = i < home || home <= j
		}
		if !stays {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = 0
	x.n--
}

// clear empties the index.
func (x *index) clear() {
	x.n = 0
	if len(x.slots) > minIndex {
		x.slots = make([]uint64, minIndex)
		return
	}
	clear(x.slots)
}

func (x *index) clone() index {
	return index{seed: x.seed, slots: append([]uint64(nil), x.slots...), n: x.n}
}
