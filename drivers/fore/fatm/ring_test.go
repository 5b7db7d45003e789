package fatm

import (
	"bytes"
	"math/rand/v2"
	"testing"
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

// FuzzRing checks that a consumer never panics or reads out of bounds on
// an arbitrary ring image.
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
		for range 1000 {
			_, data, ok, err := r.Peek()
			if err != nil || !ok {
				return
			}
			_ = data
		}
	})
}
