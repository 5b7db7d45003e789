package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/drivers"
)

// packet is a test packet: its metadata and bytes.
type packet struct {
	ci   drivers.CaptureInfo
	data []byte
}

func testPackets(n int) []packet {
	pk := make([]packet, n)
	for i := range pk {
		size := 14 + (i*37)%1500
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i + j)
		}
		length := size
		if i%5 == 0 {
			length += 100 // cut by a snaplen
		}
		pk[i] = packet{
			ci:   drivers.CaptureInfo{Timestamp: 1_700_000_000_123_456_789 + int64(i)*1_000_003_007, Length: length},
			data: data,
		}
	}
	return pk
}

func writePcap(t testing.TB, pk []packet, link drivers.LinkType, nano bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewWriter(&b, link, 65535, nano)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pk {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestWriterRoundTrip(t *testing.T) {
	pk := testPackets(200)
	for _, nano := range []bool{false, true} {
		raw := writePcap(t, pk, drivers.LinkEthernet, nano)
		r, err := NewReader(bytes.NewReader(raw), "rt.pcap")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Interfaces(); len(got) != 1 || got[0].LinkType != drivers.LinkEthernet || got[0].Snaplen != 65535 {
			t.Fatalf("interfaces %+v", got)
		}
		for i, p := range pk {
			data, ci, err := r.Next()
			if err != nil {
				t.Fatalf("nano=%v packet %d: %v", nano, i, err)
			}
			want := p.ci.Timestamp
			if !nano {
				want -= want % 1000
			}
			if ci.Timestamp != want || ci.Length != p.ci.Length || ci.CaptureLength != len(p.data) || !bytes.Equal(data, p.data) {
				t.Fatalf("nano=%v packet %d: got %+v, want ts %d len %d caplen %d", nano, i, ci, want, p.ci.Length, len(p.data))
			}
			if ci.LinkType != drivers.LinkEthernet {
				t.Fatalf("link type %d", ci.LinkType)
			}
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Fatalf("after last packet: %v, want io.EOF", err)
		}
		s := r.Stats()
		if s.Packets != 200 || s.Errors != 0 {
			t.Fatalf("stats %+v", s)
		}
	}
}

// TestWriterTshark checks a written file with tshark, a second reader.
func TestWriterTshark(t *testing.T) {
	tshark := needTshark(t)
	pk := testPackets(20)
	for _, nano := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "w.pcap")
		if err := os.WriteFile(path, writePcap(t, pk, drivers.LinkEthernet, nano), 0o644); err != nil {
			t.Fatal(err)
		}
		want, ok, stderr := tsharkRecords(t, tshark, path)
		if !ok {
			t.Fatalf("tshark: %s", stderr)
		}
		if len(want) != len(pk) {
			t.Fatalf("tshark read %d packets, wrote %d", len(want), len(pk))
		}
		for i, p := range pk {
			ts := p.ci.Timestamp
			if !nano {
				ts -= ts % 1000
			}
			if w := want[i]; w.ts != ts || w.length != p.ci.Length || w.caplen != len(p.data) {
				t.Fatalf("nano=%v packet %d: tshark %v", nano, i, w)
			}
		}
	}
}

