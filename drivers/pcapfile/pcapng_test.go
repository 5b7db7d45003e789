package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/drivers"
)

// ngWriter builds pcapng files block by block for tests.
type ngWriter struct {
	order binary.ByteOrder
	b     bytes.Buffer
}

func (w *ngWriter) block(typ uint32, body []byte) {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	var h [8]byte
	w.order.PutUint32(h[0:], typ)
	w.order.PutUint32(h[4:], n)
	w.b.Write(h[:])
	w.b.Write(body)
	w.order.PutUint32(h[0:], n)
	w.b.Write(h[:4])
}

func (w *ngWriter) option(code uint16, v []byte) []byte {
	o := make([]byte, 4, 4+len(v)+3)
	w.order.PutUint16(o[0:], code)
	w.order.PutUint16(o[2:], uint16(len(v)))
	o = append(o, v...)
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	return o
}

func (w *ngWriter) shb() {
	body := make([]byte, 16)
	w.order.PutUint32(body[0:], bomMagic)
	w.order.PutUint16(body[4:], 1)
	binary.LittleEndian.PutUint64(body[8:], ^uint64(0)) // section length unknown
	w.block(blockSHB, body)                             // the SHB type reads the same in both byte orders
}

func (w *ngWriter) idb(link drivers.LinkType, snaplen uint32, opts ...[]byte) {
	body := make([]byte, 8)
	w.order.PutUint16(body[0:], uint16(link))
	w.order.PutUint32(body[4:], snaplen)
	for _, o := range opts {
		body = append(body, o...)
	}
	w.block(blockIDB, body)
}

func (w *ngWriter) epb(ifid uint32, units uint64, data []byte, length uint32, opts ...[]byte) {
	body := make([]byte, 20, 20+len(data)+8)
	w.order.PutUint32(body[0:], ifid)
	w.order.PutUint32(body[4:], uint32(units>>32))
	w.order.PutUint32(body[8:], uint32(units))
	w.order.PutUint32(body[12:], uint32(len(data)))
	w.order.PutUint32(body[16:], length)
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	for _, o := range opts {
		body = append(body, o...)
	}
	w.block(blockEPB, body)
}

func u32(order binary.ByteOrder, v uint32) []byte {
	b := make([]byte, 4)
	order.PutUint32(b, v)
	return b
}

func u64(order binary.ByteOrder, v uint64) []byte {
	b := make([]byte, 8)
	order.PutUint64(b, v)
	return b
}

// buildPcapng writes the packets as one Ethernet interface with
// nanosecond resolution.
func buildPcapng(order binary.ByteOrder, pk []packet) []byte {
	w := &ngWriter{order: order}
	w.shb()
	w.idb(drivers.LinkEthernet, 65535, w.option(optIfTsresol, []byte{9}))
	for _, p := range pk {
		w.epb(0, uint64(p.ci.Timestamp), p.data, uint32(p.ci.Length))
	}
	return w.b.Bytes()
}

