package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/tools/synth"
)

// TestInlineBatchedMatchesPerPacket runs a synthetic trace (read through
// the file mapping) through the one-worker path twice: as configured
// without scanning, which meters in batches, and with a Label callback,
// which forces metering packet by packet. Records and counters must be
// the same.
func TestInlineBatchedMatchesPerPacket(t *testing.T) {
	cfg := synth.Large()
	cfg.Flows = 3000
	cfg.Duration = 20 * time.Second
	path := filepath.Join(t.TempDir(), "trace.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WritePcap(cfg, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(mc Config) ([]flow.Record, Stats) {
		r, err := pcapfile.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var recs Records
		p := New(mc, recs.Sink())
		if err := p.Run(context.Background(), []drivers.Source{r}, false); err != nil {
			t.Fatal(err)
		}
		return recs.Recs, p.Stats()
	}
	for _, maxFlows := range []int{0, 300} {
		var mc Config
		mc.Meter.MaxFlows = maxFlows
		mc.Meter.IdleTimeout = 5 * time.Second
		want, wantStats := run(func() Config {
			c := mc
			c.Meter.Label = func(*decode.Packet, uint32) uint32 { return 0 }
			return c
		}())
		got, gotStats := run(mc)
		if len(want) < 1000 {
			t.Fatalf("only %d records", len(want))
		}
		if maxFlows > 0 && wantStats.Meter.Expired[flow.EndResource] == 0 {
			t.Fatalf("max %d: no evictions", maxFlows)
		}
		if len(got) != len(want) {
			t.Fatalf("max %d: batched: %d records, per packet %d", maxFlows, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("max %d: record %d\nbatched    %+v\nper packet %+v", maxFlows, i, got[i], want[i])
			}
		}
		if !reflect.DeepEqual(gotStats, wantStats) {
			t.Fatalf("max %d: stats\nbatched    %+v\nper packet %+v", maxFlows, gotStats, wantStats)
		}
	}
}
