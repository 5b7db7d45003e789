package pcapfile

import (
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
	"github.com/mira-project/mira/tools/peertest"
)

// corpusDir returns the pcaps folder of the corpus the sweeps walk: the
// wide one in ../shared when it is there, else the captures shipped in
// testdata/corpus.
func corpusDir(t testing.TB) string {
	t.Helper()
	return peertest.Corpus(t, "pcaps")
}

func needTshark(t testing.TB) string {
	t.Helper()
	return peertest.Program(t, "tshark")
}

// captureFiles lists every capture under dir, recursively.
func captureFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		n := strings.TrimSuffix(d.Name(), ".gz")
		switch filepath.Ext(n) {
		case ".pcap", ".pcapng", ".cap":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no captures under %s", dir)
	}
	return files
}

// rec is one packet as both tshark and the reader describe it.
type rec struct {
	ts             int64 // ns since the epoch
	length, caplen int
	iface          int
}

func (r rec) String() string {
	return fmt.Sprintf("ts=%d len=%d caplen=%d if=%d", r.ts, r.length, r.caplen, r.iface)
}

// tsharkRecords runs tshark on the file and parses its per-packet fields.
// ok is false when tshark reported an error reading the file.
func tsharkRecords(t *testing.T, tshark, path string) (recs []rec, ok bool, stderr string) {
	t.Helper()
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "fields",
		"-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.interface_id", "-e", "frame.encap_type")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("tshark %s: unexpected line %q", path, line)
		}
		if f[4] == "" {
			// Not a packet: tshark 4 also lists pcapng custom and
			// other non-packet blocks as frames.
			continue
		}
		var r rec
		var err error
		// A packet without a timestamp (simple packet block) has an
		// empty time field; the reader gives it timestamp 0.
		if r.ts, err = parseEpoch(f[0]); f[0] != "" && err != nil {
			t.Fatalf("tshark %s: %v", path, err)
		}
		r.length, _ = strconv.Atoi(f[1])
		r.caplen, _ = strconv.Atoi(f[2])
		if f[3] != "" {
			r.iface, _ = strconv.Atoi(f[3])
		}
		recs = append(recs, r)
	}
	return recs, runErr == nil && !strings.Contains(errb.String(), "tshark:"), errb.String()
}

// parseEpoch parses tshark's frame.time_epoch ("1355337485.364436000").
func parseEpoch(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	// tshark prints nanoseconds with %09d: more digits mean a fraction
	// that was out of range in the file.
	if len(frac) < 9 {
		frac += strings.Repeat("0", 9-len(frac))
	}
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	v := sec*1e9 + ns
	if neg {
		v = -v
	}
	return v, nil
}

// readAll reads every packet the reader delivers, continuing after
// errors that keep the framing, and returns the first error seen.
func readAll(r *Reader) (recs []rec, firstErr error) {
	for i := 0; ; i++ {
		data, ci, err := r.Next()
		if err == io.EOF {
			return recs, firstErr
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			var fe *Error
			if errors.As(err, &fe) && r.err != nil {
				return recs, firstErr // sticky: framing lost
			}
			continue
		}
		if len(data) != ci.CaptureLength {
			panic(fmt.Sprintf("packet %d: %d bytes, CaptureLength %d", i, len(data), ci.CaptureLength))
		}
		// tshark 4 numbers interfaces within each pcapng section.
		x := rec{ts: ci.Timestamp, length: ci.Length, caplen: ci.CaptureLength, iface: ci.Interface - r.sectionIdx}
		if ci.LinkType == drivers.LinkSunATM {
			// tshark does not count the 4-byte SunATM pseudo-header.
			x.length -= 4
			x.caplen -= 4
		}
		recs = append(recs, x)
	}
}

var unsupportedRE = regexp.MustCompile(`^pcapfile: [^:]+: unsupported link type [0-9]+ \([A-Z0-9_]+|unknown\)$`)