func TestPcapngRoundTrip(t *testing.T) {
	pk := testPackets(100)
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		r, err := NewReader(bytes.NewReader(buildPcapng(order, pk)), "rt.pcapng")
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pk {
			data, ci, err := r.Next()
			if err != nil {
				t.Fatalf("%v packet %d: %v", order, i, err)
			}
			if ci.Timestamp != p.ci.Timestamp || ci.Length != p.ci.Length || !bytes.Equal(data, p.data) {
				t.Fatalf("%v packet %d: %+v", order, i, ci)
			}
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

// TestPcapngFeatures covers several sections of both byte orders, many
// interfaces, timestamp resolutions and offsets, names, direction flags,
// simple and obsolete packet blocks, and skipped unknown blocks.
func TestPcapngFeatures(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	data := []byte{0x45, 0, 0, 20, 9, 9, 9, 9, 9, 9}
	w := &ngWriter{order: le}
	w.shb()
	w.block(0x00000bad, []byte("custom block, skipped"))
	w.idb(drivers.LinkEthernet, 0, w.option(optIfName, []byte("eth0")))                                      // if 0: µs
	w.idb(drivers.LinkRaw, 0, w.option(optIfTsresol, []byte{0x80 | 20}), w.option(optIfTsoff, u64(le, 100))) // if 1: 2^-20 s, +100 s
	w.idb(drivers.LinkLinuxSLL, 4, w.option(optIfTsresol, []byte{3}))                                        // if 2: ms, snaplen 4
	w.epb(0, 1_500_000_000_123_456, data, 10, w.option(optEPBFlags, u32(le, 1)))
	w.epb(1, 3<<20|1<<19, data, 10, w.option(optEPBFlags, u32(le, 2)))
	w.block(5, make([]byte, 20)) // interface statistics, skipped
	w.epb(2, 1_500_000_000_123, data[:4], 10)
	spb := append(u32(le, 10), data...)
	w.block(blockSPB, spb) // simple packet block: interface 0, no timestamp
	pb := make([]byte, 20)
	le.PutUint16(pb[0:], 1)
	le.PutUint16(pb[2:], 7) // drops
	le.PutUint32(pb[8:], 5<<20)
	le.PutUint32(pb[12:], 10)
	le.PutUint32(pb[16:], 10)
	pb = append(pb, data...)
	pb = append(pb, 0, 0)
	pb = append(pb, w.option(optEPBFlags, u32(le, 2))...)
	w.block(blockPB, pb)
	raw := w.b.Bytes()
	// Second section, big-endian; interface ids restart at 0.
	w2 := &ngWriter{order: be}
	w2.shb()
	w2.idb(drivers.LinkIPv4, 65535, w2.option(optIfTsresol, []byte{9}), w2.option(optIfName, []byte("wan\x00")))
	w2.epb(0, 42, data, 10)
	raw = append(raw, w2.b.Bytes()...)

	for _, name := range []string{"plain", "gzip"} {
		t.Run(name, func(t *testing.T) {
			in := raw
			if name == "gzip" {
				in = gzipBytes(t, raw)
			}
			r, err := NewReader(bytes.NewReader(in), "f.pcapng")
			if err != nil {
				t.Fatal(err)
			}
			if n := len(r.Interfaces()); n != 3 {
				t.Fatalf("%d interfaces known after open, want 3", n)
			}
			want := []drivers.CaptureInfo{
				{Timestamp: 1_500_000_000_123_456_000, CaptureLength: 10, Length: 10, LinkType: drivers.LinkEthernet, Interface: 0, Direction: drivers.DirIn},
				{Timestamp: 103_500_000_000, CaptureLength: 10, Length: 10, LinkType: drivers.LinkRaw, Interface: 1, Direction: drivers.DirOut},
				{Timestamp: 1_500_000_000_123_000_000, CaptureLength: 4, Length: 10, LinkType: drivers.LinkLinuxSLL, Interface: 2},
				{Timestamp: 0, CaptureLength: 10, Length: 10, LinkType: drivers.LinkEthernet, Interface: 0},
				{Timestamp: 105_000_000_000, CaptureLength: 10, Length: 10, LinkType: drivers.LinkRaw, Interface: 1, Direction: drivers.DirOut},
				{Timestamp: 42, CaptureLength: 10, Length: 10, LinkType: drivers.LinkIPv4, Interface: 3},
			}
			for i, w := range want {
				got, ci, err := r.Next()
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if ci != w || !bytes.Equal(got, data[:ci.CaptureLength]) {
					t.Fatalf("packet %d:\n got %+v\nwant %+v", i, ci, w)
				}
			}
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("end: %v", err)
			}
			ifs := r.Interfaces()
			names := []string{"eth0", "f.pcapng#1", "f.pcapng#2", "wan"}
			for i, n := range names {
				if ifs[i].Name != n {
					t.Errorf("interface %d named %q, want %q", i, ifs[i].Name, n)
				}
			}
			if s := r.Stats(); s.Packets != 6 || s.Drops != 7 || s.Errors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func gzipBytes(t testing.TB, raw []byte) []byte {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	return zb.Bytes()
}

func TestPcapngErrors(t *testing.T) {
	le := binary.LittleEndian
	data := []byte{1, 2, 3, 4, 5, 6}
	t.Run("unsupported-once", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		w.idb(drivers.LinkEthernet, 0)
		w.idb(127, 0)
		w.epb(0, 1, data, 6)
		w.epb(1, 2, data, 6)
		w.epb(1, 3, data, 6)
		w.epb(0, 4, data, 6)
		r, err := NewReader(bytes.NewReader(w.b.Bytes()), "capture.pcapng")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		_, _, err = r.Next()
		const want = "pcapfile: capture.pcapng: unsupported link type 127 (IEEE802_11_RADIOTAP)"
		if err == nil || err.Error() != want {
			t.Fatalf("got %v, want %q", err, want)
		}
		// The third packet (same interface) is skipped, counted.
		_, ci, err := r.Next()
		if err != nil || ci.Timestamp != 4000 {
			t.Fatalf("after unsupported: %+v %v", ci, err)
		}
		if c := r.ErrorCounts(); c.UnsupportedLink != 2 || r.Stats().Errors != 2 {
			t.Fatalf("counts %+v", c)
		}
	})
	t.Run("bad-interface", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		w.idb(drivers.LinkEthernet, 0)
		w.epb(3, 1, data, 6)
		w.epb(0, 2, data, 6)
		r, _ := NewReader(bytes.NewReader(w.b.Bytes()), "b.pcapng")
		_, _, err := r.Next()
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonBadInterface || e.Offset != 28+20 {
			t.Fatalf("got %v", err)
		}
		if _, ci, err := r.Next(); err != nil || ci.Timestamp != 2000 {
			t.Fatalf("not resumed: %v", err)
		}
	})
	t.Run("trailer-mismatch", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		w.idb(drivers.LinkEthernet, 0)
		w.epb(0, 1, data, 6)
		raw := w.b.Bytes()
		raw[len(raw)-1] = 0x7f
		r, _ := NewReader(bytes.NewReader(raw), "m.pcapng")
		_, _, err := r.Next()
		if err == nil || !strings.Contains(err.Error(), "m.pcapng: offset 48: block type 0x6: trailing length") {
			t.Fatalf("got %v", err)
		}
		if _, _, err2 := r.Next(); err2 != err {
			t.Fatalf("not sticky: %v", err2)
		}
	})
	t.Run("truncated-final", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		w.idb(drivers.LinkEthernet, 0)
		w.epb(0, 1, data, 6)
		w.epb(0, 2, data, 6)
		raw := w.b.Bytes()
		r, _ := NewReader(bytes.NewReader(raw[:len(raw)-9]), "t.pcapng")
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		_, _, err := r.Next()
		if !errors.Is(err, io.ErrUnexpectedEOF) || r.Stats().Errors != 1 || r.ErrorCounts().Truncated != 1 {
			t.Fatalf("got %v, %+v", err, r.ErrorCounts())
		}
	})
	t.Run("huge-block", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		w.idb(drivers.LinkEthernet, 0)
		raw := w.b.Bytes()
		raw = append(raw, u32(le, blockEPB)...)
		raw = append(raw, u32(le, 0xfffffff0)...)
		r, _ := NewReader(bytes.NewReader(raw), "h.pcapng")
		_, _, err := r.Next()
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonOversize || cap(r.buf) > 1<<20 {
			t.Fatalf("got %v (buffer %d)", err, cap(r.buf))
		}
	})
	t.Run("version", func(t *testing.T) {
		w := &ngWriter{order: le}
		w.shb()
		raw := w.b.Bytes()
		raw[12] = 2
		_, err := NewReader(bytes.NewReader(raw), "v.pcapng")
		if err == nil || !strings.Contains(err.Error(), "unsupported version 2.0") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestOpenFile checks Open and Close on a real file with a name that
// says nothing of its gzip compression.
func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capture.pcap")
	raw := gzipBytes(t, writePcap(t, testPackets(3), drivers.LinkNull, false))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, ci, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil || ci.LinkType != drivers.LinkNull {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d packets", n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil {
		t.Fatal("Next after Close succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.pcap")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
