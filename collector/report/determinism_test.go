package report

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// tiedFlows are records whose biflows tie on start time and key: for
// every key, a one-packet-burst connection ended by FIN and, starting in
// the same millisecond, a new connection of the same key (the probe's
// meter started a new flow), with the same counters but another packet
// sampling interval, so the two biflows differ only in their sampling
// and estimates.
func tiedFlows(n int) []store.StoredFlow {
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC).UnixNano()
	var out []store.StoredFlow
	for i := range n {
		k := flow.Key{Src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("192.0.2.1"),
			Sport: uint16(1024 + i), Dport: 80, Proto: 17}
		at := t0 + int64(i%3)*int64(time.Millisecond)
		for j, iv := range []uint32{3, 7} {
			r := flow.Record{Key: k, Packets: 5, Octets: 1234, First: at, Last: at, SamplingPacketInterval: iv}
			if j == 0 {
				r.EndReason = flow.EndDetected
			}
			out = append(out, store.StoredFlow{Origin: store.Origin{Exporter: "probe-a", Domain: 1}, Record: r})
		}
	}
	return out
}

// sampledTiedFlows are tiedFlows(n) with random counters (alike in
// each tied pair), and flow sampling besides packet sampling in one of
// each pair: estimates whose floating-point sums differ in their last
// bits when added in another order.
func sampledTiedFlows(n int) []store.StoredFlow {
	flows := tiedFlows(n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(flows); i += 2 {
		pk, oc := 1+rng.Uint64N(1000), 40+rng.Uint64N(1e6)
		for j := range 2 {
			r := &flows[i+j].Record
			r.SamplingFlowInterval, r.SamplingPacketInterval = []uint32{49, 3}[j], []uint32{13, 0}[j]
			r.Packets, r.Octets = pk, oc
		}
	}
	return flows
}

// sameBytes fails the test when got differs from want, showing where.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: differs at byte %d:\n got %s\nwant %s", what, i, got[max(0, i-200):min(len(got), i+200)], want[max(0, i-200):min(len(want), i+200)])
		}
	}
	t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
}

func reportBytes(t *testing.T, rep *Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestAssembleOrderFree: Assemble over a part's biflows split into two
// parts, in any order, gives Build's report byte for byte: the
// biflows that tie on start, key and counters are listed, and their
// estimates summed, in one order (compareBiflows is total), not in the
// order the parts brought them (a cluster's workers answer in any
// order).
func TestAssembleOrderFree(t *testing.T) {
	flows := sampledTiedFlows(1000)
	want := reportBytes(t, Build(flows, Options{}))
	p := BuildPart(flows, Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 10 {
		bs := slices.Clone(p.Biflows)
		rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
		m := rng.IntN(len(bs))
		a, b := *p, Part{}
		a.Biflows, b.Biflows = bs[:m], bs[m:]
		parts := []*Part{&a, &b}
		if round%2 == 1 {
			parts = []*Part{&b, &a}
		}
		sameBytes(t, "shuffled parts", reportBytes(t, Assemble(parts, Options{})), want)
	}
}

// TestReportRepeatable: the same records make the same report, byte for
// byte, however many times it is built (each Build's consolidator seeds
// its hash index afresh, so the order in which it holds the pending
// connections differs from run to run).
func TestReportRepeatable(t *testing.T) {
	for _, flows := range [][]store.StoredFlow{tiedFlows(300), sampledTiedFlows(1000)} {
		var first []byte
		for run := range 20 {
			rep := Build(flows, Options{})
			if run == 0 && (rep.Summary.Biflows != len(flows) || rep.Summary.Estimate == nil) {
				t.Fatalf("want %d sampled biflows: %+v", len(flows), rep.Summary)
			}
			got := reportBytes(t, rep)
			if run == 0 {
				first = got
				continue
			}
			sameBytes(t, fmt.Sprintf("run %d against run 0", run), got, first)
		}
	}
}
