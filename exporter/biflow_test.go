package exporter

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
)

func testBiflows() []flow.Biflow {
	base := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).UnixNano()
	var out []flow.Biflow
	for i := 0; i < 20; i++ {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)})
		dst := netip.MustParseAddr("198.51.100.7")
		if i%4 == 3 {
			src = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))
			dst = netip.MustParseAddr("2001:db8:ffff::7")
		}
		out = append(out, flow.Biflow{
			Key:     flow.Key{Src: src, Dst: dst, Sport: uint16(40000 + i), Dport: 443, Proto: 6},
			Packets: uint64(10 + i), Octets: uint64(1000 + 10*i), TCPFlags: 0x1b,
			First: base + int64(i)*1e9, Last: base + int64(i)*1e9 + 2e9,
			RPackets: uint64(8 + i), ROctets: uint64(20000 + i)})
	}
	return out
}

// TestBiflowRoundTrip: MIRA's own decoder reads a re-exported biflow
// back as its two directions.
func TestBiflowRoundTrip(t *testing.T) {
	bs := testBiflows()
	out := readBackBiflows(t, len(bs), func(e *Exporter) error { return e.ExportBiflows(9, bs) })
	for i, x := range bs {
		f, r := out[2*i], out[2*i+1]
		if f.Src != x.Src || f.Octets != x.Octets || r.Src != x.Dst || r.Sport != 443 || r.Packets != x.RPackets || r.Octets != x.ROctets {
			t.Fatalf("biflow %d: %+v / %+v", i, f, r)
		}
	}
}

// TestNfdumpBiflows re-exports biflows over UDP to a real nfcapd: nfdump
// must show each connection once with the responder's counters as out
// bytes and packets.
func TestNfdumpBiflows(t *testing.T) {
	var bs []flow.SampledBiflow
	for _, b := range testBiflows() {
		bs = append(bs, flow.SampledBiflow{Biflow: b})
	}
	nfdumpBiflows(t, bs, func(e *Exporter) error { return e.ExportBiflows(9, testBiflows()) })
}

// sampledBiflows are testBiflows at rates (pkt, flow): 1 in 4, 1 in 10,
// unsampled, and 1 in 2 packets of connections kept 1 in 3, in turn.
func sampledBiflows() []flow.SampledBiflow {
	rates := [][2]uint32{{4, 1}, {10, 0}, {0, 0}, {2, 3}}
	var out []flow.SampledBiflow
	for i, b := range testBiflows() {
		r := rates[i%len(rates)]
		out = append(out, flow.SampledBiflow{Biflow: b, PacketInterval: r[0], FlowInterval: r[1]})
	}
	return out
}

// TestSampledBiflowRoundTrip: MIRA's own decoder reads a re-exported
// sampled biflow back as its two directions, each with the overall rate
// its selector reports (1 in pkt x flow); an unsampled one with none.
func TestSampledBiflowRoundTrip(t *testing.T) {
	bs := sampledBiflows()
	out := readBackBiflows(t, len(bs), func(e *Exporter) error { return e.ExportSampledBiflows(9, bs) })
	for i, x := range bs {
		want := uint32(0)
		if x.Sampled() {
			want = max(x.PacketInterval, 1) * max(x.FlowInterval, 1)
		}
		for _, r := range out[2*i : 2*i+2] {
			if max(r.SamplingPacketInterval, 1)*max(r.SamplingFlowInterval, 1) != max(want, 1) {
				t.Errorf("biflow %d (1 in %d x %d): record %v sampled %d x %d", i, x.PacketInterval, x.FlowInterval, r.Key, r.SamplingPacketInterval, r.SamplingFlowInterval)
			}
		}
		f, r := out[2*i], out[2*i+1]
		if f.Src != x.Src || f.Octets != x.Octets || r.Src != x.Dst || r.Packets != x.RPackets || r.Octets != x.ROctets {
			t.Fatalf("biflow %d: %+v / %+v", i, f, r)
		}
	}
}

// TestNfdumpSampledBiflows re-exports sampled biflows (IPv4 and IPv6, of
// four rates, one unsampled) over UDP to a real nfcapd: nfdump scales
// each record's in and out counters by the rate its selector reports,
// and leaves the unsampled ones as they are.
func TestNfdumpSampledBiflows(t *testing.T) {
	bs := sampledBiflows()
	nfdumpBiflows(t, bs, func(e *Exporter) error { return e.ExportSampledBiflows(9, bs) })
}

// nfdumpBiflows exports biflows bs (by export) over UDP to a real
// nfcapd and checks nfdump shows each once, the initiator's counters in,
// the responder's out, each scaled by its rate.
func nfdumpBiflows(t *testing.T, bs []flow.SampledBiflow, export func(*Exporter) error) {
	t.Helper()
	n := peertest.StartNfcapd(t)
	e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.Port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := export(e); err != nil {
		t.Fatal(err)
	}
	e.Close()
	got := n.Records(t)
	if len(got) != len(bs) {
		t.Fatalf("nfdump shows %d records, want %d", len(got), len(bs))
	}
	want := map[flow.Key]flow.SampledBiflow{}
	for _, b := range bs {
		want[b.Key] = b
	}
	for _, f := range got {
		b, ok := want[nfKey(t, &f)]
		if !ok {
			t.Fatalf("unexpected record %+v", f)
		}
		m := uint64(max(b.PacketInterval, 1) * max(b.FlowInterval, 1))
		if f.InPackets != m*b.Packets || f.InBytes != m*b.Octets || f.OutPackets != m*b.RPackets || f.OutBytes != m*b.ROctets {
			t.Errorf("%v (1 in %d): in %d/%d out %d/%d, want %d x %d/%d and %d/%d", nfKey(t, &f), m, f.InPackets, f.InBytes, f.OutPackets, f.OutBytes,
				m, b.Packets, b.Octets, b.RPackets, b.ROctets)
		}
	}
}

// readBackBiflows exports n biflows (by export) into a file stream and
// decodes it with MIRA's decoder: their 2n directions' records.
func readBackBiflows(t *testing.T, n int, export func(*Exporter) error) []flow.Record {
	t.Helper()
	var buf bytes.Buffer
	e := NewWriter(&buf, nil)
	if err := export(e); err != nil {
		t.Fatal(err)
	}
	e.Close()
	s := ipfix.NewSession("file")
	var out []flow.Record
	for b := buf.Bytes(); len(b) > 0; {
		h, _ := ipfix.ParseHeader(b)
		var err error
		if out, _, err = s.Decode(b[:h.Length], out); err != nil {
			t.Fatal(err)
		}
		b = b[h.Length:]
	}
	if len(out) != 2*n {
		t.Fatalf("%d records, want %d", len(out), 2*n)
	}
	return out
}
