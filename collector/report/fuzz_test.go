package report

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// fuzzFlows turns bytes into flows over a tiny key space, so that the
// fuzzer finds pairs, chains, ties and reused tuples.
func fuzzFlows(b []byte) []store.StoredFlow {
	protos := [...]uint8{6, 17, 1, 58}
	var flows []store.StoredFlow
	for ; len(b) >= 8; b = b[8:] {
		proto := protos[b[4]&3]
		r := flow.Record{
			Key: flow.Key{
				Src: netip.AddrFrom4([4]byte{10, 0, 0, b[0] & 3}), Dst: netip.AddrFrom4([4]byte{10, 0, 0, b[1] & 3}),
				Sport: uint16(b[2] & 3), Dport: uint16(b[3]&3) << (b[4] & 4 << 1), Proto: proto, VLAN: uint16(b[4] >> 7),
			},
			Packets:  uint64(b[5]) + 1,
			Octets:   uint64(b[5])*40 + 40,
			First:    int64(b[6]) * int64(time.Second),
			TCPFlags: b[7],
			// Last may precede First: stored data is not trusted.
			Last:                   int64(b[6]+b[7]&0x3f) * int64(time.Second),
			EndReason:              flow.EndReason(b[7] >> 5),
			SamplingPacketInterval: uint32(b[4] >> 5),
		}
		flows = append(flows, store.StoredFlow{Origin: store.Origin{Exporter: string('a' + rune(b[0]>>6))}, Record: r})
	}
	return flows
}

// FuzzBuild checks that pairing accounts for every record exactly once
// (keeping duplicates), and that duplicate suppression drops records only
// when it says so, whatever the records.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{1, 2, 1, 2, 0, 5, 10, 0x12, 2, 1, 2, 1, 0, 5, 10, 0x12})
	f.Add([]byte{1, 2, 1, 2, 1, 5, 10, 0x40, 1, 2, 1, 2, 1, 5, 70, 0x40, 2, 1, 2, 1, 1, 5, 200, 0x20})
	f.Add([]byte{1, 2, 0, 2, 6, 0, 0, 0, 2, 1, 0, 0, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flows := fuzzFlows(b)
		var pk, oct uint64
		for _, fl := range flows {
			pk += fl.Record.Packets
			oct += fl.Record.Octets
		}
		// Keeping duplicates, every record is in exactly one biflow.
		rep := Build(flows, Options{Window: 30 * time.Second, NoDedup: true})
		n, bpk, boct := checkBiflows(t, flows, rep)
		if n != len(flows) || bpk != pk || boct != oct || rep.Summary.Merged != 0 {
			t.Fatalf("biflows hold %d records, %d packets, %d octets, merged %d; input %d, %d, %d",
				n, bpk, boct, rep.Summary.Merged, len(flows), pk, oct)
		}
		if rep.Summary.Packets != pk || rep.Summary.Octets != oct {
			t.Fatalf("summary %d packets %d octets, want %d %d", rep.Summary.Packets, rep.Summary.Octets, pk, oct)
		}
		// Dropping duplicates loses records only when observations were
		// merged, and the same connections remain.
		dd := Build(flows, Options{Window: 30 * time.Second})
		n, bpk, boct = checkBiflows(t, flows, dd)
		if n > len(flows) || bpk > pk || boct > oct || (n < len(flows)) != (dd.Summary.Merged > 0) ||
			len(dd.Biflows) != len(rep.Biflows) {
			t.Fatalf("deduplicated: %d biflows hold %d records, %d packets, %d octets, merged %d; input %d, %d, %d; %d biflows keeping duplicates",
				len(dd.Biflows), n, bpk, boct, dd.Summary.Merged, len(flows), pk, oct, len(rep.Biflows))
		}
	})
}

func checkBiflows(t *testing.T, flows []store.StoredFlow, rep *Report) (n int, bpk, boct uint64) {
	t.Helper()
	for _, bf := range rep.Biflows {
		n += bf.Flows
		bpk += bf.Packets + bf.RPackets
		boct += bf.Octets + bf.ROctets
		if bf.Last < bf.First && bf.Flows > 0 {
			// Only records with Last before First can cause this.
			ok := false
			for _, fl := range flows {
				ok = ok || fl.Record.Last < fl.Record.First
			}
			if !ok {
				t.Fatalf("biflow ends before it starts: %+v", bf)
			}
		}
		if bf.Sampling <= 0 || bf.Sampling > 1 {
			t.Fatalf("sampling %v", bf.Sampling)
		}
	}
	return n, bpk, boct
}

// BenchmarkBuild pairs 10k uniflows (5k connections, both directions).
func BenchmarkBuild(b *testing.B) { benchBuild(b, 0, 0) }

// BenchmarkBuildSampled is BenchmarkBuild with the forward direction
// sampled 1 in 4 packets and the reverse 1 in 10: each biflow keeps its
// counters by rate for --export (Biflow.Rates).
func BenchmarkBuildSampled(b *testing.B) { benchBuild(b, 4, 10) }

func benchBuild(b *testing.B, fwdInterval, revInterval uint32) {
	const conns = 5000
	flows := make([]store.StoredFlow, 0, 2*conns)
	for i := 0; i < conns; i++ {
		c := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		s := netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 7)})
		start := t0.UnixNano() + int64(i)*int64(time.Millisecond)
		fwd := flow.Record{Key: flow.Key{Src: c, Dst: s, Sport: uint16(30000 + i%1000), Dport: 443, Proto: 6},
			Packets: 10, Octets: 1000, First: start, Last: start + 1e9, TCPFlags: syn | ack | fin, SamplingPacketInterval: fwdInterval}
		rev := fwd
		rev.Src, rev.Dst, rev.Sport, rev.Dport = fwd.Dst, fwd.Src, fwd.Dport, fwd.Sport
		rev.First += 1e6
		rev.SamplingPacketInterval = revInterval
		flows = append(flows, store.StoredFlow{Record: fwd}, store.StoredFlow{Record: rev})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep := Build(flows, Options{})
		if len(rep.Biflows) != conns {
			b.Fatalf("%d biflows", len(rep.Biflows))
		}
	}
	b.ReportMetric(float64(b.N*len(flows))/b.Elapsed().Seconds(), "flows/s")
}
