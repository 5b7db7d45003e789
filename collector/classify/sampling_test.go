package classify

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestFromStoreAppliesStoredSampling: a classified report read from the
// store scales records of an exporter that announced 1-in-10 sampling
// after sending them (and carries no interval per record), as the plain
// report does.
func TestFromStoreAppliesStoredSampling(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "flows.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := store.Origin{Exporter: "192.0.2.9", Domain: 4}
	base := int64(1_700_000_000_000_000_000)
	rec := flow.Record{
		Key:     flow.Key{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Sport: 5000, Dport: 53, Proto: 17},
		Packets: 3, Octets: 300, First: base, Last: base + 1e9, IPVersion: 4, EndReason: flow.EndIdle,
	}
	if err := st.Put(o, []flow.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutAnnouncements(map[store.Origin][]store.Announcement{o: {{At: time.Unix(0, base+5e9), Since: base + 1e9, Interval: 10}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := Default().FromStore(context.Background(), st, store.Query{}, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Octets != 300 || s.EstimatedOctets != 3000 || s.SamplingUnknown != 0 {
		t.Fatalf("summary: %d octets, %d estimated, %d records of unknown sampling; want 300, 3000, 0", s.Octets, s.EstimatedOctets, s.SamplingUnknown)
	}
}
