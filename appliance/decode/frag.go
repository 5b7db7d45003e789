package decode

import (
	"encoding/binary"
	"net/netip"

	"github.com/mira-project/mira/flow"
)

// fragKey identifies an IP datagram: addresses, protocol and IP id (the
// IPv6 fragment header's 32-bit identification).
type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

// fragEntry remembers what a datagram's first fragment decoded to.
type fragEntry struct {
	key        fragKey
	ts         int64
	used       bool
	ver, proto uint8
	tunnel     flow.TunnelType
	sport      uint16
	dport      uint16
	src, dst   netip.Addr
	tsrc, tdst netip.Addr
}

const fragWays = 4

// fragTable is a fixed-size set-associative table (4 ways) of first
// fragments. It never grows; a full set evicts its oldest entry.
type fragTable struct {
	e       []fragEntry
	mask    uint32
	timeout int64
}

func (t *fragTable) init(size int, timeout int64) {
	sets := 1
	for sets*fragWays < size {
		sets <<= 1
	}
	t.e = make([]fragEntry, sets*fragWays)
	t.mask = uint32(sets - 1)
	t.timeout = timeout
}

func (k *fragKey) hash() uint32 {
	s, d := k.src.As16(), k.dst.As16()
	h := uint64(14695981039346656037) ^ (uint64(k.id)<<8 | uint64(k.proto))
	for _, w := range [4]uint64{
		binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:]),
		binary.LittleEndian.Uint64(d[:8]), binary.LittleEndian.Uint64(d[8:]),
	} {
		h = (h ^ w) * 0x100000001b3
		h ^= h >> 29
	}
	return uint32(h ^ h>>32)
}

// expired says an entry stored at ts is too old at now. Time running
// backwards (several files, reordering) does not expire entries.
func (t *fragTable) expired(ts, now int64) bool {
	return now-ts > t.timeout
}

// lookup copies the identity of k's first fragment into p.
func (t *fragTable) lookup(k *fragKey, now int64, p *Packet) bool {
	base := int(k.hash()&t.mask) * fragWays
	for i := base; i < base+fragWays; i++ {
		e := &t.e[i]
		if !e.used || e.key != *k {
			continue
		}
		if t.expired(e.ts, now) {
			e.used = false
			return false
		}
		p.Src, p.Dst, p.Sport, p.Dport = e.src, e.dst, e.sport, e.dport
		p.Proto, p.IPVersion = e.proto, e.ver
		p.Tunnel, p.TunnelSrc, p.TunnelDst = e.tunnel, e.tsrc, e.tdst
		return true
	}
	return false
}

// store remembers what the first fragment k decoded to.
func (t *fragTable) store(k *fragKey, now int64, p *Packet) {
	base := int(k.hash()&t.mask) * fragWays
	slot := -1
	for i := base; i < base+fragWays; i++ {
		e := &t.e[i]
		if e.used && e.key == *k {
			slot = i
			break
		}
		if slot < 0 && (!e.used || t.expired(e.ts, now)) {
			slot = i
		}
	}
	if slot < 0 { // set full of live entries: evict the oldest
		slot = base
		for i := base + 1; i < base+fragWays; i++ {
			if t.e[i].ts < t.e[slot].ts {
				slot = i
			}
		}
	}
	t.e[slot] = fragEntry{
		key: *k, ts: now, used: true,
		ver: p.IPVersion, proto: p.Proto, tunnel: p.Tunnel,
		sport: p.Sport, dport: p.Dport,
		src: p.Src, dst: p.Dst, tsrc: p.TunnelSrc, tdst: p.TunnelDst,
	}
}
