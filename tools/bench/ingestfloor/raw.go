//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// rawStore is the -raw mode: the least work of a collector that keeps
// IPFIX data sets as they came (no record decoding, no own encoding)
// and still answers time-range queries and counts sequence loss. Per
// message it checks the header and the exporter's sequence number; per
// template set it keeps the templates; per data set it walks every
// record (variable-length fields included) to its end and reads the
// record's flowEndMilliseconds, and appends the set as a frame with its
// origin, template, record count, earliest and latest end time and a
// CRC-32C. The first frame of a template in a commit is preceded by the
// template, so that a commit (the unit its index entry points at) can be
// read alone. Each commit appends an index entry (offset, length,
// earliest and latest end) to a second file and syncs both.
type rawStore struct {
	f         *os.File
	idx       *os.File
	nosync    bool
	wbuf      []byte
	templates map[tkey]*rawTemplate
	origins   map[okey]*rawOrigin
	start     int64 // segment offset where the commit began
	pending   int64 // bytes of this commit so far
	commitNo  uint32
	minEnd    uint64
	maxEnd    uint64
	lost      uint64
	unknown   uint64
	records   atomic.Uint64 // data records framed (flow and options)
	entry     [32]byte
}

type okey struct {
	addr   [4]byte
	port   uint16
	domain uint32
}

type tkey struct {
	o   okey
	tid uint16
}

type rawOrigin struct {
	id      uint32
	nextSeq uint32
	seen    bool
}

type rawTemplate struct {
	set      []byte // the template record, as a one-record template set
	fixed    int    // record length when no field is variable, else -1
	endOff   int    // offset of flowEndMilliseconds in the fixed lead, -1 if none
	lead     int    // bytes before the first variable-length field
	tail     []uint16
	usedInNo uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newRawStore(path string, nosync bool) (*rawStore, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	idx, err := os.OpenFile(path+".idx", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rawStore{f: f, idx: idx, nosync: nosync, wbuf: make([]byte, 0, 1<<20), templates: map[tkey]*rawTemplate{}, origins: map[okey]*rawOrigin{}, commitNo: 1, minEnd: ^uint64(0)}, nil
}

func (s *rawStore) datagram(b []byte, addr [4]byte, port uint16) error {
	s.wbuf = s.message(s.wbuf, b, addr, port)
	if len(s.wbuf) >= 256<<10 {
		if _, err := s.f.Write(s.wbuf); err != nil {
			return err
		}
		s.wbuf = s.wbuf[:0]
	}
	return nil
}

func (s *rawStore) report() string {
	return fmt.Sprintf(", %d data records framed", s.records.Load())
}

// sync writes what is buffered, syncs it and commits its index entry.
func (s *rawStore) sync() error {
	if _, err := s.f.Write(s.wbuf); err != nil {
		return err
	}
	s.wbuf = s.wbuf[:0]
	if !s.nosync {
		if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
			return err
		}
	}
	return s.commit(s.nosync)
}

func (s *rawStore) commit(nosync bool) error {
	if s.pending == 0 {
		return nil
	}
	e := s.entry[:]
	binary.LittleEndian.PutUint64(e[0:], uint64(s.start))
	binary.LittleEndian.PutUint64(e[8:], uint64(s.pending))
	binary.LittleEndian.PutUint64(e[16:], s.minEnd)
	binary.LittleEndian.PutUint64(e[24:], s.maxEnd)
	if _, err := s.idx.Write(e); err != nil {
		return err
	}
	if !nosync {
		if err := unix.Fdatasync(int(s.idx.Fd())); err != nil {
			return err
		}
	}
	s.start += s.pending
	s.pending = 0
	s.commitNo++
	s.minEnd, s.maxEnd = ^uint64(0), 0
	return nil
}

func (s *rawStore) message(w, msg []byte, addr [4]byte, port uint16) []byte {
	if len(msg) < 16 || binary.BigEndian.Uint16(msg) != 10 || int(binary.BigEndian.Uint16(msg[2:])) != len(msg) {
		s.unknown++
		return w
	}
	ok := okey{addr: addr, port: port, domain: binary.BigEndian.Uint32(msg[12:])}
	o := s.origins[ok]
	if o == nil {
		o = &rawOrigin{id: uint32(len(s.origins) + 1)}
		s.origins[ok] = o
	}
	seq := binary.BigEndian.Uint32(msg[8:])
	if o.seen && seq != o.nextSeq {
		s.lost += uint64(seq - o.nextSeq)
	}
	o.seen = true
	records := uint32(0)
	lo, hi := ^uint64(0), uint64(0)
	for b := msg[16:]; len(b) >= 4; {
		id, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			s.unknown++
			break
		}
		set := b[:l]
		b = b[l:]
		switch {
		case id == 2 || id == 3:
			s.templateSet(ok, id, set[4:])
		case id >= 256:
			t := s.templates[tkey{ok, id}]
			if t == nil {
				s.unknown++
				continue
			}
			if t.usedInNo != s.commitNo {
				// A commit is read alone: it carries its templates.
				t.usedInNo = s.commitNo
				w = s.frame(w, o.id, 0, 0, 0, t.set)
			}
			n, l, h := t.walk(set[4:])
			records += uint32(n)
			if n > 0 && h > 0 {
				lo, hi = min(lo, l), max(hi, h)
			}
		}
	}
	o.nextSeq = seq + records
	s.records.Add(uint64(records))
	if hi == 0 {
		lo = 0
	}
	// The message's sets as they came, one frame.
	return s.frame(w, o.id, int(records), lo, hi, msg[16:])
}

