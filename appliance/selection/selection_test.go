package selection

import (
	"net/netip"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

const cfgYAML = `
aggregates:
  home: [192.0.2.0/24]
  rules:
    - {name: campus-in, direction: [incoming]}
    - {name: campus-out, direction: [outgoing]}
  scope: {directions: [incoming]}
sampling: {mode: count, interval: 2}
`

func load(t *testing.T, s string) *Selection {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	sel, err := New(&c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestFilterAndStamp(t *testing.T) {
	sel := load(t, cfgYAML)
	if !sel.Active() || sel.Label() == nil {
		t.Fatal("selection inactive")
	}
	sel.Filters(2)
	f0, f1 := sel.Filter(0), sel.Filter(1)
	in := decode.Packet{Src: netip.MustParseAddr("203.0.113.1"), Dst: netip.MustParseAddr("192.0.2.1")}
	out := decode.Packet{Src: in.Dst, Dst: in.Src}
	kept := 0
	for i := 0; i < 10; i++ {
		if f0(&in, 0) {
			kept++
		}
		if f1(&in, 0) {
			kept++
		}
		if f0(&out, 0) || f1(&out, 0) {
			t.Fatal("outgoing packet kept out of scope")
		}
	}
	if kept != 10 {
		t.Fatalf("kept %d of 20 incoming at 1 in 2", kept)
	}
	st := sel.Stats()
	if st.Seen != 40 || st.OutOfScope != 20 || st.Unsampled != 10 {
		t.Fatalf("stats %+v", st)
	}
	if id := sel.Label()(&in, 0); sel.AggregateNames()[id] != "campus-in" {
		t.Fatalf("label %d", id)
	}
	recs := []flow.Record{{}, {}}
	sel.Stamp(recs)
	if recs[1].SamplingPacketInterval != 2 || recs[1].SamplingFlowInterval != 1 {
		t.Fatalf("stamp %+v", recs[1])
	}
	es := sel.ExportSampling()
	if es == nil || es.Interval != 2 || es.Flow || es.SelectorAlgorithm != 1 {
		t.Fatalf("export sampling %+v", es)
	}
	if n := testing.AllocsPerRun(1000, func() { f0(&in, 0) }); n != 0 {
		t.Fatalf("%v allocs per packet", n)
	}
}

func TestDefaults(t *testing.T) {
	sel, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Active() || sel.Label() != nil || sel.ExportSampling() != nil {
		t.Fatal("zero config does something")
	}
	// An unsampled probe's records say so (1), and a record metered
	// under self-regulation keeps its flow interval.
	recs := []flow.Record{{}, {SamplingFlowInterval: 4}}
	sel.Stamp(recs)
	if r := recs[0]; r.SamplingPacketInterval != 1 || r.SamplingFlowInterval != 1 {
		t.Fatalf("unsampled record stamped %d/%d, want 1/1", r.SamplingPacketInterval, r.SamplingFlowInterval)
	}
	if r := recs[1]; r.SamplingPacketInterval != 1 || r.SamplingFlowInterval != 4 {
		t.Fatalf("regulated record stamped %d/%d, want 1/4", r.SamplingPacketInterval, r.SamplingFlowInterval)
	}
	if _, err := New(&Config{}, nil); err != nil {
		t.Fatal(err)
	}
	var c Config
	c.Sampling.Mode = "sometimes"
	if _, err := New(&c, nil); err == nil || !strings.Contains(err.Error(), `unknown mode "sometimes"`) {
		t.Fatalf("error %v", err)
	}
}

func TestFlowMode(t *testing.T) {
	sel := load(t, "sampling: {mode: flow, interval: 8, seed: 3}\n")
	es := sel.ExportSampling()
	if es == nil || !es.Flow || es.Interval != 8 || es.SelectorAlgorithm != 6 {
		t.Fatalf("%+v", es)
	}
	// The RFC 5477 hash parameters: BOB's output range, the selected
	// range [0, 2^32/8-1] and the seed as initialiser.
	if h := es.Hash; h != (ipfix.HashSelection{Initialiser: 3, OutputMax: 1<<32 - 1, SelectedMax: 1<<29 - 1}) || es.SelectionProbability() != 0.125 {
		t.Fatalf("hash parameters %+v", h)
	}
	recs := []flow.Record{{}}
	sel.Stamp(recs)
	if recs[0].SamplingFlowInterval != 8 || recs[0].SamplingPacketInterval != 1 {
		t.Fatalf("%+v", recs[0])
	}
}
