package fatm

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"
)

func alignedMem(n int) []byte {
	m := make([]uint64, (n+7)/8)
	return unsafeBytes(m)[:n]
}

func TestRingWrapAndDrops(t *testing.T) {
	mem := alignedMem(RingHdrSize + 1024)
	prod, err := InitRing(mem)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := OpenRing(mem)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var sent, got [][]byte
	drops := 0
	for round := range 2000 {
		n := rng.IntN(200)
		d := bytes.Repeat([]byte{byte(round)}, n)
		if prod.Put(Rec{Timestamp: int64(round), AAL: AAL5}, d) {
			sent = append(sent, d)
		} else {
			drops++
		}
		if rng.IntN(3) == 0 {
			for {
				rec, data, ok, err := cons.Peek()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if int(rec.CapLen) != len(data) || rec.AAL != AAL5 {
					t.Fatalf("record %+v", rec)
				}
				got = append(got, bytes.Clone(data))
			}
			cons.Release()
		}
	}
	for {
		_, data, ok, err := cons.Peek()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, bytes.Clone(data))
	}
	if len(got) != len(sent) {
		t.Fatalf("got %d records, sent %d", len(got), len(sent))
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if drops == 0 || prod.Drops() != uint64(drops) {
		t.Fatalf("drops %d, ring says %d", drops, prod.Drops())
	}
}

// TestRingRecordPastHead: a record header announcing more bytes than the
// producer has published is an error, not a record whose tail the
// producer may still be writing (and after which the consumer would be
// past the head).
func TestRingRecordPastHead(t *testing.T) {
	mem := alignedMem(RingHdrSize + 256)
	prod, err := InitRing(mem)
	if err != nil {
		t.Fatal(err)
	}
	if !prod.Put(Rec{Timestamp: 1}, make([]byte, 30)) { // 56 bytes with its header
		t.Fatal("put failed")
	}
	ne.PutUint64(mem[offHead:], 48) // published only 48 of them
	cons, err := OpenRing(mem)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := cons.Peek(); err == nil || ok {
		t.Fatalf("peek of a record running past head: ok %v, err %v", ok, err)
	}
	if cons.pending != 0 {
		t.Fatalf("consumer moved to %d", cons.pending)
	}
}

func TestIoctlNumbers(t *testing.T) {
	// _IOR('F', 1, 24 bytes) by hand: dir 2, size 24, type 0x46, nr 1.
	if IocGetInfo != 0x80184601 || IocClrFilter != 0x00004605 || IocWait != 0xc0084607 {
		t.Fatalf("ioctl numbers %#x %#x %#x", IocGetInfo, IocClrFilter, IocWait)
	}
}

func TestStructRoundTrip(t *testing.T) {
	b := make([]byte, StatsSize)
	s := Stats{Cells: 1, Truncated: 12, AAL5CRCErrors: 0x0102030405060708}
	s.Marshal(b)
	if b[7] != 1 || b[7*8] != 1 || b[7*8+7] != 8 {
		t.Fatalf("stats not big-endian: %x", b)
	}
	var s2 Stats
	s2.Unmarshal(b)
	if s2 != s {
		t.Fatalf("stats round trip %+v", s2)
	}
	i := Info{Version: Version, VPIBits: 8, VCIBits: 16, RingSize: 1 << 20, MaxFilters: 64, MaxSnaplen: 65535}
	ib := make([]byte, InfoSize)
	i.Marshal(ib)
	var i2 Info
	if i2.Unmarshal(ib); i2 != i {
		t.Fatalf("info round trip %+v", i2)
	}
}

