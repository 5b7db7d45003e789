package e2e

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/synth"
)

// answer is the key of the answering direction of k: k.Reverse(), and
// for ICMP (type<<8|code in Dport) the reply's type.
func answer(k flow.Key) flow.Key {
	r := k.Reverse()
	if k.Proto == 1 || k.Proto == 58 {
		replies := map[uint16]uint16{8: 0, 13: 14, 15: 16, 17: 18, 128: 129}
		r.Sport, r.Dport = 0, replies[k.Dport>>8]<<8|k.Dport&0xff
	}
	return r
}

type counts struct{ packets, octets uint64 }

// TestAnalyzeSampleMatchesTruth runs `mira analyze` on its built-in sample
// and checks every flow of the generator's ground truth, with exact
// packets and octets, and the report's JSON keys (ARCHITECTURE.md §3).
func TestAnalyzeSampleMatchesTruth(t *testing.T) {
	truth, err := synth.WritePcap(synth.Default(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, bin(t, "mira"), "analyze", "--format", "json")

	// Schema: the keys of the contract, by name.
	var raw struct {
		Biflows []map[string]json.RawMessage `json:"biflows"`
		Usage   []map[string]json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("mira analyze --format json: %v", err)
	}
	if len(raw.Biflows) == 0 || len(raw.Usage) == 0 {
		t.Fatalf("report has %d biflows and %d usage rows", len(raw.Biflows), len(raw.Usage))
	}
	biflowKeys := []string{"src", "dst", "sport", "dport", "proto", "packets", "octets", "rpackets", "roctets",
		"first", "last", "symptoms", "category", "aggregate", "sampling", "probes"}
	usageKeys := []string{"aggregate", "category", "biflows", "packets", "octets", "estimated_octets"}
	for i, b := range raw.Biflows {
		for _, k := range biflowKeys {
			if _, ok := b[k]; !ok {
				t.Fatalf("biflow %d lacks key %q: has %v", i, k, slices.Sorted(maps.Keys(b)))
			}
		}
	}
	for i, u := range raw.Usage {
		for _, k := range usageKeys {
			if _, ok := u[k]; !ok {
				t.Fatalf("usage row %d lacks key %q: has %v", i, k, slices.Sorted(maps.Keys(u)))
			}
		}
	}

	rep := parseReport(t, "mira analyze --format json", out)
	// What the report says of each direction, keyed like the truth.
	got := map[flow.Key]counts{}
	initiator := map[flow.Key]bool{}
	for _, b := range rep.Biflows {
		fwd := b.Key
		rev := answer(fwd)
		c := got[fwd]
		got[fwd] = counts{c.packets + b.Packets, c.octets + b.Octets}
		initiator[fwd] = true
		if b.RPackets > 0 {
			c = got[rev]
			got[rev] = counts{c.packets + b.RPackets, c.octets + b.ROctets}
		}
	}
	want := map[flow.Key]counts{}
	for _, f := range truth.Flows {
		k := f.Key
		c := want[k]
		want[k] = counts{c.packets + f.Packets, c.octets + f.Octets}
	}
	bad := 0
	for _, f := range truth.Flows {
		k := f.Key
		if got[k] != want[k] {
			t.Errorf("truth flow %v (%s, session %d): report has %+v, want %+v", k, f.App, f.Session, got[k], want[k])
			bad++
		}
		// A TCP connection's opener is the biflow's src.
		if f.Proto == 6 && f.Initiator && !initiator[k] {
			t.Errorf("truth flow %v (%s) opened the connection but is not a biflow's src", k, f.App)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
	if len(got) != len(want) {
		t.Errorf("report has %d directed flows, truth %d", len(got), len(want))
	}
	if rep.Summary.Packets != truth.Packets || rep.Summary.Octets != truth.Octets {
		t.Errorf("report totals %d packets %d octets, truth %d packets %d octets",
			rep.Summary.Packets, rep.Summary.Octets, truth.Packets, truth.Octets)
	}
	t.Logf("%d truth flows, %d packets, %d octets found exactly", len(truth.Flows), truth.Packets, truth.Octets)
}

// frame builds an Ethernet frame carrying an IPv4 packet with a TCP (20
// bytes) or UDP header and payload bytes of payload.
func frame(src, dst string, sport, dport uint16, proto uint8, payload int) []byte {
	l4 := 8
	if proto == 6 {
		l4 = 20
	}
	b := make([]byte, 14+20+l4+payload)
	copy(b, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+payload))
	ip[8] = 64
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	l := ip[20:]
	binary.BigEndian.PutUint16(l, sport)
	binary.BigEndian.PutUint16(l[2:], dport)
	if proto == 6 {
		l[12] = 5 << 4
		l[13] = 0x18 // PSH ACK
	} else {
		binary.BigEndian.PutUint16(l[4:], uint16(8+payload))
	}
	return b
}

// TestAnalyzeBadPackets analyses a capture that mixes good flows with
// truncated packets, inconsistent header lengths and unknown EtherTypes:
// the report counts each bad packet by reason and keeps the good flows
// exact.
func TestAnalyzeBadPackets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, drivers.LinkEthernet, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	write := func(data []byte, wire int) {
		t.Helper()
		ts = ts.Add(10 * time.Millisecond)
		if err := w.WritePacket(drivers.CaptureInfo{Timestamp: ts.UnixNano(), CaptureLength: len(data), Length: wire}, data); err != nil {
			t.Fatal(err)
		}
	}
	good := func(src, dst string, sport, dport uint16, proto uint8, payload int) {
		b := frame(src, dst, sport, dport, proto, payload)
		write(b, len(b))
	}
	// Good traffic: a TCP exchange and a UDP request/response.
	good("192.0.2.1", "198.51.100.7", 40001, 80, 6, 100)
	good("198.51.100.7", "192.0.2.1", 80, 40001, 6, 1000)
	good("192.0.2.1", "198.51.100.7", 40001, 80, 6, 0)

	// truncated: the capture cut the frame inside the IPv4 header, and
	// inside the TCP header (the wire length is the full frame's).
	b := frame("192.0.2.1", "198.51.100.7", 40001, 80, 6, 50)
	write(b[:14+12], len(b))
	write(b[:14+20+8], len(b))
	good("192.0.2.1", "198.51.100.7", 40001, 80, 6, 10)

	// bad-header-length: IHL 4 (16 bytes), a total length below the
	// header length, a TCP data offset of 4.
	b = frame("192.0.2.9", "198.51.100.9", 1, 2, 6, 0)
	b[14] = 0x44
	write(b, len(b))
	b = frame("192.0.2.9", "198.51.100.9", 1, 2, 6, 0)
	binary.BigEndian.PutUint16(b[14+2:], 12)
	write(b, len(b))
	b = frame("192.0.2.9", "198.51.100.9", 1, 2, 6, 0)
	b[14+20+12] = 4 << 4
	write(b, len(b))

	// unknown-ethertype: two frames of an EtherType nobody assigned here.
	for _, et := range []uint16{0x1234, 0x9999} {
		b = frame("192.0.2.9", "198.51.100.9", 1, 2, 17, 10)
		binary.BigEndian.PutUint16(b[12:], et)
		write(b, len(b))
	}
	good("192.0.2.53", "198.51.100.53", 5353, 53, 17, 40)
	good("198.51.100.53", "192.0.2.53", 53, 5353, 17, 120)
	good("198.51.100.7", "192.0.2.1", 80, 40001, 6, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	rep := analyzeJSON(t, path)
	wantErrs := map[string]uint64{"truncated": 2, "bad-header-length": 3, "unknown-ethertype": 2}
	if !maps.Equal(rep.Summary.DecodeErrors, wantErrs) {
		t.Errorf("decode errors %v, want %v", rep.Summary.DecodeErrors, wantErrs)
	}
	table := run(t, bin(t, "mira"), "analyze", path)
	if want := "Probe decode errors: bad-header-length 3, truncated 2, unknown-ethertype 2\n"; !strings.Contains(string(table), want) {
		t.Errorf("mira analyze table lacks %q:\n%s", want, table)
	}
	type bf struct {
		src, dst                           string
		sport, dport                       uint16
		proto                              uint8
		packets, octets, rpackets, roctets uint64
	}
	var got []bf
	for _, b := range rep.Biflows {
		got = append(got, bf{b.Src.String(), b.Dst.String(), b.Sport, b.Dport, b.Proto, b.Packets, b.Octets, b.RPackets, b.ROctets})
	}
	want := []bf{
		// IP octets: 40+100, 40+0, 40+10 out; 40+1000, 40+0 back.
		{"192.0.2.1", "198.51.100.7", 40001, 80, 6, 3, 140 + 40 + 50, 2, 1040 + 40},
		{"192.0.2.53", "198.51.100.53", 5353, 53, 17, 1, 68, 1, 148},
	}
	slices.SortFunc(got, func(a, b bf) int { return cmp.Compare(a.src, b.src) })
	if !slices.Equal(got, want) {
		t.Fatalf("biflows\n got %+v\nwant %+v", got, want)
	}
}
