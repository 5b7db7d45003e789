package meter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"unsafe"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
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

// MaxFlowsLimit is the largest Config.MaxFlows a table takes: its index
// holds at most 2^32 slots, twice the flows.
const MaxFlowsLimit = 1 << 31

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

// key is a flow key as the table stores it: no pointers (so the entry
// slab is never scanned by the garbage collector), compared and hashed
// as five words. s and d hold the addresses' 16 bytes (As16) big-endian;
// meta packs the ports, VLAN, protocol and the two address families.
type key struct {
	s0, s1, d0, d1 uint64
	meta           uint64
}

// Families in key.meta's low byte.
const (
	famSrc4 = 1 << iota
	famDst4
)

// addrWords returns a's 16 bytes (As16) as two big-endian words.
func addrWords(a netip.Addr) (hi, lo uint64, is4 bool) {
	if addrInMemory {
		w := (*[2]uint64)(unsafe.Pointer(&a))
		return w[0], w[1], a.Is4()
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), a.Is4()
}

// addrInMemory says netip.Addr begins with its address as two words,
// most significant first (the standard library's layout today), so
// addrWords can read them instead of calling As16, which byte-swaps the
// words into an array that is then swapped back: on every packet that
// cost more than the rest of building the key. Checked once, against
// As16, on addresses of both families.
var addrInMemory = func() bool {
	if unsafe.Sizeof(netip.Addr{}) < 16 {
		return false
	}
	for _, s := range []string{"192.0.2.1", "2001:db8:1:2:3:4:5:6", "::ffff:10.1.2.3", "fe80::1"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		w := (*[2]uint64)(unsafe.Pointer(&a))
		if w[0] != binary.BigEndian.Uint64(b[:8]) || w[1] != binary.BigEndian.Uint64(b[8:]) {
			return false
		}
	}
	return true
}()

func wordsAddr(hi, lo uint64, is4 bool) netip.Addr {
	if is4 {
		return netip.AddrFrom4([4]byte{byte(lo >> 24), byte(lo >> 16), byte(lo >> 8), byte(lo)})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// setKey fills k from the packet's innermost header fields.
func setKey(k *key, p *decode.Packet) {
	var s4, d4 bool
	k.s0, k.s1, s4 = addrWords(p.Src)
	k.d0, k.d1, d4 = addrWords(p.Dst)
	m := uint64(p.Sport)<<48 | uint64(p.Dport)<<32 | uint64(p.VLAN)<<16 | uint64(p.Proto)<<8
	if s4 {
		m |= famSrc4
	}
	if d4 {
		m |= famDst4
	}
	k.meta = m
}

// flowKey is k as a flow.Key.
func (k *key) flowKey() flow.Key {
	m := k.meta
	return flow.Key{
		Src:   wordsAddr(k.s0, k.s1, m&famSrc4 != 0),
		Dst:   wordsAddr(k.d0, k.d1, m&famDst4 != 0),
		Sport: uint16(m >> 48), Dport: uint16(m >> 32), VLAN: uint16(m >> 16), Proto: uint8(m >> 8),
	}
}

// keyEq is *a == *b: written out, because the compiler compares a
// 40-byte struct by calling memequal.
func keyEq(a, b *key) bool {
	return (a.s0^b.s0)|(a.s1^b.s1)|(a.d0^b.d0)|(a.d1^b.d1)|(a.meta^b.meta) == 0
}

// hashKey hashes a key's five words.
func hashKey(k *key) uint64 {
	h := mix(k.s0^m1, k.s1^m2)
	h ^= mix(k.d0^m3, k.d1^m4)
	return mix(h^k.meta, m1^m2)
}

// find returns the entry index for k.
func (t *Table) find(k *key, h uint64) (int32, bool) {
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
