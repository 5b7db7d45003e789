package fatm

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Ring is the receive ring in memory shared between the device (the
// producer) and the reader (the consumer).
type Ring struct {
	mem     []byte
	data    []byte
	size    uint64
	pending uint64 // tail after the record last returned by Peek
}

// ring header offsets
const (
	offHead  = 0
	offTail  = 8
	offData  = 16
	offSize  = 20
	offDrops = 24
)

func (r *Ring) word(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }

// InitRing formats mem (8-byte aligned, e.g. an mmap) as an empty ring
// and returns the producer's view.
func InitRing(mem []byte) (*Ring, error) {
	if len(mem) < RingHdrSize+64 || uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, fmt.Errorf("fatm: ring memory of %d bytes is too small or unaligned", len(mem))
	}
	size := uint64(len(mem)-RingHdrSize) &^ 7
	clear(mem[:RingHdrSize])
	ne.PutUint32(mem[offData:], RingHdrSize)
	ne.PutUint32(mem[offSize:], uint32(size))
	return &Ring{mem: mem, data: mem[RingHdrSize : RingHdrSize+size], size: size}, nil
}

// OpenRing returns the consumer's view of a ring the device formatted.
func OpenRing(mem []byte) (*Ring, error) {
	if len(mem) < RingHdrSize || uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, fmt.Errorf("fatm: ring mapping of %d bytes is too small or unaligned", len(mem))
	}
	off := uint64(ne.Uint32(mem[offData:]))
	size := uint64(ne.Uint32(mem[offSize:]))
	if off < RingHdrSize || size < RecHdrSize || size%8 != 0 || off+size > uint64(len(mem)) {
		return nil, fmt.Errorf("fatm: ring header at offset 0 says data at %d size %d in a %d-byte mapping", off, size, len(mem))
	}
	r := &Ring{mem: mem, data: mem[off : off+size], size: size}
	r.pending = atomic.LoadUint64(r.word(offTail))
	return r, nil
}

// Head and Tail return the producer and consumer counts.
func (r *Ring) Head() uint64 { return atomic.LoadUint64(r.word(offHead)) }

// Tail returns the consumer count.
func (r *Ring) Tail() uint64 { return atomic.LoadUint64(r.word(offTail)) }

// Drops returns the records the producer could not store.
func (r *Ring) Drops() uint64 { return atomic.LoadUint64(r.word(offDrops)) }

// Peek returns the next record after the ones already peeked, without
// releasing it. ok is false when the ring holds no more. A malformed
// record is an error naming its ring offset; the reader cannot continue.
func (r *Ring) Peek() (rec Rec, data []byte, ok bool, err error) {
	head := r.Head()
	for r.pending != head {
		avail := head - r.pending // bytes the producer has published
		if avail > r.size {
			return rec, nil, false, fmt.Errorf("fatm: ring head %d is more than %d bytes past tail %d", head, r.size, r.pending)
		}
		pos := r.pending % r.size
		room := r.size - pos
		if room < RecHdrSize {
			if room > avail {
				return rec, nil, false, fmt.Errorf("fatm: ring offset %d: head %d stops inside the %d bytes before the end", pos, head, room)
			}
			r.pending += room
			continue
		}
		if err := rec.Unmarshal(r.data[pos:]); err != nil {
			return rec, nil, false, fmt.Errorf("ring offset %d: %w", pos, err)
		}
		if rec.Flags&RecWrap != 0 {
			if room > avail {
				return rec, nil, false, fmt.Errorf("fatm: ring offset %d: wrap marker past head %d", pos, head)
			}
			r.pending += room
			continue
		}
		if uint64(rec.RecLen) > room {
			return rec, nil, false, fmt.Errorf("fatm: ring offset %d: record of %d bytes crosses the end", pos, rec.RecLen)
		}
		if uint64(rec.RecLen) > avail {
			return rec, nil, false, fmt.Errorf("fatm: ring offset %d: record of %d bytes runs past head %d (%d bytes published)", pos, rec.RecLen, head, avail)
		}
		r.pending += uint64(rec.RecLen)
		return rec, r.data[pos+RecHdrSize : pos+RecHdrSize+uint64(rec.CapLen)], true, nil
	}
	return rec, nil, false, nil
}

// Release gives every peeked record back to the producer.
func (r *Ring) Release() { atomic.StoreUint64(r.word(offTail), r.pending) }

// Put appends a record (producer side); it returns false, counting a
// drop, when the ring has no room.
func (r *Ring) Put(rec Rec, data []byte) bool {
	rec.CapLen = uint16(len(data))
	rec.RecLen = RecLen(len(data))
	need := uint64(rec.RecLen)
	head, tail := r.Head(), r.Tail()
	pos := head % r.size
	room := r.size - pos
	skip := uint64(0)
	if room < need {
		skip = room // wrap: the record starts at the beginning
	}
	if head+skip+need-tail > r.size {
		atomic.AddUint64(r.word(offDrops), 1)
		return false
	}
	if skip > 0 && room >= RecHdrSize {
		w := Rec{Flags: RecWrap, RecLen: uint32(room)}
		w.Marshal(r.data[pos:])
	}
	pos = (head + skip) % r.size
	rec.Marshal(r.data[pos:])
	copy(r.data[pos+RecHdrSize:], data)
	atomic.StoreUint64(r.word(offHead), head+skip+need)
	return true
}

// Fits reports whether a record of caplen data bytes can be put now.
func (r *Ring) Fits(caplen int) bool {
	need := uint64(RecLen(caplen))
	head, tail := r.Head(), r.Tail()
	room := r.size - head%r.size
	skip := uint64(0)
	if room < need {
		skip = room
	}
	return head+skip+need-tail <= r.size
}
