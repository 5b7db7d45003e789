package cluster

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// TestGatherOptionsStaleLedger: a probe's newer ledger published by one
// ingest node, then an older one of the same process published by
// another (the probe reconnected to it and resent it): the report keeps
// the newer one, as a single collector's store does (store.PutLedgers).
// Before, the last one published won: the report's loss went back to
// the older figures.
func TestGatherOptionsStaleLedger(t *testing.T) {
	_, _, js := embeddedJS(t)
	ctx := context.Background()
	o := store.Origin{Exporter: "192.0.2.1", Domain: 1}
	for _, l := range []store.Ledger{
		{Origin: o, SystemInit: 1000, Messages: 10, Records: 100, Loss: flow.Loss{Queue: 50}},
		{Origin: o, SystemInit: 1000, Messages: 5, Records: 50, Loss: flow.Loss{Queue: 20}},
	} {
		b, err := json.Marshal(optionsMessage{Origin: o, Ledger: &l})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, OptionsSubject, b); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := gatherOptions(ctx, js, st); err != nil {
		t.Fatal(err)
	}
	ls, err := st.Ledgers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Messages != 10 || ls[0].Loss.Queue != 50 {
		t.Fatalf("ledgers %+v, want the newer one (10 messages, queue 50)", ls)
	}
}