// TestCorpusMatchesTshark reads every capture of the corpus and
// compares each packet with what tshark reports for it.
func TestCorpusMatchesTshark(t *testing.T) {
	tshark := needTshark(t)
	dir := corpusDir(t)
	files := captureFiles(t, dir)
	gopacket := captureFiles(t, filepath.Join(dir, "gopacket"))
	if len(gopacket) < 50 {
		t.Fatalf("only %d gopacket pcapng vectors", len(gopacket))
	}
	var matched, unsupported, tsharkFailed, tried int
	for i, path := range files {
		rel, _ := filepath.Rel(dir, path)
		// tshark takes about 0.3 s a file: -short checks every tenth
		// file and every pcapng.
		if testing.Short() && i%10 != 0 && !strings.Contains(rel, "pcapng") {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			tried++
			want, ok, stderr := tsharkRecords(t, tshark, path)
			r, err := Open(path)
			var ule *UnsupportedLinkError
			switch {
			case errors.As(err, &ule):
				checkUnsupported(t, ule, err)
				unsupported++
				return
			case err != nil && !ok:
				tsharkFailed++
				return // both refuse the file
			case err != nil:
				t.Fatalf("open: %v (tshark read %d packets)", err, len(want))
			}
			defer r.Close()
			got, rerr := readAll(r)
			if !ok {
				// tshark failed part-way: we must not panic, and what
				// we read before our own error must agree with tshark.
				tsharkFailed++
				t.Logf("tshark: %s; reader: %d packets, %v", strings.TrimSpace(stderr), len(got), rerr)
				return
			}
			if errors.As(rerr, &ule) {
				checkUnsupported(t, ule, rerr)
				unsupported++
				return
			}
			if rerr != nil {
				t.Fatalf("read: %v after %d packets (tshark read %d)", rerr, len(got), len(want))
			}
			fixInvalidFractions(t, path, want)
			compareRecs(t, got, want)
			matched++
		})
	}
	t.Logf("%d of %d files: %d match tshark, %d unsupported link type, %d tshark cannot read", tried, len(files), matched, unsupported, tsharkFailed)
	if matched < tried*3/4 {
		t.Errorf("only %d of %d files matched", matched, tried)
	}
}

func checkUnsupported(t *testing.T, ule *UnsupportedLinkError, err error) {
	t.Helper()
	if Supported(ule.LinkType) {
		t.Errorf("%v: link type %d is supported", err, ule.LinkType)
	}
	if !errors.Is(err, ErrUnsupportedLinkType) {
		t.Errorf("%v does not wrap ErrUnsupportedLinkType", err)
	}
	if !unsupportedRE.MatchString(err.Error()) {
		t.Errorf("unclear error %q", err)
	}
}

func compareRecs(t *testing.T, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d packets, tshark %d", len(got), len(want))
	}
	bad := 0
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("packet %d: got %v, tshark %v", i+1, got[i], want[i])
			if bad++; bad > 5 {
				t.FailNow()
			}
		}
	}
}

// TestGzipMatchesTshark compresses corpus files (pcap and pcapng) under
// names without a .gz suffix and checks the reader still matches tshark.
func TestGzipMatchesTshark(t *testing.T) {
	tshark := needTshark(t)
	dir := corpusDir(t)
	for _, rel := range []string{"gopacket/test_ethernet.pcap", "libtrace/complex.pcapng", "tcpdump/tcp-handshake-nano.pcap"} {
		t.Run(rel, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			zw.Write(raw)
			zw.Close()
			path := filepath.Join(t.TempDir(), "capture.bin")
			if err := os.WriteFile(path, zb.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			want, ok, stderr := tsharkRecords(t, tshark, path)
			if !ok {
				t.Fatalf("tshark: %s", stderr)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := readAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatal("tshark read no packets")
			}
			compareRecs(t, got, want)
		})
	}
}

// fixInvalidFractions replaces tshark's timestamps for classic pcap
// records whose fraction field is out of range (tshark overflows them):
// the reader must give seconds*1e9 + fraction*unit, read here by an
// independent walk over the record headers.
func fixInvalidFractions(t *testing.T, path string, want []rec) {
	raw, err := os.ReadFile(path)
	if err != nil || len(raw) < 24 {
		return
	}
	var order binary.ByteOrder
	var unit, max int64
	switch {
	case binary.LittleEndian.Uint32(raw) == magicMicro:
		order, unit, max = binary.LittleEndian, 1000, 1e6
	case binary.BigEndian.Uint32(raw) == magicMicro:
		order, unit, max = binary.BigEndian, 1000, 1e6
	case binary.LittleEndian.Uint32(raw) == magicNano:
		order, unit, max = binary.LittleEndian, 1, 1e9
	case binary.BigEndian.Uint32(raw) == magicNano:
		order, unit, max = binary.BigEndian, 1, 1e9
	default:
		return
	}
	off := 24
	for i := 0; i < len(want) && off+16 <= len(raw); i++ {
		sec := int64(order.Uint32(raw[off:]))
		frac := int64(order.Uint32(raw[off+4:]))
		if frac >= max {
			t.Logf("packet %d: fraction %d out of range, tshark shows %d", i+1, frac, want[i].ts)
			want[i].ts = sec*1e9 + frac*unit
		}
		off += 16 + int(order.Uint32(raw[off+8:]))
	}
}
