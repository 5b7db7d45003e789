package report

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

func sf(exp string, src, dst string, sp, dp uint16, pk, oc uint64, vlan uint16) store.StoredFlow {
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).UnixNano()
	return store.StoredFlow{Origin: store.Origin{Exporter: exp, Domain: 1}, Record: flow.Record{
		Key:     flow.Key{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Sport: sp, Dport: dp, Proto: 6, VLAN: vlan},
		Packets: pk, Octets: oc, First: t0, Last: t0 + 1e9, EndReason: flow.EndIdle, TCPFlags: 0x12,
	}}
}

// TestDedupAcrossProbes: probe-a sees both directions, probe-b
// (an overlapping capture point, other VLAN) sees the forward direction
// again; probe-c alone sees another connection. The duplicate is counted
// once and reported as merged.
func TestDedupAcrossProbes(t *testing.T) {
	flows := []store.StoredFlow{
		sf("probe-a", "192.0.2.1", "198.51.100.7", 40001, 80, 10, 1000, 0),
		sf("probe-a", "198.51.100.7", "192.0.2.1", 80, 40001, 8, 8000, 0),
		sf("probe-b", "192.0.2.1", "198.51.100.7", 40001, 80, 10, 1000, 12),
		sf("probe-c", "192.0.2.9", "198.51.100.7", 40002, 80, 3, 300, 0),
	}
	flows[0].Record.TCPFlags = 0x02
	rep := Build(flows, Options{By: ByProbe})
	if rep.Summary.Merged != 1 || rep.Summary.Biflows != 2 || rep.Summary.Octets != 9300 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	var got *Biflow
	for i := range rep.Biflows {
		if rep.Biflows[i].Sport == 40001 {
			got = &rep.Biflows[i]
		}
	}
	if got == nil || got.Merged != 1 || got.Packets != 10 || got.RPackets != 8 || len(got.Probes) != 1 || got.Probes[0] != "probe-a" {
		t.Fatalf("biflow %+v", got)
	}
	if len(rep.Usage) != 2 || rep.Usage[0].Probe != "probe-a/1" || rep.Usage[0].Merged != 1 || rep.Usage[1].Probe != "probe-c/1" {
		t.Fatalf("usage %+v", rep.Usage)
	}
	// Without dedup the forward direction counts twice.
	if r := Build(flows, Options{NoDedup: true}); r.Summary.Octets != 10300 || r.Summary.Merged != 0 {
		t.Fatalf("no dedup: %+v", r.Summary)
	}
}

func TestByASAndFlowSampling(t *testing.T) {
	tb, err := consolidate.ParseASBytes([]byte("192.0.2.0/24,64496\n198.51.100.0/24,64511\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	a := sf("p", "192.0.2.1", "198.51.100.7", 40001, 80, 10, 1000, 0)
	a.Record.SamplingFlowInterval = 4
	b := sf("p", "198.51.100.7", "192.0.2.1", 80, 40001, 10, 3000, 0)
	b.Record.SamplingFlowInterval = 4
	rep := Build([]store.StoredFlow{a, b}, Options{By: ByAS, AS: tb})
	if len(rep.Usage) != 1 || rep.Usage[0].SrcAS != 64496 || rep.Usage[0].DstAS != 64511 {
		t.Fatalf("usage %+v", rep.Usage)
	}
	e := rep.Usage[0].Estimate
	if e == nil || e.Octets != 16000 || e.Biflows != 4 || e.BiflowsLowerBound || e.OctetsHigh <= e.Octets || e.OctetsLow != 4000 {
		t.Fatalf("estimate %+v", e)
	}
	if rep.Biflows[0].Sampling != 0.25 {
		t.Fatalf("sampling %v", rep.Biflows[0].Sampling)
	}
}

func TestUsageBuckets(t *testing.T) {
	a := sf("p", "192.0.2.1", "198.51.100.7", 40001, 80, 10, 1000, 0)
	b := sf("p", "192.0.2.2", "198.51.100.7", 40002, 80, 5, 500, 0)
	b.Record.First += int64(7 * time.Minute)
	b.Record.Last += int64(7 * time.Minute)
	c := sf("p", "192.0.2.3", "198.51.100.7", 40003, 80, 1, 100, 0)
	c.Record.First += int64(time.Minute)
	c.Record.Last += int64(time.Minute)
	rep := Build([]store.StoredFlow{b, a, c}, Options{By: ByAggregate, Bucket: 5 * time.Minute})
	if len(rep.Usage) != 2 || rep.Usage[0].Bucket == nil || rep.Usage[0].Biflows != 2 || rep.Usage[1].Biflows != 1 ||
		rep.Usage[1].Bucket.Time().Sub(rep.Usage[0].Bucket.Time()) != 5*time.Minute || rep.Usage[0].Bucket.Time().Minute()%5 != 0 {
		t.Fatalf("usage %+v", rep.Usage)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "Bucket") {
		t.Fatalf("table %v:\n%s", err, buf.String())
	}
}

func TestSamplingOverride(t *testing.T) {
	flows := []store.StoredFlow{sf("p", "192.0.2.1", "198.51.100.7", 1, 80, 10, 1000, 0)}
	rep := Build(flows, Options{Overrides: map[string]consolidate.Override{"p": {FlowInterval: 5}}})
	if rep.Summary.Estimate == nil || rep.Summary.Estimate.Octets != 5000 || flows[0].Record.SamplingFlowInterval != 0 {
		t.Fatalf("override: %+v (input changed: %d)", rep.Summary.Estimate, flows[0].Record.SamplingFlowInterval)
	}
}
