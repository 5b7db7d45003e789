package analyze_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/synth"
)

// dirKey is one direction of a connection, keyed like synth.TruthFlow.
type dirKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	vlan         uint16
}

func (k dirKey) String() string {
	return fmt.Sprintf("%s:%d>%s:%d/%d vlan %d", k.src, k.sport, k.dst, k.dport, k.proto, k.vlan)
}

// connOf keys a connection regardless of direction. ICMP echo requests
// and replies (type<<8|code in dport) share a key.
func connOf(k dirKey) dirKey {
	if k.dst.Less(k.src) || (k.dst == k.src && k.dport < k.sport) {
		k = dirKey{k.dst, k.src, k.dport, k.sport, k.proto, k.vlan}
	}
	if k.proto == 1 || k.proto == 58 {
		switch max(k.sport, k.dport) >> 8 {
		case 0, 8, 128, 129:
			k.sport, k.dport = 0, 0xffff
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
func directedSymptoms(t *testing.T, st *store.Store) map[dirKey]map[string]uint64 {
	t.Helper()
	names, err := st.NameIndex()
	if err != nil {
		t.Fatal(err)
	}
	out := map[dirKey]map[string]uint64{}
	err = st.Flows(store.Query{}, func(f store.StoredFlow) error {
		r := &f.Record
		k := dirKey{r.Src, r.Dst, r.Sport, r.Dport, r.Proto, r.VLAN}
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
	cats := map[dirKey][]string{}
	for _, b := range rep.Biflows {
		k := connOf(dirKey{b.Src, b.Dst, b.Sport, b.Dport, b.Proto, b.VLAN})
		cats[k] = append(cats[k], b.Category)
	}

	// Symptoms: every planted marker found, nothing on random payload.
	missing, falses, fragmented := 0, 0, 0
	for _, tf := range truth.Flows {
		k := dirKey{tf.Src, tf.Dst, tf.Sport, tf.Dport, tf.Proto, tf.VLAN}
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
					t.Errorf("%s flow %s (session %d, tunnel %q, straddles %d, fragments %d): %s found %d times, planted %d",
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
		k := connOf(dirKey{tf.Src, tf.Dst, tf.Sport, tf.Dport, tf.Proto, tf.VLAN})
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
			t.Logf("%s flow %v (session %d): categories %v, truth %s, symptoms %v", tf.App, k, tf.Session, cs, want, got[dirKey{tf.Src, tf.Dst, tf.Sport, tf.Dport, tf.Proto, tf.VLAN}])
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
}
