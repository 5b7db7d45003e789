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
	"github.com/mira-project/mira/tools/peertest"
)

// addCorpusSeeds adds the first KB of the corpus captures whose names
// match ext (../shared/corpus when present, else the captures shipped in
// testdata/corpus).
func addCorpusSeeds(f *testing.F, exts ...string) {
	dir := peertest.Corpus(f, "pcaps")
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		for _, e := range exts {
			if strings.HasSuffix(p, e) {
				raw, err := os.ReadFile(p)
				if err == nil {
					f.Add(raw[:min(len(raw), 1024)])
				}
			}
		}
		return nil
	})
}

// drain reads the input to its end and checks the reader's invariants.
// It returns the packets read.
func drain(t *testing.T, in []byte) []packet {
	r, err := NewReader(bytes.NewReader(in), "fuzz")
	if err != nil {
		if !strings.HasPrefix(err.Error(), "pcapfile: fuzz: ") {
			t.Fatalf("error does not name the input: %v", err)
		}
		return nil
	}
	var out []packet
	var errs uint64
	for i := 0; i < 10000; i++ {
		data, ci, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pcapfile: fuzz: ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			var e *Error
			if errors.As(err, &e) && e.Offset < 0 {
				t.Fatalf("negative offset: %v", err)
			}
			errs++
			if r.err != nil {
				break
			}
			continue
		}
		if len(data) != ci.CaptureLength || ci.CaptureLength > maxSnaplen {
			t.Fatalf("packet %d: %d bytes, CaptureLength %d", i, len(data), ci.CaptureLength)
		}
		if ci.Interface < 0 || ci.Interface >= len(r.Interfaces()) || !Supported(ci.LinkType) {
			t.Fatalf("packet %d: interface %d of %d, link %d", i, ci.Interface, len(r.Interfaces()), ci.LinkType)
		}
		out = append(out, packet{ci: ci, data: bytes.Clone(data)})
	}
	if s := r.Stats(); s.Errors < errs || s.Packets != uint64(len(out)) {
		t.Fatalf("stats %+v: %d errors returned, %d packets", s, errs, len(out))
	}
	return out
}

func FuzzPcap(f *testing.F) {
	le := binary.LittleEndian
	f.Add(append(pcapHeader(le, magicMicro, 65535, 1), pcapRecord(le, 1, 2, 4, 60, []byte{1, 2, 3, 4})...))
	f.Add(append(pcapHeader(binary.BigEndian, magicNano, 4, 101), pcapRecord(binary.BigEndian, 1, 2e9, 4, 4, []byte{0x45, 2, 3, 4})...))
	f.Add(append(pcapHeader(le, magicModified, 65535, 113), make([]byte, 24)...))
	addCorpusSeeds(f, ".pcap", ".cap")
	f.Fuzz(func(t *testing.T, in []byte) {
		pk := drain(t, in)
		if len(pk) == 0 {
			return
		}
		// Round trip through the writer (nanosecond resolution).
		var b bytes.Buffer
		w, err := NewWriter(&b, pk[0].ci.LinkType, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pk {
			if p.ci.Timestamp/1e9 > 0xfffffff0 || p.ci.Length < p.ci.CaptureLength {
				return // not representable in a pcap record
			}
			if err := w.WritePacket(p.ci, p.data); err != nil {
				t.Fatal(err)
			}
		}
		back := drain(t, b.Bytes())
		if len(back) != len(pk) {
			t.Fatalf("round trip: %d packets, want %d", len(back), len(pk))
		}
		for i := range pk {
			if back[i].ci != pk[i].ci || !bytes.Equal(back[i].data, pk[i].data) {
				t.Fatalf("round trip packet %d: %+v, want %+v", i, back[i].ci, pk[i].ci)
			}
		}
	})
}

func FuzzPcapng(f *testing.F) {
	f.Add(buildPcapng(binary.LittleEndian, testPackets(3)))
	f.Add(buildPcapng(binary.BigEndian, testPackets(2)))
	w := &ngWriter{order: binary.LittleEndian}
	w.shb()
	w.idb(drivers.LinkRaw, 8, w.option(optIfTsresol, []byte{0x80 | 40}), w.option(optIfName, []byte("x")))
	w.block(blockSPB, []byte{20, 0, 0, 0, 0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8})
	w.epb(0, 1<<62, []byte{0x45}, 1, w.option(optEPBFlags, []byte{2, 0, 0, 0}))
	f.Add(w.b.Bytes())
	addCorpusSeeds(f, ".pcapng")
	f.Fuzz(func(t *testing.T, in []byte) {
		drain(t, in)
	})
}
