package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/synth"
)

// TestInlineBatchedMatchesPerPacket runs a synthetic trace through the
// one-worker path twice: read through the file mapping, whose packets
// stay valid (drivers.StableSource), which meters in batches, and read
// through read(2) with a Label callback, which forces metering packet by
// packet; without and with payload scanning. Records (symptom counts
// included) and counters must be the same.
func TestInlineBatchedMatchesPerPacket(t *testing.T) {
	cfg := synth.Large()
	cfg.Flows = 3000
	cfg.Duration = 20 * time.Second
	path := writeTrace(t, cfg, "trace.pcap")
	run := func(mc Config, mapped bool) ([]flow.Record, Stats) {
		var src drivers.Source
		if mapped {
			r, err := pcapfile.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if !r.DataStable() {
				t.Fatal("a mapped pcap file is not a stable source")
			}
			defer r.Close()
			src = r
		} else {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcapfile.NewReader(f, filepath.Base(path))
			if err != nil {
				t.Fatal(err)
			}
			if r.DataStable() {
				t.Fatal("a reader over read(2) claims stable data")
			}
			src = r
		}
		var recs Records
		p := New(mc, recs.Sink())
		if err := p.Run(context.Background(), []drivers.Source{src}, false); err != nil {
			t.Fatal(err)
		}
		return recs.Recs, p.Stats()
	}
	for _, tc := range []struct {
		maxFlows int
		scan     bool
		app      bool
		readNext bool // compare read(2) without a Label (not the mapping)
	}{{0, false, false, false}, {300, false, false, false}, {0, true, false, false},
		{0, false, true, false}, {0, false, true, true}} {
		var mc Config
		mc.Meter.MaxFlows = tc.maxFlows
		mc.Meter.IdleTimeout = 5 * time.Second
		mc.Meter.AppMetadata = tc.app
		if tc.scan {
			mc.Meter.Symptoms = symptom.Default()
		}
		perPacket := mc
		perPacket.Meter.Label = func(*decode.Packet, uint32) uint32 { return 0 }
		want, wantStats := run(perPacket, false)
		// Application metadata reads payloads: a source whose frames
		// do not stay valid must not drop them (decoding ahead).
		got, gotStats := run(mc, !tc.readNext)
		if tc.app && wantStats.Meter.AppFound == 0 {
			t.Fatalf("%+v: no application metadata found", tc)
		}
		if len(want) < 1000 {
			t.Fatalf("only %d records", len(want))
		}
		if tc.maxFlows > 0 && wantStats.Meter.Expired[flow.EndResource] == 0 {
			t.Fatalf("%+v: no evictions", tc)
		}
		if tc.scan && wantStats.Meter.ScanBytes == 0 {
			t.Fatalf("%+v: nothing scanned", tc)
		}
		if len(got) != len(want) {
			t.Fatalf("%+v: batched: %d records, per packet %d", tc, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("%+v: record %d\nbatched    %+v\nper packet %+v", tc, i, got[i], want[i])
			}
		}
		if !reflect.DeepEqual(gotStats, wantStats) {
			t.Fatalf("%+v: stats\nbatched    %+v\nper packet %+v", tc, gotStats, wantStats)
		}
	}
}
