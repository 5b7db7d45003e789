package collector

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

type optRecorder struct {
	events []string
	opts   []ipfix.DomainOptions
	recs   int
}

func (r *optRecorder) Consume(o Origin, recs []flow.Record) {
	r.events = append(r.events, "records")
	r.recs += len(recs)
}

func (r *optRecorder) ConsumeOptions(o Origin, opts ipfix.DomainOptions) {
	r.events = append(r.events, "options")
	r.opts = append(r.opts, opts)
}

// TestOptionsBeforeRecords checks that a domain's sampling options and
// aggregate names reach an OptionsConsumer before the records of the
// message that carried them.
func TestOptionsBeforeRecords(t *testing.T) {
	for _, smp := range []ipfix.Sampling{
		{Interval: 16, Flow: true, SelectorAlgorithm: 6},
		// RFC 5477 hash parameters: the probability is the selected
		// share of the output range, 2^28 of 2^32.
		{Interval: 16, Flow: true, SelectorAlgorithm: 6, Hash: ipfix.HashSelection{Initialiser: 5, OutputMax: 1<<32 - 1, SelectedMin: 1 << 28, SelectedMax: 1<<29 - 1}},
	} {
		optionsBeforeRecords(t, smp)
	}
}

func optionsBeforeRecords(t *testing.T, smp ipfix.Sampling) {
	t.Helper()
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, &exporter.Config{Sampling: &smp, AggregateNames: map[uint32]string{3: "dmz"}})
	recs := []flow.Record{{Key: flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: 17, Sport: 5, Dport: 53},
		Packets: 1, Octets: 60, Direction: 255, ObservationDomain: 4, Aggregate: 3, SamplingFlowInterval: 16,
		First: time.Now().UnixNano(), Last: time.Now().UnixNano()}}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	e.Close()
	r := &optRecorder{}
	c := New(r, nil)
	if err := c.ServeStream(context.Background(), &buf, Origin{Transport: "file"}); err != nil {
		t.Fatal(err)
	}
	if len(r.events) < 2 || r.events[0] != "options" || r.events[len(r.events)-1] != "records" || r.recs != 1 {
		t.Fatalf("events %v", r.events)
	}
	last := r.opts[len(r.opts)-1]
	if last.Sampling != smp || last.Sampling.SelectionProbability() != 1.0/16 || last.Aggregates[3] != "dmz" {
		t.Fatalf("options %+v", last)
	}
}
