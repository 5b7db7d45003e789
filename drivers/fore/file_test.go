package fore

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/erf"
	"github.com/mira-project/mira/tools/peertest"
)

type pkt struct {
	data []byte
	ci   drivers.CaptureInfo
}

func readAll(t *testing.T, src drivers.Source) []pkt {
	t.Helper()
	var out []pkt
	for {
		data, ci, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != ci.CaptureLength || ci.CaptureLength > ci.Length || !ci.HasVC {
			t.Fatalf("packet %d: %d bytes, caplen %d, len %d, hasVC %v", len(out), len(data), ci.CaptureLength, ci.Length, ci.HasVC)
		}
		out = append(out, pkt{bytes.Clone(data), ci})
	}
}

// tcpdumpLengths reads the IP lengths tcpdump printed for the converted
// SunATM pcap ("ethertype IPv4 (0x0800), length N:").
func tcpdumpLengths(t *testing.T) []int {
	f, err := os.Open(corpus(t, "pcaps/converted/auckland-legacyatm-sunatm.pcap.tcpdump-e.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`VPI:10 VCI:103 .*ethertype IPv4 \(0x0800\), length (\d+):`)
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected tcpdump line %q", sc.Text())
		}
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// TestAucklandFirstCells reads the legacy Auckland cells and their ERF
// conversion: both are detected as first-cell captures and give 100
// truncated IPv4 packets on VC 10/103 whose wire lengths are those tcpdump
// printed for the same cells.
func TestAucklandFirstCells(t *testing.T) {
	want := tcpdumpLengths(t)
	if len(want) != 100 {
		t.Fatalf("%d tcpdump lines", len(want))
	}
	var prev []pkt
	for _, name := range []string{"atm/libtrace-traces/legacyatm.gz", "pcaps/converted/auckland-legacyatm-type3.erf"} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := OpenFile(corpus(t, name), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if !src.FirstCell() {
				t.Fatal("not detected as a first-cell capture")
			}
			got := readAll(t, src)
			if len(got) != 100 {
				t.Fatalf("%d packets, want 100", len(got))
			}
			truncated := 0
			for i, p := range got {
				if p.ci.VPI != 10 || p.ci.VCI != 103 || p.ci.LinkType != drivers.LinkRaw || p.data[0] != 0x45 {
					t.Fatalf("packet %d: VC %d/%d link %v first byte %x", i, p.ci.VPI, p.ci.VCI, p.ci.LinkType, p.data[0])
				}
				if p.ci.Length != want[i] {
					t.Errorf("packet %d: length %d, tcpdump says %d", i, p.ci.Length, want[i])
				}
				if p.ci.CaptureLength < p.ci.Length {
					truncated++
				}
				if prev != nil && (!bytes.Equal(prev[i].data, p.data) || prev[i].ci.Timestamp != p.ci.Timestamp) {
					t.Fatalf("packet %d differs between legacy and ERF", i)
				}
			}
			st := src.ATMStats()
			if st.FirstCells != 100 || st.Truncated != uint64(truncated) || st.Frames != 100 || st.Drops.Total() != 0 {
				t.Fatalf("stats: first cells %d (truncated %d) frames %d drops %v", st.FirstCells, truncated, st.Frames, st.Drops)
			}
			if s := src.Stats(); s.Packets != 100 || s.Errors != 0 {
				t.Fatalf("source stats %+v", s)
			}
			t.Logf("%d of 100 packets truncated to their first cell", truncated)
			prev = got
		})
	}
}

// TestLargeLegacyERF reads libtrace's large_legacy.gz (really ERF
// TYPE_ATM, uncompressed, first cells) through Open.
func TestLargeLegacyERF(t *testing.T) {
	path := corpus(t, "atm/libtrace-traces/large_legacy.gz")
	if _, err := OpenLegacyATM(path); !errors.Is(err, ErrNotATM) {
		t.Fatalf("OpenLegacyATM on an ERF file: %v", err)
	}
	src, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.FirstCell() {
		t.Fatal("not detected as first cells")
	}
	got := readAll(t, src)
	vcs := map[[2]uint16]int{}
	for _, p := range got {
		vcs[[2]uint16{p.ci.VPI, p.ci.VCI}]++
		if p.ci.Interface != 1 {
			t.Fatalf("interface %d, want 1", p.ci.Interface)
		}
	}
	st := src.ATMStats()
	// Every record is delivered or counted.
	if uint64(len(got))+st.Drops.Total() != 31249 {
		t.Fatalf("%d packets + %d drops (%v) != 31249 records", len(got), st.Drops.Total(), st.Drops)
	}
	if vcs[[2]uint16{10, 103}] == 0 || len(vcs) > 3 {
		t.Fatalf("VCs %v", vcs)
	}
	t.Logf("%d packets, VCs %v, drops %v", len(got), vcs, st.Drops)
}

