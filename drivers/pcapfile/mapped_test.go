package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/drivers"
)

// TestMappedMatchesBuffered reads classic pcap files of both byte orders
// and timestamp resolutions, large enough to cross many prefetch and
// fault windows, through the file mapping (Open) and through read(2)
// (NewReader), and requires the same packets, capture info, counters and
// final error: the mapped path's fast header parse and its prefetching
// must change nothing.
func TestMappedMatchesBuffered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		cut   int // bytes cut off the end
	}{
		{"le-micro", binary.LittleEndian, magicMicro, 0},
		{"be-micro", binary.BigEndian, magicMicro, 0},
		{"le-nano", binary.LittleEndian, magicNano, 0},
		{"be-nano-truncated", binary.BigEndian, magicNano, 7},
		{"le-modified", binary.LittleEndian, magicModified, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := pcapHeader(tc.order, tc.magic, 65535, 1)
			for i, p := range testPackets(3000) {
				rec := pcapRecord(tc.order, uint32(1000+i), uint32(i*997%1000000), uint32(len(p.data)), uint32(len(p.data)+i%3), p.data)
				if tc.magic == magicModified {
					// Modified pcap: 8 more header bytes (ifindex,
					// protocol, pkt_type, pad) after the usual 16.
					rec = append(rec[:16:16], append(make([]byte, 8), rec[16:]...)...)
				}
				raw = append(raw, rec...)
			}
			raw = raw[:len(raw)-tc.cut]
			path := filepath.Join(t.TempDir(), "x.pcap")
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.mm == nil {
				t.Fatal("Open did not map the file")
			}
			// mi reads the mapping with NextInto, into a CaptureInfo
			// holding stale values from "another source".
			mi, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer mi.Close()
			b, err := NewReader(bytes.NewReader(raw), "x.pcap")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				md, mci, merr := m.Next()
				bd, bci, berr := b.Next()
				ici := drivers.CaptureInfo{Interface: 9, Direction: 2, VPI: 7, VCI: 9, HasVC: true, Timestamp: -1}
				id, ierr := mi.NextInto(&ici)
				if (merr == nil) != (berr == nil) || (merr != nil && merr.Error() != berr.Error()) {
					t.Fatalf("packet %d: mapped error %v, buffered %v", n, merr, berr)
				}
				if (ierr == nil) != (berr == nil) || (ierr != nil && ierr.Error() != berr.Error()) {
					t.Fatalf("packet %d: NextInto error %v, buffered %v", n, ierr, berr)
				}
				if ierr == nil && (!bytes.Equal(id, bd) || ici != bci) {
					t.Fatalf("packet %d: NextInto %+v %x..., buffered %+v %x...", n, ici, id[:min(8, len(id))], bci, bd[:min(8, len(bd))])
				}
				if merr != nil {
					if tc.cut == 0 && merr != io.EOF {
						t.Fatalf("packet %d: %v", n, merr)
					}
					if tc.cut > 0 && !errors.Is(merr, io.ErrUnexpectedEOF) {
						t.Fatalf("truncated file: %v", merr)
					}
					break
				}
				if !bytes.Equal(md, bd) || mci != bci {
					t.Fatalf("packet %d: mapped %+v %x..., buffered %+v %x...", n, mci, md[:min(8, len(md))], bci, bd[:min(8, len(bd))])
				}
				if mci.LinkType != drivers.LinkEthernet {
					t.Fatalf("link %v", mci.LinkType)
				}
				n++
			}
			if want := 3000 - min(tc.cut, 1); n != want {
				t.Fatalf("%d packets, want %d", n, want)
			}
			if m.Stats() != b.Stats() {
				t.Fatalf("stats: mapped %+v, buffered %+v", m.Stats(), b.Stats())
			}
		})
	}
}
