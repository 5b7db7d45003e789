package consolidate

import (
	"net/netip"
	"testing"

	"github.com/mira-project/mira/flow"
)

// TestSplitRates: a biflow goes whole when both directions were observed
// at one rate, as one record per rate otherwise, each with the counters
// of its rate; the records' counters add up to the biflow's and, scaled
// by their intervals, to what Estimate says.
func TestSplitRates(t *testing.T) {
	b := flow.Biflow{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.2"), Sport: 4000, Dport: 80, Proto: 6},
		Packets: 7, Octets: 700, RPackets: 5, ROctets: 5000, ScannedOctets: 30, TCPFlags: 2, RTCPFlags: 0x12, First: 1, Last: 2}
	for _, tc := range []struct {
		name  string
		rates []Rate
		want  []flow.SampledBiflow
	}{
		{"unsampled", nil, []flow.SampledBiflow{{Biflow: b}}},
		{"one rate", []Rate{{false, 4, 1, 7, 700}, {true, 4, 1, 5, 5000}}, []flow.SampledBiflow{{Biflow: b, PacketInterval: 4, FlowInterval: 1}}},
		{"directions apart", []Rate{{false, 4, 1, 7, 700}, {true, 10, 1, 5, 5000}}, []flow.SampledBiflow{
			{Biflow: with(b, 7, 700, 0, 0, 30), PacketInterval: 4, FlowInterval: 1},
			{Biflow: with(b, 0, 0, 5, 5000, 0), PacketInterval: 10, FlowInterval: 1}}},
		{"a direction at two rates", []Rate{{false, 4, 1, 3, 300}, {false, 8, 2, 4, 400}, {true, 4, 1, 5, 5000}}, []flow.SampledBiflow{
			{Biflow: with(b, 3, 300, 5, 5000, 30), PacketInterval: 4, FlowInterval: 1},
			{Biflow: with(b, 4, 400, 0, 0, 0), PacketInterval: 8, FlowInterval: 2}}},
	} {
		pre := []flow.SampledBiflow{{Biflow: flow.Biflow{Packets: 1}, PacketInterval: 4, FlowInterval: 1}}
		got := SplitRates(pre, &b, tc.rates)[1:]
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d records %+v, want %d", tc.name, len(got), got, len(tc.want))
		}
		var pk, oc, est float64
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: record %d %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
			n := float64(max(got[i].PacketInterval, 1) * max(got[i].FlowInterval, 1))
			pk += float64(got[i].Packets + got[i].RPackets)
			oc += float64(got[i].Octets + got[i].ROctets)
			est += n * float64(got[i].Packets+got[i].RPackets)
		}
		if pk != 12 || oc != 5700 {
			t.Errorf("%s: records sum %v packets %v octets, the biflow 12 and 5700", tc.name, pk, oc)
		}
		var e Estimate
		for _, r := range tc.rates {
			var x Estimate
			x.AddObserved(r.Packets, r.Octets, r.PacketInterval)
			x.SelectFlows(r.FlowInterval)
			e.Add(&x)
		}
		if tc.rates == nil {
			e.AddObserved(12, 5700, 1)
		}
		if est != e.Packets {
			t.Errorf("%s: records scaled %v packets, the estimate %v", tc.name, est, e.Packets)
		}
	}
}

func with(b flow.Biflow, p, o, rp, ro, scanned uint64) flow.Biflow {
	b.Packets, b.Octets, b.RPackets, b.ROctets = p, o, rp, ro
	b.ScannedOctets, b.RScannedOctets = scanned, 0
	return b
}
