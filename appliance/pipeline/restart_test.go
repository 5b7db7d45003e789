package pipeline

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
)

// writeUDP writes a capture of udpFrame(sport) packets at the given times.
func writeUDP(t *testing.T, name string, pkts map[int64]uint16) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, drivers.LinkEthernet, 65535, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range slices.Sorted(maps.Keys(pkts)) {
		b := udpFrame(pkts[x])
		if err := w.WritePacket(drivers.CaptureInfo{Timestamp: x, CaptureLength: len(b), Length: len(b), LinkType: drivers.LinkEthernet}, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOlderFileRestartsCapture reads a capture file and then an older
// one: the older file's flows must come out as when it is read alone.
// Before, the flow table's clock stayed at the newer file's end, so the
// older file's flows never timed out: a flow with a 60 s gap (idle
// timeout 30 s) came out as one record instead of two, and mira analyze
// A B and mira analyze B A gave different flow counts (ndpi/1kxun.pcap
// after arkime/arkime_synthetic.pcap: 652 flows instead of 683).
// A file that follows in time continues the capture (flows go on).
func TestOlderFileRestartsCapture(t *testing.T) {
	s := int64(time.Second)
	t2019 := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	t2020 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	older := writeUDP(t, "older.pcap", map[int64]uint16{t2019: 1000, t2019 + 60*s: 1000})
	newer := writeUDP(t, "newer.pcap", map[int64]uint16{t2020: 2000})
	// later continues older.pcap's flow 1000 within its idle timeout.
	later := writeUDP(t, "later.pcap", map[int64]uint16{t2019 + 70*s: 1000})
	run := func(cfg Config, paths ...string) map[uint16]int {
		var srcs []drivers.Source
		for _, p := range paths {
			src, err := pcapfile.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			srcs = append(srcs, src)
		}
		var recs Records
		p := New(cfg, recs.Sink())
		if err := p.Run(context.Background(), srcs, false); err != nil {
			t.Fatal(err)
		}
		n := map[uint16]int{}
		for _, r := range recs.Recs {
			n[r.Key.Sport]++
		}
		return n
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"inline", Config{}},
		{"sharded", Config{Workers: 2}},
		{"paced", Config{Speed: 1e6}},
	} {
		if n := run(tc.cfg, older); n[1000] != 2 {
			t.Fatalf("%s: older.pcap alone: %d records of the flow with a 60 s gap, want 2", tc.name, n[1000])
		}
		if n := run(tc.cfg, newer, older); n[1000] != 2 || n[2000] != 1 {
			t.Errorf("%s: newer.pcap then older.pcap: %v records by source port, want 1000:2 2000:1", tc.name, n)
		}
		if n := run(tc.cfg, older, later); n[1000] != 2 {
			t.Errorf("%s: older.pcap then later.pcap: %d records of flow 1000, want 2 (the second goes on in later.pcap)", tc.name, n[1000])
		}
	}
}
