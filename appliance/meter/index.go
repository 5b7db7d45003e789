package meter

import (
	"math/bits"
	"unsafe"

	"github.com/mira-project/mira/appliance/flow"
)

// index maps flow keys to slab entries: open addressing with linear
// probing over a power-of-two slot array sized at twice the table's
// capacity, so probe sequences stay short. A slot holds 32 bits of the
// key's hash and the entry index + 1 (0: empty), so mismatches are mostly
// rejected without touching the entry. Deletion shifts later members of
// the cluster back (no tombstones). It replaces a Go map here because the
// map's generic hashing of flow.Key (two netip.Addr) cost more than the
// rest of metering together.
//
// A key's home slot is the top bits of its tag, so the slot alone says
// where its member belongs: deletion moves members back without reading
// their entries (each a likely cache miss).
type index struct {
	slots []slot
	mask  uint64
	shift uint // home slot of tag: tag >> shift
	n     int
}

type slot struct {
	tag uint32
	idx uint32 // entry index + 1; 0 = empty
}

func newIndex(capacity int) index {
	n := 1 << bits.Len(uint(2*capacity-1))
	if n < 16 {
		n = 16
	}
	if n > 1<<32 {
		panic("meter: flow index larger than 2^32 slots")
	}
	slots := make([]slot, n)
	adviseHuge(unsafe.Pointer(unsafe.SliceData(slots)), uintptr(n)*unsafe.Sizeof(slot{}))
	return index{slots: slots, mask: uint64(n - 1), shift: uint(32 - bits.Len(uint(n-1)))}
}

const (
	m1 = 0xa0761d6478bd642f
	m2 = 0xe7037ed1a0b428db
	m3 = 0x8ebc6af09c88c6e3
	m4 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// tagOf is the part of hash h kept in a slot.
func tagOf(h uint64) uint32 { return uint32(h >> 32) }

// home is the slot where a key with tag tag is looked up first.
func (ix *index) home(tag uint32) uint64 { return uint64(tag) >> ix.shift }

// hashKey hashes the key's addresses, ports, protocol and VLAN.
//
// It reads the first 16 bytes of each netip.Addr as they are in memory
// (today the address as a 128-bit integer) instead of calling As16, which
// byte-swaps them. That is sound whatever netip's layout: Addr has no
// padding and == compares all of it, so equal addresses have equal bytes;
// only the hash's quality depends on the layout, and TestHashSpread
// checks it.
func hashKey(k *flow.Key) uint64 {
	s := (*[2]uint64)(unsafe.Pointer(&k.Src))
	d := (*[2]uint64)(unsafe.Pointer(&k.Dst))
	x := uint64(k.Sport)<<48 | uint64(k.Dport)<<32 | uint64(k.Proto)<<16 | uint64(k.VLAN)
	h := mix(s[0]^m1, s[1]^m2)
	h ^= mix(d[0]^m3, d[1]^m4)
	if k.Src.Is4() {
		x |= 1 << 24 // keep 1.2.3.4 and ::ffff:1.2.3.4 apart
	}
	if k.Dst.Is4() {
		x |= 1 << 25
	}
	return mix(h^x, m1^m2)
}

// keyEq is k == *o written out field by field: the compiler turns the
// struct comparison of flow.Key into a call to a generated equality
// function, which showed in profiles; this compiles to inline compares,
// the cheap fields first.
func keyEq(a, b *flow.Key) bool {
	return a.Sport == b.Sport && a.Dport == b.Dport && a.Proto == b.Proto && a.VLAN == b.VLAN &&
		a.Src == b.Src && a.Dst == b.Dst
}

// find returns the entry index for k.
func (t *Table) find(k *flow.Key, h uint64) (int32, bool) {
	ix := &t.idx
	tag := tagOf(h)
	for p := ix.home(tag); ; p = (p + 1) & ix.mask {
		s := ix.slots[p]
		if s.idx == 0 {
			return 0, false
		}
		if s.tag == tag {
			i := int32(s.idx - 1)
			if keyEq(&t.at(i).key, k) {
				return i, true
			}
		}
	}
}

// insert adds k (not present) -> i.
func (ix *index) insert(h uint64, i int32) {
	tag := tagOf(h)
	p := ix.home(tag)
	for ix.slots[p].idx != 0 {
		p = (p + 1) & ix.mask
	}
	ix.slots[p] = slot{tag: tag, idx: uint32(i) + 1}
	ix.n++
}

// unindex deletes the slot holding entry i of key hash h, shifting the rest
// of the cluster back so every member stays reachable from its home slot.
func (t *Table) unindex(h uint64, i int32) {
	ix := &t.idx
	p := ix.home(tagOf(h))
	for ix.slots[p].idx != uint32(i)+1 {
		p = (p + 1) & ix.mask
	}
	ix.n--
	for {
		ix.slots[p] = slot{}
		q := p
		for {
			q = (q + 1) & ix.mask
			s := ix.slots[q]
			if s.idx == 0 {
				return
			}
			home := ix.home(s.tag)
			// Move s back to p if p lies cyclically in [home, q).
			if (q > p && (home <= p || home > q)) || (q < p && home <= p && home > q) {
				ix.slots[p] = s
				p = q
				break
			}
		}
	}
}
