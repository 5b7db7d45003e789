package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
)

// TestReadmeMultiProbe runs the README's "Many probes, one collector"
// example as written: the two configurations shipped in examples/ (the
// README shows out.yaml inline, and must show it as shipped), two
// mira-probe processes on the `mira synth` sample exporting to one
// mira-collector, and `mira report --by aggregate`. The probe that meters
// outgoing traffic samples 1 packet in 4, so the report must estimate the
// totals one unsampled probe meters (`mira analyze` on the same file)
// within its interval, and name the campus aggregate.
func TestReadmeMultiProbe(t *testing.T) {
	out, in := filepath.Join("..", "examples", "out.yaml"), filepath.Join("..", "examples", "in.yaml")
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```yaml\n"+string(shipped)+"```")) {
		t.Errorf("the README's out.yaml block is not examples/out.yaml:\n%s", shipped)
	}
	for _, f := range []string{out, in} {
		if !bytes.Contains(readme, []byte("examples/"+filepath.Base(f))) {
			t.Errorf("the README does not name examples/%s", filepath.Base(f))
		}
		if _, err := config.LoadProbe(f); err != nil {
			t.Fatal(err)
		}
	}

	sample := synthPcap(t, t.TempDir())
	truth := analyzeJSON(t, sample).Summary
	coll := startCollector(t, false, true)
	for i, cfg := range []string{out, in} {
		r := runProbe(t, "--config", cfg, "--domain", []string{"1", "2"}[i], "-r", sample, "--export", "tcp://"+coll.tcp)
		if r.records == 0 {
			t.Fatalf("%s: the probe exported no records", cfg)
		}
	}
	coll.p.terminate(t, 20*time.Second)
	raw := run(t, bin(t, "mira"), "report", "--db", coll.db, "--by", "aggregate", "--format", "json", "--confidence", "0.999")
	var rep struct {
		Usage []struct {
			Aggregate string `json:"aggregate"`
			Biflows   int    `json:"biflows"`
		} `json:"usage"`
		Summary struct {
			Packets  uint64 `json:"packets"`
			Octets   uint64 `json:"octets"`
			Estimate *struct {
				Packets     uint64 `json:"packets"`
				PacketsLow  uint64 `json:"packets_low"`
				PacketsHigh uint64 `json:"packets_high"`
				Octets      uint64 `json:"octets"`
				OctetsLow   uint64 `json:"octets_low"`
				OctetsHigh  uint64 `json:"octets_high"`
			} `json:"estimate"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("mira report: %v\n%s", err, raw)
	}
	s := rep.Summary
	if s.Estimate == nil || s.Packets >= truth.Packets {
		t.Fatalf("report of the sampled probes: %d packets observed of %d, estimate %+v", s.Packets, truth.Packets, s.Estimate)
	}
	e := s.Estimate
	t.Logf("observed %d packets %d bytes; estimated %d [%d, %d] packets, %d [%d, %d] bytes; one unsampled probe %d packets %d bytes",
		s.Packets, s.Octets, e.Packets, e.PacketsLow, e.PacketsHigh, e.Octets, e.OctetsLow, e.OctetsHigh, truth.Packets, truth.Octets)
	if truth.Packets < e.PacketsLow || truth.Packets > e.PacketsHigh || truth.Octets < e.OctetsLow || truth.Octets > e.OctetsHigh {
		t.Errorf("the unsampled totals are outside the 99.9%% intervals")
	}
	var aggs []string
	campus := false
	for _, u := range rep.Usage {
		aggs = append(aggs, u.Aggregate)
		campus = campus || (u.Aggregate == "campus" && u.Biflows > 0)
	}
	if !campus {
		t.Errorf("no campus biflows by aggregate: %s", strings.Join(aggs, ", "))
	}
}