func TestOpenRejects(t *testing.T) {
	if _, err := OpenERF(corpus(t, "atm/libtrace-traces/legacyatm.gz")); !errors.Is(err, ErrNotATM) {
		t.Fatalf("OpenERF on a legacy file: %v", err)
	}
	for _, name := range []string{"atm-heapoverflow.pcap", "atm-oam-loopback-print-overrun.pcap", "heap-overflow-2.pcap"} {
		if _, err := Open(corpus(t, "atm/tcpdump-tests/"+name)); !errors.Is(err, ErrNotATM) {
			t.Errorf("%s: %v, want ErrNotATM", name, err)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent.erf")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent file: %v", err)
	}
}

// writeERF writes records of the given type to path.
func appendERF(dst []byte, ts int64, typ uint8, wlen int, body []byte) []byte {
	rlen := 16 + len(body)
	rlen = (rlen + 7) &^ 7
	dst = binary.LittleEndian.AppendUint64(dst, erf.MakeTimestamp(ts))
	dst = append(dst, typ, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(rlen))
	dst = binary.BigEndian.AppendUint16(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(wlen))
	dst = append(dst, body...)
	return append(dst, make([]byte, rlen-16-len(body))...)
}

// TestSyntheticERF segments real corpus packets into interleaved full cell
// streams on two VCs, writes them as gzip-compressed ERF TYPE_ATM, adds
// TYPE_AAL5 records (with and without trailer), and reads them back.
func TestSyntheticERF(t *testing.T) {
	ips := ipPackets(ethernetFrames(t, corpus(t, "pcaps/ndpi/1kxun.pcap")))[:300]
	type vcq struct{ cells [][]byte }
	qs := []vcq{{}, {}}
	for i, ip := range ips {
		h := atm.Header{VPI: 1, VCI: uint16(40 + i%2)}.UNI()
		recs := atm.AppendRecords(nil, h, atm.AppendEncap(nil, atm.EncapLLC, drivers.LinkRaw, ip), 0, 0)
		for off := 0; off < len(recs); off += atm.RecordSize {
			qs[i%2].cells = append(qs[i%2].cells, recs[off:off+atm.RecordSize])
		}
	}
	var raw []byte
	ts := int64(1_700_000_000_000_000_000)
	for len(qs[0].cells)+len(qs[1].cells) > 0 {
		for q := range qs {
			if len(qs[q].cells) > 0 {
				ts += 2831
				raw = appendERF(raw, ts, erf.TypeATM, 53, qs[q].cells[0])
				qs[q].cells = qs[q].cells[1:]
			}
		}
	}
	// Two AAL5 records: SDU with trailer, SDU without.
	sdu := atm.AppendEncap(nil, atm.EncapLLC, drivers.LinkRaw, ips[0])
	var pdu []byte
	recs := atm.AppendRecords(nil, 0, sdu, 0, 0)
	for off := 0; off < len(recs); off += atm.RecordSize {
		pdu = append(pdu, recs[off+4:off+atm.RecordSize]...)
	}
	h := binary.BigEndian.AppendUint32(nil, atm.Header{VPI: 2, VCI: 50, PTI: 1}.UNI())
	raw = appendERF(raw, ts+1, erf.TypeAAL5, len(pdu), append(h, pdu...))
	raw = appendERF(raw, ts+2, erf.TypeAAL5, len(sdu), append(h, sdu...))
	raw = appendERF(raw, ts+3, erf.TypeMeta, 0, make([]byte, 40)) // skipped

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	path := filepath.Join(t.TempDir(), "synthetic.erf.gz")
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.FirstCell() {
		t.Fatal("full cell stream detected as first cells")
	}
	got := readAll(t, src)
	if len(got) != len(ips)+2 {
		t.Fatalf("%d packets, want %d", len(got), len(ips)+2)
	}
	// Per VC, packets come back in order.
	next := [2]int{0, 1}
	for _, p := range got[:len(ips)] {
		q := int(p.ci.VCI) - 40
		if p.ci.VPI != 1 || q < 0 || q > 1 {
			t.Fatalf("VC %d/%d", p.ci.VPI, p.ci.VCI)
		}
		if !bytes.Equal(p.data, ips[next[q]]) || p.ci.Length != len(ips[next[q]]) {
			t.Fatalf("VC %d packet %d differs", p.ci.VCI, next[q])
		}
		next[q] += 2
	}
	for _, p := range got[len(ips):] {
		if !bytes.Equal(p.data, ips[0]) || p.ci.VPI != 2 || p.ci.VCI != 50 {
			t.Fatalf("AAL5 record: VC %d/%d %d bytes", p.ci.VPI, p.ci.VCI, len(p.data))
		}
	}
	if src.SkippedRecords() != 1 || src.Stats().Errors != 0 {
		t.Fatalf("skipped %d, stats %+v", src.SkippedRecords(), src.Stats())
	}
	if vs := src.proc.VCStats(atm.MakeVC(1, 41)); vs.Frames != uint64(len(ips)/2) {
		t.Fatalf("VC 1/41 frames %d", vs.Frames)
	}

	// The same file cut in the middle of a record: packets up to there,
	// then an error naming the offset.
	cut := filepath.Join(t.TempDir(), "cut.erf")
	os.WriteFile(cut, raw[:len(raw)/2+3], 0o644)
	src2, err := OpenFile(cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	for {
		_, _, err = src2.Next()
		if err != nil {
			break
		}
	}
	var fe *erf.FormatError
	if !errors.As(err, &fe) || !errors.Is(err, erf.ErrTruncated) {
		t.Fatalf("cut file: %v", err)
	}
	if src2.Stats().Errors == 0 || src2.ATMStats().Drops[atm.ReasonFlushed] == 0 {
		t.Fatalf("cut file stats %+v %v", src2.Stats(), src2.ATMStats().Drops)
	}
}

func FuzzOpen(f *testing.F) {
	for _, name := range []string{"pcaps/converted/auckland-legacyatm-type3.erf", "atm/libtrace-traces/legacyatm.gz"} {
		if b, err := os.ReadFile(corpus(f, name)); err == nil {
			f.Add(b[:min(len(b), 400)])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		src, err := openWith("fuzz", open, 0, nil)
		if err != nil {
			return
		}
		defer src.Close()
		for range 100000 {
			d, ci, err := src.Next()
			if err != nil {
				return
			}
			if len(d) != ci.CaptureLength || ci.CaptureLength > ci.Length {
				t.Fatalf("caplen %d len %d data %d", ci.CaptureLength, ci.Length, len(d))
			}
		}
		t.Fatal("source did not end")
	})
}

// TestERFEthernet reads libtrace's Ethernet ERF files and checks every
// record's lengths against tshark reading the same file.
func TestERFEthernet(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	for _, name := range []string{"5_packets.erf", "100_packets.erf", "fragtest.erf"} {
		t.Run(name, func(t *testing.T) {
			path := corpus(t, "pcaps/libtrace/"+name)
			out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			src, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			n := 0
			for ; ; n++ {
				data, ci, err := src.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n >= len(lines) {
					t.Fatalf("more packets than tshark's %d", len(lines))
				}
				var flen, clen int
				var epoch float64
				if _, err := fmt.Sscanf(lines[n], "%d\t%d\t%f", &flen, &clen, &epoch); err != nil {
					t.Fatalf("tshark line %q: %v", lines[n], err)
				}
				if ci.LinkType != drivers.LinkEthernet || ci.HasVC || ci.Length != flen-4 || len(data) != min(clen, flen-4) {
					t.Fatalf("packet %d: link %v len %d caplen %d; tshark frame.len %d cap_len %d", n, ci.LinkType, ci.Length, len(data), flen, clen)
				}
				if d := float64(ci.Timestamp)/1e9 - epoch; d > 1e-5 || d < -1e-5 {
					t.Fatalf("packet %d: time %d, tshark %f", n, ci.Timestamp, epoch)
				}
			}
			if n != len(lines) {
				t.Fatalf("%d packets, tshark %d", n, len(lines))
			}
		})
	}
}

// TestFirstCellWithSingleCellPDUs writes an ERF capture of first cells
// where small packets are whole single-cell PDUs (end bit set): it must
// still be detected as first cells, and each packet reported with its
// real length.
func TestFirstCellWithSingleCellPDUs(t *testing.T) {
	ips := ipPackets(ethernetFrames(t, corpus(t, "pcaps/ndpi/1kxun.pcap")))[:200]
	small := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 53, 0, 53, 0, 8, 0, 0}
	var raw []byte
	var want []int
	for i, ip := range ips {
		if i%3 == 0 {
			ip = small
		}
		recs := atm.AppendRecords(nil, atm.Header{VPI: 4, VCI: 44}.UNI(), atm.AppendEncap(nil, atm.EncapLLC, drivers.LinkRaw, ip), 0, 0)
		raw = appendERF(raw, int64(i+1)*1000, erf.TypeATM, 53, recs[:atm.RecordSize])
		want = append(want, len(ip))
	}
	path := filepath.Join(t.TempDir(), "first.erf")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !src.FirstCell() {
		t.Fatal("not detected as first cells")
	}
	got := readAll(t, src)
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d (drops %v)", len(got), len(want), src.ATMStats().Drops)
	}
	for i, p := range got {
		if p.ci.Length != want[i] {
			t.Fatalf("packet %d: length %d, want %d", i, p.ci.Length, want[i])
		}
	}
	if st := src.ATMStats(); st.PDUs == 0 || st.FirstCells == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFileSourceNoAllocs(t *testing.T) {
	for _, name := range []string{"atm/libtrace-traces/large_legacy.gz", "pcaps/libtrace/fragtest.erf"} {
		src, err := OpenFile(corpus(t, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			src.Next()
		}
		if a := testing.AllocsPerRun(1000, func() {
			if _, _, err := src.Next(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: %v allocations per packet", name, a)
		}
		src.Close()
	}
}
