package atm

import (
	"bytes"
	"testing"

	"github.com/mira-project/mira/drivers"
)

// FuzzProcessor feeds arbitrary bytes as 53-byte cells; the first byte
// picks the configuration. It checks that nothing panics and the counters
// stay consistent.
func FuzzProcessor(f *testing.F) {
	ip := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	f.Add(append([]byte{0}, AppendCells(nil, 0x00a00670, AppendEncap(nil, EncapLLC, drivers.LinkRaw, ip), 0, 0)...))
	f.Add(append([]byte{1}, AppendCells(nil, 0x00a00670, bytes.Repeat(ip, 10), 0, 0)...))
	f.Add(append([]byte{6}, AppendCells(nil, 0x00a00670, AppendEncap(nil, EncapLLC, drivers.LinkRaw, ip), 0, 0)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode := data[0]
		data = data[1:]
		p := NewProcessor(&Config{
			FirstCell:    mode&2 != 0,
			NNI:          mode&4 != 0,
			DefaultEncap: Encap(mode>>3) % 6,
			Reassembly:   ReassemblyConfig{MaxSDU: 1 + int(mode)*40},
		})
		n := 0
		for off := 0; off < len(data); off += CellSize {
			end := min(off+CellSize, len(data))
			f, ok := p.Cell(data[off:end], int64(off))
			n++
			if ok && (len(f.Data) > f.Length || (f.Link != drivers.LinkRaw && f.Link != drivers.LinkEthernet)) {
				t.Fatalf("frame %d bytes of %d, link %v", len(f.Data), f.Length, f.Link)
			}
		}
		p.Flush()
		st := p.Stats()
		if st.Cells != uint64(n) || st.Frames > st.Cells {
			t.Fatalf("cells %d (fed %d) frames %d", st.Cells, n, st.Frames)
		}
	})
}

// FuzzSegmentRoundTrip checks that any SDU survives segmentation and
// reassembly unchanged, and that corrupting one payload bit is caught.
func FuzzSegmentRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint8(0), uint8(0), uint16(0))
	f.Add(make([]byte, 40), uint8(0x11), uint8(0x22), uint16(7))
	f.Add(bytes.Repeat([]byte{0xaa}, 1500), uint8(0), uint8(0), uint16(999))
	f.Fuzz(func(t *testing.T, sdu []byte, uu, cpi uint8, flip uint16) {
		if len(sdu) > 65535 {
			return
		}
		h := Header{VPI: 1, VCI: 100}.UNI()
		recs := AppendRecords(nil, h, sdu, uu, cpi)
		if len(recs) != PDUCells(len(sdu))*RecordSize {
			t.Fatalf("%d bytes of records for %d cells", len(recs), PDUCells(len(sdu)))
		}
		run := func(recs []byte) ([]byte, Trailer, bool, Reassembler) {
			r := NewReassembler(nil)
			for off := 0; off < len(recs); off += RecordSize {
				end := recs[off+3]&2 != 0
				if s, tr, ok := r.Push(MakeVC(1, 100), recs[off+4:off+RecordSize], end, 0); ok {
					return s, tr, true, *r
				}
			}
			return nil, Trailer{}, false, *r
		}
		got, tr, ok, r := run(recs)
		if len(sdu) == 0 {
			// Length 0 is the abort indication.
			if ok || r.Drops()[ReasonAbort] != 1 {
				t.Fatalf("empty SDU: ok %v drops %v", ok, r.Drops())
			}
			return
		}
		if !ok || !bytes.Equal(got, sdu) || tr.UU != uu || tr.CPI != cpi {
			t.Fatalf("round trip failed: ok %v, %d bytes, drops %v", ok, len(got), r.Drops())
		}
		// Flip one payload bit (never the PTI): the CRC or length check must fail.
		cells := len(recs) / RecordSize
		bit := int(flip) % (cells * PayloadSize * 8)
		c, b := bit/(PayloadSize*8), bit%(PayloadSize*8)
		bad := bytes.Clone(recs)
		bad[c*RecordSize+4+b/8] ^= 0x80 >> (b % 8)
		if got, _, ok, _ := run(bad); ok && bytes.Equal(got, sdu) {
			t.Fatalf("corrupted bit %d not detected", bit)
		}
	})
}

// FuzzDecap checks Decap never panics and returns a suffix of its input.
func FuzzDecap(f *testing.F) {
	f.Add([]byte{0xaa, 0xaa, 3, 0, 0, 0, 8, 0, 0x45}, uint8(0))
	f.Add([]byte{0xaa, 0xaa, 3, 0, 0x80, 0xc2, 0, 1, 0, 0}, uint8(0))
	f.Add([]byte{0, 0, 1, 2}, uint8(4))
	f.Fuzz(func(t *testing.T, sdu []byte, e uint8) {
		data, link, reason := Decap(sdu, Encap(e%8))
		if reason == ReasonNone {
			if len(data) > len(sdu) || (link != drivers.LinkRaw && link != drivers.LinkEthernet) {
				t.Fatalf("bad result %d bytes link %v", len(data), link)
			}
			if n := WireLength(data, link); n < 0 {
				t.Fatalf("negative wire length")
			}
		} else if data != nil {
			t.Fatalf("data returned with reason %v", reason)
		}
	})
}