func TestWriterZeroLength(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewWriter(&b, drivers.LinkRaw, 0, false)
	if err := w.WritePacket(drivers.CaptureInfo{Timestamp: 5e9}, []byte{0x45, 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(drivers.CaptureInfo{Length: 1}, []byte{1, 2}); err == nil {
		t.Fatal("original length below captured length accepted")
	}
	r, err := NewReader(&b, "z")
	if err != nil {
		t.Fatal(err)
	}
	_, ci, err := r.Next()
	if err != nil || ci.Length != 2 || ci.Timestamp != 5e9 || r.Interfaces()[0].Snaplen != maxSnaplen {
		t.Fatalf("%+v %v %+v", ci, err, r.Interfaces())
	}
}

func TestWriterNoAllocs(t *testing.T) {
	w, _ := NewWriter(io.Discard, drivers.LinkEthernet, 65535, true)
	data := make([]byte, 1500)
	ci := drivers.CaptureInfo{Timestamp: 1e18}
	if n := testing.AllocsPerRun(1000, func() {
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("WritePacket allocates %v times", n)
	}
}

func pcapHeader(order binary.ByteOrder, magic uint32, snaplen uint32, link uint32) []byte {
	h := make([]byte, 24)
	order.PutUint32(h[0:], magic)
	order.PutUint16(h[4:], 2)
	order.PutUint16(h[6:], 4)
	order.PutUint32(h[16:], snaplen)
	order.PutUint32(h[20:], link)
	return h
}

func pcapRecord(order binary.ByteOrder, sec, frac, caplen, length uint32, data []byte) []byte {
	h := make([]byte, 16, 16+len(data))
	order.PutUint32(h[0:], sec)
	order.PutUint32(h[4:], frac)
	order.PutUint32(h[8:], caplen)
	order.PutUint32(h[12:], length)
	return append(h, data...)
}

func TestPcapVariants(t *testing.T) {
	data := []byte{0x45, 0, 0, 20, 1, 2, 3, 4}
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		frac  uint32
		want  int64
	}{
		{"le-micro", binary.LittleEndian, magicMicro, 123456, 7e9 + 123456000},
		{"be-micro", binary.BigEndian, magicMicro, 123456, 7e9 + 123456000},
		{"le-nano", binary.LittleEndian, magicNano, 123456789, 7e9 + 123456789},
		{"be-nano", binary.BigEndian, magicNano, 123456789, 7e9 + 123456789},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := append(pcapHeader(tc.order, tc.magic, 96, 101), pcapRecord(tc.order, 7, tc.frac, 8, 60, data)...)
			r, err := NewReader(bytes.NewReader(raw), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			got, ci, err := r.Next()
			if err != nil || ci.Timestamp != tc.want || ci.Length != 60 || ci.CaptureLength != 8 || ci.LinkType != drivers.LinkRaw || !bytes.Equal(got, data) {
				t.Fatalf("%+v %v", ci, err)
			}
		})
	}
}

func TestPcapErrors(t *testing.T) {
	le := binary.LittleEndian
	good := pcapRecord(le, 1, 0, 4, 4, []byte{1, 2, 3, 4})
	t.Run("unsupported", func(t *testing.T) {
		_, err := NewReader(bytes.NewReader(pcapHeader(le, magicMicro, 65535, 127)), "capture.pcap")
		const want = "pcapfile: capture.pcap: unsupported link type 127 (IEEE802_11_RADIOTAP)"
		if err == nil || err.Error() != want || !errors.Is(err, ErrUnsupportedLinkType) {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("bad-magic", func(t *testing.T) {
		_, err := NewReader(strings.NewReader("hello world, this is not a capture"), "x.pcap")
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonBadMagic || !strings.Contains(err.Error(), "x.pcap") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		raw := append(pcapHeader(le, magicMicro, 65535, 1), good...)
		raw = append(raw, good[:10]...)
		r, err := NewReader(bytes.NewReader(raw), "t.pcap")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		_, _, err = r.Next()
		var e *Error
		if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &e) || e.Offset != 24+20 {
			t.Fatalf("got %v", err)
		}
		if !strings.Contains(err.Error(), "t.pcap: offset 44") {
			t.Fatalf("error %q does not name file and offset", err)
		}
		if _, _, err2 := r.Next(); err2 != err {
			t.Fatalf("second call: %v", err2)
		}
		if s := r.Stats(); s.Errors != 1 || s.Packets != 1 || r.ErrorCounts().Truncated != 1 {
			t.Fatalf("stats %+v %+v", s, r.ErrorCounts())
		}
	})
	t.Run("oversize", func(t *testing.T) {
		raw := append(pcapHeader(le, magicMicro, 65535, 1), good...)
		raw = append(raw, pcapRecord(le, 1, 0, 0x7fffffff, 0x7fffffff, nil)...)
		r, _ := NewReader(bytes.NewReader(raw), "o.pcap")
		r.Next()
		allocs := testing.AllocsPerRun(1, func() { r.Next() })
		_, _, err := r.Next()
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonOversize || e.Offset != 44 || r.ErrorCounts().Oversize != 1 {
			t.Fatalf("got %v %+v", err, r.ErrorCounts())
		}
		if allocs > 0 || cap(r.buf) > 1<<20 {
			t.Fatalf("oversize record allocated (buffer %d)", cap(r.buf))
		}
	})
	t.Run("snaplen-slack", func(t *testing.T) {
		// A caplen a little over the snaplen is accepted (tshark does),
		// one far over it is not.
		raw := append(pcapHeader(le, magicMicro, 64, 1), pcapRecord(le, 1, 0, 100, 100, make([]byte, 100))...)
		raw = append(raw, pcapRecord(le, 1, 0, 64+snapSlack+1, 64+snapSlack+1, nil)...)
		r, _ := NewReader(bytes.NewReader(raw), "s.pcap")
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "exceeds limit") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestNextNoAllocs guards the hot path: Next allocates nothing per packet.
func TestNextNoAllocs(t *testing.T) {
	pk := testPackets(3000)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"pcap", writePcap(t, pk, drivers.LinkEthernet, true)},
		{"pcapng", buildPcapng(binary.LittleEndian, pk)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.raw), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			// Warm up: let the buffer reach the largest packet size.
			for i := 0; i < 1000; i++ {
				if _, _, err := r.Next(); err != nil {
					t.Fatal(err)
				}
			}
			if n := testing.AllocsPerRun(1000, func() {
				if _, _, err := r.Next(); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Fatalf("Next allocates %v times per packet", n)
			}
		})
	}
}

// BenchmarkNext reads a generated 100,000-packet file.
func BenchmarkNext(b *testing.B) {
	for _, ng := range []bool{false, true} {
		name := "pcap"
		if ng {
			name = "pcapng"
		}
		b.Run(name, func(b *testing.B) {
			pk := testPackets(100_000)
			var raw []byte
			if ng {
				raw = buildPcapng(binary.LittleEndian, pk)
			} else {
				raw = writePcap(b, pk, drivers.LinkEthernet, true)
			}
			path := filepath.Join(b.TempDir(), "bench."+name)
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				b.Fatal(err)
			}
			r, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw) / len(pk)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _, err := r.Next()
				if err == io.EOF {
					b.StopTimer()
					r.Close()
					if r, err = Open(path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			r.Close()
		})
	}
}
