package atm

import (
	"bytes"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
)

func records(h uint32, sdu []byte) [][]byte {
	raw := AppendRecords(nil, h, sdu, 0, 0)
	var out [][]byte
	for off := 0; off < len(raw); off += RecordSize {
		out = append(out, raw[off:off+RecordSize])
	}
	return out
}

func push(r *Reassembler, vc VC, rec []byte, ts int64) ([]byte, bool) {
	h := ParseUNI(uint32(rec[0])<<24 | uint32(rec[1])<<16 | uint32(rec[2])<<8 | uint32(rec[3]))
	sdu, _, ok := r.Push(vc, rec[4:], h.PTI&PTIUserEnd != 0, ts)
	return sdu, ok
}

func TestReassemblerTimeoutOversizeAbort(t *testing.T) {
	r := NewReassembler(&ReassemblyConfig{MaxSDU: 1000, Timeout: time.Second})
	a, b := MakeVC(1, 40), MakeVC(1, 41)
	ha, hb := Header{VPI: 1, VCI: 40}.UNI(), Header{VPI: 1, VCI: 41}.UNI()

	// Partial PDU on a, then expire it.
	ra := records(ha, bytes.Repeat([]byte{1}, 200))
	push(r, a, ra[0], 0)
	r.Expire(int64(500 * time.Millisecond))
	if r.VCStats(a).Drops[ReasonTimeout] != 0 {
		t.Fatal("expired too early")
	}
	r.Expire(int64(2 * time.Second))
	if got := r.VCStats(a).Drops[ReasonTimeout]; got != 1 {
		t.Fatalf("timeouts = %d, want 1", got)
	}
	// The rest of that PDU now arrives alone: a length error.
	for _, c := range ra[1:] {
		push(r, a, c, int64(3*time.Second))
	}
	if got := r.VCStats(a).Drops[ReasonLength]; got != 1 {
		t.Fatalf("length errors = %d, want 1", got)
	}

	// Oversize on b: 2000 bytes with MaxSDU 1000, then a good PDU.
	for _, c := range records(hb, make([]byte, 2000)) {
		if _, ok := push(r, b, c, 0); ok {
			t.Fatal("oversize PDU delivered")
		}
	}
	good := bytes.Repeat([]byte{7}, 999)
	var got []byte
	for _, c := range records(hb, good) {
		if s, ok := push(r, b, c, 0); ok {
			got = s
		}
	}
	if !bytes.Equal(got, good) {
		t.Fatalf("PDU after oversize: got %d bytes", len(got))
	}
	if n := r.VCStats(b).Drops[ReasonOversize]; n != 1 {
		t.Fatalf("oversize = %d, want 1", n)
	}

	// Abort: a single cell whose length field is 0.
	abort := make([]byte, PayloadSize)
	if _, _, ok := r.Push(b, abort, true, 0); ok {
		t.Fatal("abort PDU delivered")
	}
	if n := r.VCStats(b).Drops[ReasonAbort]; n != 1 {
		t.Fatalf("aborts = %d, want 1", n)
	}

	// Flush counts a partial PDU.
	push(r, a, ra[0], 0)
	r.Flush()
	if n := r.Drops()[ReasonFlushed]; n != 1 {
		t.Fatalf("flushed = %d, want 1", n)
	}
}

func TestReassemblerVCTable(t *testing.T) {
	r := NewReassembler(&ReassemblyConfig{MaxVCs: 2})
	c := make([]byte, PayloadSize)
	for vci := uint16(32); vci < 35; vci++ {
		r.Push(MakeVC(0, vci), c, false, 0)
	}
	if n := r.Drops()[ReasonVCTable]; n != 1 {
		t.Fatalf("vc-table drops = %d, want 1", n)
	}
}

func TestFirstCellMode(t *testing.T) {
	// A 1500-byte IPv4 packet whose first cell alone is captured.
	ip := make([]byte, 1500)
	ip[0], ip[2], ip[3] = 0x45, 1500>>8, 1500&0xff
	sdu := AppendEncap(nil, EncapLLC, drivers.LinkRaw, ip)
	recs := records(Header{VPI: 10, VCI: 103}.UNI(), sdu)
	p := NewProcessor(&Config{FirstCell: true})
	f, ok := p.Record(0x00a00670, recs[0][4:], 1)
	if !ok {
		t.Fatalf("first cell not delivered: %v", p.Stats().Drops)
	}
	if !f.FirstCell || f.Length != 1500 || len(f.Data) != 40 || f.VC != MakeVC(10, 103) {
		t.Fatalf("frame: first %v length %d data %d vc %v", f.FirstCell, f.Length, len(f.Data), f.VC)
	}
	// A small packet that fits: cut to its length, not to the cell.
	small := ip[:28]
	small[2], small[3] = 0, 28
	recs = records(Header{VPI: 10, VCI: 103}.UNI(), AppendEncap(nil, EncapLLC, drivers.LinkRaw, small))
	f, ok = p.Record(0x00a00672, recs[0][4:], 2)
	if !ok || f.FirstCell || len(f.Data) != 28 || f.Length != 28 {
		t.Fatalf("single-cell PDU: ok %v first %v data %d length %d", ok, f.FirstCell, len(f.Data), f.Length)
	}
	st := p.Stats()
	if st.FirstCells != 1 || st.Frames != 2 || st.PDUs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProcessorPDU(t *testing.T) {
	ip := []byte{0x60, 0, 0, 0, 0, 0, 17, 64}
	ip = append(ip, make([]byte, 32)...)
	p := NewProcessor(&Config{Filters: []Filter{Exact(1, 2)}})
	f, ok := p.PDU(1, 2, AppendEncap(nil, EncapLLC, drivers.LinkRaw, ip), 0, 5)
	if !ok || !bytes.Equal(f.Data, ip) || f.Link != drivers.LinkRaw {
		t.Fatalf("PDU: %v %x", ok, f.Data)
	}
	if _, ok := p.PDU(1, 3, ip, 0, 5); ok {
		t.Fatal("filtered PDU delivered")
	}
	if _, ok := p.PDU(1, 2, ip, 0, 5); ok {
		t.Fatal("PDU without LLC delivered on an LLC VC")
	}
	st := p.Stats()
	if st.Drops[ReasonFiltered] != 1 || st.Drops[ReasonNoLLC] != 1 || p.VCStats(MakeVC(1, 2)).Drops[ReasonNoLLC] != 1 {
		t.Fatalf("drops %v", st.Drops)
	}
}

func TestStripTrailer(t *testing.T) {
	sdu := bytes.Repeat([]byte{3}, 100)
	recs := AppendRecords(nil, 0, sdu, 9, 0)
	var pdu []byte
	for off := 0; off < len(recs); off += RecordSize {
		pdu = append(pdu, recs[off+4:off+RecordSize]...)
	}
	got, tr, ok := StripTrailer(pdu)
	if !ok || !bytes.Equal(got, sdu) || tr.UU != 9 {
		t.Fatalf("StripTrailer: %v %d bytes uu %d", ok, len(got), tr.UU)
	}
	pdu[10] ^= 1
	if _, _, ok := StripTrailer(pdu); ok {
		t.Fatal("corrupt PDU accepted")
	}
	if _, _, ok := StripTrailer(sdu); ok {
		t.Fatal("SDU without trailer accepted")
	}
}