// FuzzRing reads an arbitrary ring image as the consumer does: it never
// panics, every record it returns lies inside the ring's data area with
// its lengths consistent, the consumer never moves past the producer's
// head, and once Peek says the ring is empty it has caught up with it.
func FuzzRing(f *testing.F) {
	mem := alignedMem(RingHdrSize + 256)
	p, _ := InitRing(mem)
	p.Put(Rec{Timestamp: 1}, []byte("hello"))
	f.Add(bytes.Clone(mem))
	f.Fuzz(func(t *testing.T, img []byte) {
		m := alignedMem(len(img))
		copy(m, img)
		r, err := OpenRing(m)
		if err != nil {
			return
		}
		head, start := r.Head(), r.pending
		base := uintptr(unsafe.Pointer(unsafe.SliceData(r.data)))
		for range 1000 {
			prev := r.pending
			rec, data, ok, err := r.Peek()
			if err != nil {
				return
			}
			// Counters are free-running (modulo 2^64).
			if r.pending-prev > head-prev || r.pending-start > head-start {
				t.Fatalf("consumer at %d (was %d) past head %d from tail %d", r.pending, prev, head, start)
			}
			if !ok {
				if r.pending != head {
					t.Fatalf("empty ring but consumer at %d, head %d", r.pending, head)
				}
				return
			}
			if int(rec.CapLen) != len(data) || RecHdrSize+len(data) > int(rec.RecLen) {
				t.Fatalf("record %+v with %d data bytes", rec, len(data))
			}
			if len(data) > 0 {
				off := uintptr(unsafe.Pointer(unsafe.SliceData(data))) - base
				if off < RecHdrSize || off+uintptr(len(data)) > uintptr(r.size) {
					t.Fatalf("record data at ring offset %d+%d outside the %d-byte data area", off, len(data), r.size)
				}
			}
		}
	})
}

// FuzzRingRoundTrip puts records cut from a fuzzed stream into a ring of
// fuzzed size, draining it every few records: the consumer reads exactly
// what the producer stored, in order and with every header field, the
// records that did not fit are the drops the ring counts, and the
// producer never runs more than the ring size ahead of the consumer.
func FuzzRingRoundTrip(f *testing.F) {
	f.Add(uint16(256), uint8(3), []byte("\x05hello\x06world!\x00\x10sixteen bytes..."))
	f.Add(uint16(0), uint8(0), bytes.Repeat([]byte{40}, 400))
	f.Add(uint16(1000), uint8(1), bytes.Repeat([]byte{200}, 2000))
	f.Fuzz(func(t *testing.T, size uint16, every uint8, stream []byte) {
		mem := alignedMem(RingHdrSize + 64 + int(size)%4096)
		prod, err := InitRing(mem)
		if err != nil {
			t.Fatal(err)
		}
		cons, err := OpenRing(mem)
		if err != nil {
			t.Fatal(err)
		}
		type entry struct {
			rec  Rec
			data []byte
		}
		var sent, got []entry
		drops := uint64(0)
		drain := func() {
			for {
				rec, data, ok, err := cons.Peek()
				if err != nil {
					t.Fatalf("after %d records: %v", len(got), err)
				}
				if !ok {
					break
				}
				got = append(got, entry{rec, bytes.Clone(data)})
			}
			cons.Release()
		}
		for i := 0; len(stream) > 0; i++ {
			n := min(int(stream[0]), len(stream)-1)
			d := stream[1 : 1+n]
			stream = stream[1+n:]
			rec := Rec{Timestamp: int64(i) * 1e6, CellHdr: uint32(i) * 0x10001, WireLen: uint16(n + i), Dir: uint8(i & 1), AAL: AAL5}
			if prod.Put(rec, d) {
				rec.CapLen, rec.RecLen = uint16(n), RecLen(n)
				sent = append(sent, entry{rec, d})
			} else {
				drops++
			}
			if h, tl := prod.Head(), prod.Tail(); h < tl || h-tl > prod.size {
				t.Fatalf("head %d, tail %d: more than the ring's %d bytes outstanding", h, tl, prod.size)
			}
			if every > 0 && i%int(every) == 0 {
				drain()
			}
		}
		drain()
		if len(got) != len(sent) {
			t.Fatalf("read %d records, %d were stored", len(got), len(sent))
		}
		for i := range got {
			if got[i].rec != sent[i].rec || !bytes.Equal(got[i].data, sent[i].data) {
				t.Fatalf("record %d: read %+v %q, stored %+v %q", i, got[i].rec, got[i].data, sent[i].rec, sent[i].data)
			}
		}
		if prod.Drops() != drops {
			t.Fatalf("ring counts %d drops, %d puts failed", prod.Drops(), drops)
		}
	})
}
