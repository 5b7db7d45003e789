package analyze_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/synth"
)

// connOf keys a connection regardless of direction (the orientation
// flow.Key.Compare puts first). ICMP echo requests and replies
// (type<<8|code in Dport) share a key.
func connOf(k flow.Key) flow.Key {
	if r := k.Reverse(); r.Compare(k) < 0 {
		k = r
	}
	if k.Proto == 1 || k.Proto == 58 {
		switch max(k.Sport, k.Dport) >> 8 {
		case 0, 8, 128, 129:
			k.Sport, k.Dport = 0, 0xffff
		}
	}
	return k
}

// analyzed runs `mira analyze`'s chain (probe -> IPFIX -> collector ->
// store) over a capture and returns the store, open read-only.
func analyzed(t *testing.T, pcap string) *store.Store {
	t.Helper()
	st, err := tryAnalyzed(t, pcap)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func tryAnalyzed(t *testing.T, pcap string) (*store.Store, error) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "mira.db")
	if _, err := analyze.Analyze(context.Background(), analyze.Options{Files: []string{pcap}, DB: db}); err != nil {
		return nil, fmt.Errorf("analyze %s: %w", pcap, err)
	}
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { st.Close() })
	return st, nil
}

// directedSymptoms sums the stored records' symptom counts per direction.
func directedSymptoms(t *testing.T, st *store.Store) map[flow.Key]map[string]uint64 {
	t.Helper()
	names, err := st.NameIndex()
	if err != nil {
		t.Fatal(err)
	}
	out := map[flow.Key]map[string]uint64{}
	err = st.Flows(store.Query{}, func(f store.StoredFlow) error {
		r := &f.Record
		k := r.Key
		for _, s := range r.Symptoms {
			if out[k] == nil {
				out[k] = map[string]uint64{}
			}
			n := names.At(f.Origin, r.Last).Symptoms[s.ID]
			if n == "" {
				n = fmt.Sprint(s.ID)
			}
			out[k][n] += uint64(s.Count)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// synthCategory maps the generator's ground-truth category names onto the
// rules' names: its control group "Unknown" must stay unclassified.
func synthCategory(c string) string {
	if c == "Unknown" {
		return report.DefaultCategory
	}
	return c
}

func checkSynth(t *testing.T, cfg synth.Config) {
	pcap := filepath.Join(t.TempDir(), "synth.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := synth.WritePcap(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st := analyzed(t, pcap)
	got := directedSymptoms(t, st)
	rep, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{Rules: classify.Default()})
	if err != nil {
		t.Fatal(err)
	}
	cats := map[flow.Key][]string{}
	for _, b := range rep.Biflows {
		k := connOf(b.Key)
		cats[k] = append(cats[k], b.Category)
	}

	// Symptoms: every planted marker found, nothing on random payload.
	missing, falses, fragmented := 0, 0, 0
	for _, tf := range truth.Flows {
		k := tf.Key
		g := got[k]
		if tf.App == "random" {
			if len(g) > 0 {
				falses++
				t.Errorf("random-payload flow %v (session %d) raised symptoms %v", k, tf.Session, g)
			}
			continue
		}
		if tf.Fragments > 0 {
			fragmented++
		}
		for name, n := range tf.Symptoms {
			if g[name] < uint64(n) {
				missing++
				if missing <= 30 {
					t.Errorf("%s flow %v (session %d, tunnel %q, straddles %d, fragments %d): %s found %d times, planted %d",
						tf.App, k, tf.Session, tf.Tunnel, tf.Straddles, tf.Fragments, name, g[name], n)
				}
			}
		}
	}

	// Categories per unidirectional flow, as the truth lists them.
	type tally struct{ agree, all int }
	per := map[string]*tally{}
	agree := 0
	shown := 0
	for _, tf := range truth.Flows {
		want := synthCategory(tf.Category)
		k := connOf(tf.Key)
		if per[want] == nil {
			per[want] = &tally{}
		}
		per[want].all++
		cs := cats[k]
		ok := len(cs) > 0
		for _, c := range cs {
			ok = ok && c == want
		}
		if ok {
			agree++
			per[want].agree++
		} else if shown++; shown <= 10 {
			t.Logf("%s flow %v (session %d): categories %v, truth %s, symptoms %v", tf.App, k, tf.Session, cs, want, got[tf.Key])
		}
	}
	var names []string
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("category %-13s %4d/%4d flows agree with the ground truth", n, per[n].agree, per[n].all)
	}
	share := float64(agree) / float64(len(truth.Flows))
	t.Logf("%d/%d flows (%.2f%%) agree; %d planted symptoms missed; %d random flows with symptoms; %d flows fragmented",
		agree, len(truth.Flows), 100*share, missing, falses, fragmented)
	if share < 0.99 {
		t.Errorf("category agreement %.2f%% < 99%%", 100*share)
	}
}

// TestSynthGroundTruth checks the default symptom database and rules on
// `mira synth` traffic: the built-in sample and a larger trace.
func TestSynthGroundTruth(t *testing.T) {
	t.Run("default", func(t *testing.T) { checkSynth(t, synth.Default()) })
	t.Run("seed7", func(t *testing.T) {
		if testing.Short() {
			t.Skip("short")
		}
		cfg := synth.Default()
		cfg.Seed = 7
		cfg.Flows = 600
		checkSynth(t, cfg)
	})
	t.Run("realistic", func(t *testing.T) {
		if testing.Short() {
			t.Skip("short")
		}
		cfg := synth.Realistic()
		cfg.Flows = 600
		cfg.LongFlows = 2
		checkSynth(t, cfg)
	})
}
