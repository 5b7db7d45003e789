package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/synth"
	"github.com/mira-project/mira/tools/peertest"
)

// TestReplayBurstToNfcapd replays a synthetic trace of 40,000 flows that
// all end at the end of the file, so that the replay's final flush hands
// every record to the exporter at once, into nfcapd with its default
// socket buffer over UDP: every flow must arrive, the kernel drop
// nothing on nfcapd's socket, and nfdump show the same flows, packets
// and octets as the probe's own export of the same run to an RFC 5655
// file. Unpaced, the flush went out as ~64 KiB datagrams (the loopback
// path MTU) back to back: before the exporter paced UDP this test failed
// with nfcapd getting 31,533 and 33,792 of the 40,000 flows (the kernel
// dropped 34 and 25 datagrams), and by hand 4,864 to 35,904.
func TestReplayBurstToNfcapd(t *testing.T) {
	peertest.Program(t, "nfdump")
	bin(t, "mira-probe") // built (once for the package's tests) before the clock starts
	began := time.Now()
	dir := t.TempDir()
	pcap := filepath.Join(dir, "burst.pcap")
	c := synth.Default()
	c.Flows = 20000
	// Every session within 10 s: none has timed out (30 s idle) when
	// the file ends.
	c.Duration = 10 * time.Second
	c.LongFlows = 0
	// Short sessions, so that the trace stays small (35 MB).
	c.Mix = []synth.Share{{App: "dns", Weight: 8}, {App: "icmp-echo", Weight: 1}, {App: "tls", Weight: 1}}
	c.FragmentShare = 0
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WritePcap(c, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if b, err := os.ReadFile("/proc/sys/net/core/rmem_default"); err == nil {
		t.Logf("nfcapd's socket buffer: the kernel's default, %s bytes", strings.TrimSpace(string(b)))
	}
	nf := peertest.StartNfcapd(t) // no -B: the default socket buffer
	fileDir := filepath.Join(dir, "ipfix")
	if err := os.Mkdir(fileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := runProbe(t, "-r", pcap, "--export", nf.URL(), "--export", "file://"+fileDir)
	t.Logf("mira-probe: %d packets, %d records in %v", res.packets, res.records, time.Since(start).Round(time.Millisecond))
	if res.records != 40000 {
		t.Fatalf("mira-probe exported %d records, want the trace's 40000 flows", res.records)
	}
	recs, drops := nf.LossyRecords(t)
	if drops != 0 || uint64(len(recs)) != res.records {
		t.Fatalf("nfcapd got %d of the %d flows exported (the kernel dropped %d datagrams on its socket)", len(recs), res.records, drops)
	}
	nfFlows := nfdumpUniflows(t, recs)
	fileFlows := fileUniflows(t, fileDir)
	sameFlows(t, "nfdump", nfFlows, "the probe's file export", fileFlows)
	var pk, oc uint64
	for _, f := range nfFlows {
		pk, oc = pk+f.Packets, oc+f.Octets
	}
	if pk != res.packets {
		t.Fatalf("nfdump counts %d packets, mira-probe captured %d", pk, res.packets)
	}
	t.Logf("nfdump: %d flows, %d packets, %d octets, as exported to the file; the test took %v", len(nfFlows), pk, oc, time.Since(began).Round(time.Millisecond))
}

// fileUniflows decodes the flow records of the RFC 5655 files mira-probe
// wrote into dir (file:// export) with MIRA's own decoder.
func fileUniflows(t *testing.T, dir string) []uniflow {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.ipfix"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no IPFIX file in %s (%v)", dir, err)
	}
	s := ipfix.NewSession("file")
	var fs []uniflow
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			h, ok := ipfix.ParseHeader(b)
			if !ok || int(h.Length) > len(b) || h.Length < ipfix.HeaderLen {
				t.Fatalf("%s: bad message header", fn)
			}
			if _, err := s.DecodeEach(b[:h.Length], func(r *flow.Record) {
				fs = append(fs, uniflow{Key: r.Key, Packets: r.Packets, Octets: r.Octets,
					First: r.First / int64(time.Millisecond), Last: r.Last / int64(time.Millisecond)})
			}); err != nil {
				t.Fatalf("%s: %v", fn, err)
			}
			b = b[h.Length:]
		}
	}
	return fs
}
