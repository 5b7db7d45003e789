package erf

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		ts uint64
		ns int64
	}{
		{0, 0},
		{1 << 32, 1e9},
		{1<<32 | 1<<31, 1.5e9},
		{0x3a922452_5bae0800, 982656082_358124256}, // first Auckland record: 08:01:22.358124 (tcpdump)
	} {
		if got := Timestamp(tc.ts); got != tc.ns {
			t.Errorf("Timestamp(%x) = %d, want %d", tc.ts, got, tc.ns)
		}
		if got := Timestamp(MakeTimestamp(tc.ns)); got != tc.ns {
			t.Errorf("round trip of %d gave %d", tc.ns, got)
		}
	}
}

type cell struct {
	ts  int64
	hdr uint32
	pay []byte
}

func readLegacy(t *testing.T, path string) []cell {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := NewLegacyReader(zr, path)
	var out []cell
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cell{rec.Timestamp, rec.Header, bytes.Clone(rec.Payload)})
	}
}

func readERF(t *testing.T, path string) ([]cell, []Record) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReader(f, path)
	var out []cell
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, recs
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != TypeATM || len(rec.Data) < 52 {
			t.Fatalf("record at %d: type %d, %d bytes", rec.Offset, rec.Type, len(rec.Data))
		}
		out = append(out, cell{rec.Timestamp, binary.BigEndian.Uint32(rec.Data), bytes.Clone(rec.Data[4:52])})
		rec.Data = nil
		recs = append(recs, rec)
	}
}

// TestAucklandThreeWays reads the same 100 Auckland cells from the legacy
// file, its ERF TYPE_ATM conversion and its SunATM pcap conversion (read
// with gopacket's pcapgo), and checks they agree cell by cell.
func TestAucklandThreeWays(t *testing.T) {
	legacy := readLegacy(t, corpus(t, "atm/libtrace-traces/legacyatm.gz"))
	erfCells, _ := readERF(t, corpus(t, "pcaps/converted/auckland-legacyatm-type3.erf"))
	if len(legacy) != 100 || len(erfCells) != 100 {
		t.Fatalf("%d legacy, %d ERF records, want 100", len(legacy), len(erfCells))
	}
	f, err := os.Open(corpus(t, "pcaps/converted/auckland-legacyatm-sunatm.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range legacy {
		l, e := legacy[i], erfCells[i]
		if l.ts != e.ts || l.hdr != e.hdr || !bytes.Equal(l.pay, e.pay) {
			t.Fatalf("record %d: legacy %+v, ERF %+v", i, l, e)
		}
		data, ci, err := pr.ReadPacketData()
		if err != nil {
			t.Fatalf("pcap record %d: %v", i, err)
		}
		vpi, vci := data[1], binary.BigEndian.Uint16(data[2:])
		if uint32(vpi) != l.hdr>>20&0xff || uint32(vci) != l.hdr>>4&0xffff {
			t.Fatalf("record %d: pcap VC %d/%d, header %08x", i, vpi, vci, l.hdr)
		}
		if d := ci.Timestamp.UnixNano() - l.ts; d < -1000 || d > 1000 {
			t.Fatalf("record %d: pcap time %v, legacy %d", i, ci.Timestamp, l.ts)
		}
		if !bytes.HasPrefix(l.pay, data[4:]) {
			t.Fatalf("record %d: pcap payload %x is not a prefix of %x", i, data[4:], l.pay)
		}
	}
}

// TestLargeLegacy reads libtrace's large_legacy.gz, which despite its name
// is an uncompressed ERF TYPE_ATM file of first cells.
func TestLargeLegacy(t *testing.T) {
	cells, recs := readERF(t, corpus(t, "atm/libtrace-traces/large_legacy.gz"))
	if len(cells) != 31249 {
		t.Fatalf("%d records, want 31249", len(cells))
	}
	vcs := map[[2]uint32]int{}
	for i, c := range cells {
		vcs[[2]uint32{c.hdr >> 20 & 0xff, c.hdr >> 4 & 0xffff}]++
		if recs[i].WireLen != 53 || recs[i].Interface != 1 {
			t.Fatalf("record %d: wlen %d interface %d", i, recs[i].WireLen, recs[i].Interface)
		}
		if i > 0 && c.ts < cells[i-1].ts {
			t.Fatalf("record %d: time goes back", i)
		}
	}
	want := map[[2]uint32]int{{10, 103}: 31241, {3, 102}: 6, {10, 102}: 2}
	for k, n := range want {
		if vcs[k] != n {
			t.Errorf("VC %d/%d: %d cells, want %d", k[0], k[1], vcs[k], n)
		}
	}
}

func TestTruncatedAndBad(t *testing.T) {
	raw, err := os.ReadFile(corpus(t, "pcaps/converted/auckland-legacyatm-type3.erf"))
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the second record's body.
	r := NewReader(bytes.NewReader(raw[:68+30]), "cut.erf")
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Offset != 68 || !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut record: %v", err)
	}
	// Bad rlen.
	bad := bytes.Clone(raw[:68])
	binary.BigEndian.PutUint16(bad[10:], 8)
	if _, err := NewReader(bytes.NewReader(bad), "bad.erf").Next(); !errors.As(err, &fe) || fe.Offset != 0 {
		t.Fatalf("bad rlen: %v", err)
	}
	// Extension headers are skipped.
	ext := append(bytes.Clone(raw[:16]), 0x05, 0, 0, 0, 0, 0, 0, 0)
	ext = append(ext, raw[16:68]...)
	ext[8] |= 0x80
	binary.BigEndian.PutUint16(ext[10:], 76)
	rec, err := NewReader(bytes.NewReader(ext), "ext.erf").Next()
	if err != nil || rec.Type != TypeATM || !bytes.Equal(rec.Data, raw[16:68]) {
		t.Fatalf("extension header: %v %x", err, rec.Data)
	}
	// Legacy cut.
	_, err = NewLegacyReader(bytes.NewReader(make([]byte, 100)), "cut.legacy").Next()
	if err != nil {
		t.Fatal(err)
	}
	lr := NewLegacyReader(bytes.NewReader(make([]byte, 100)), "cut.legacy")
	lr.Next()
	if _, err := lr.Next(); !errors.As(err, &fe) || fe.Offset != 64 || !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut legacy record: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	raw, err := os.ReadFile(corpus(f, "pcaps/converted/auckland-legacyatm-type3.erf"))
	if err == nil {
		f.Add(raw[:68*3])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		var pos int64
		for {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF {
					var fe *FormatError
					if !errors.As(err, &fe) || fe.Offset != pos {
						t.Fatalf("error %v, want a FormatError at %d", err, pos)
					}
				}
				return
			}
			if rec.Offset != pos || len(rec.Data) > MaxRecord {
				t.Fatalf("record offset %d want %d", rec.Offset, pos)
			}
			pos += int64(binary.BigEndian.Uint16(data[pos+10:]))
		}
	})
}

func FuzzLegacyReader(f *testing.F) {
	f.Add(make([]byte, 130))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewLegacyReader(bytes.NewReader(data), "fuzz")
		n := 0
		for {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF && len(data)%LegacySize == 0 {
					t.Fatalf("error on a whole number of records: %v", err)
				}
				if err == io.EOF && len(data)%LegacySize != 0 {
					t.Fatal("clean end on a partial record")
				}
				return
			}
			if len(rec.Payload) != 48 || rec.Offset != int64(n*LegacySize) {
				t.Fatalf("record %d: %d bytes at %d", n, len(rec.Payload), rec.Offset)
			}
			n++
		}
	})
}