// frame appends [length u32][origin u32][records u32][min u64][max
// u64][crc u32] and body (records 0: a template set).
func (s *rawStore) frame(w []byte, origin uint32, n int, lo, hi uint64, body []byte) []byte {
	var h [32]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(h[4:], origin)
	binary.LittleEndian.PutUint32(h[8:], uint32(n))
	binary.LittleEndian.PutUint64(h[12:], lo)
	binary.LittleEndian.PutUint64(h[20:], hi)
	binary.LittleEndian.PutUint32(h[28:], crc32.Update(crc32.Checksum(h[:28], castagnoli), castagnoli, body))
	if n > 0 {
		s.minEnd = min(s.minEnd, lo)
		s.maxEnd = max(s.maxEnd, hi)
	}
	s.pending += int64(len(h) + len(body))
	w = append(w, h[:]...)
	return append(w, body...)
}

func (s *rawStore) templateSet(ok okey, setID uint16, b []byte) {
	for len(b) >= 4 {
		tid, count := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		off := 4
		if setID == 3 {
			off = 6
		}
		t := &rawTemplate{fixed: 0, endOff: -1, lead: -1}
		pos := 0
		for i := 0; i < count; i++ {
			if off+4 > len(b) {
				return
			}
			ie, fl := binary.BigEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off+2:])
			off += 4
			if ie&0x8000 != 0 {
				off += 4
			}
			if fl == 0xffff {
				if t.lead < 0 {
					t.lead = pos
				}
				t.tail = append(t.tail, fl)
				continue
			}
			if t.lead >= 0 {
				t.tail = append(t.tail, fl)
				continue
			}
			if ie == 153 && fl == 8 {
				t.endOff = pos
			}
			pos += int(fl)
		}
		if t.lead < 0 {
			t.fixed = pos
			t.lead = pos
		} else {
			t.fixed = -1
		}
		if off > len(b) {
			return
		}
		t.set = append([]byte(nil), b[:off]...)
		if tid >= 256 && count > 0 {
			s.templates[tkey{ok, tid}] = t
		}
		b = b[off:]
	}
}

// walk finds every record of a data set body and its end time; it
// returns the record count and the earliest and latest end times (0, 0
// when the template has no flowEndMilliseconds).
func (t *rawTemplate) walk(b []byte) (n int, lo, hi uint64) {
	lo = ^uint64(0)
	for {
		if len(b) < t.lead || t.lead == 0 && t.fixed == 0 {
			break
		}
		if t.endOff >= 0 {
			e := binary.BigEndian.Uint64(b[t.endOff:])
			lo, hi = min(lo, e), max(hi, e)
		}
		off := t.lead
		if t.fixed < 0 {
			for _, fl := range t.tail {
				if fl != 0xffff {
					off += int(fl)
					continue
				}
				if off >= len(b) {
					return n, lo, hi
				}
				l := int(b[off])
				off++
				if l == 255 {
					if off+2 > len(b) {
						return n, lo, hi
					}
					l = int(binary.BigEndian.Uint16(b[off:]))
					off += 2
				}
				off += l
			}
			if off > len(b) {
				break
			}
		}
		b = b[off:]
		n++
	}
	if n == 0 || t.endOff < 0 {
		return n, 0, 0
	}
	return n, lo, hi
}
