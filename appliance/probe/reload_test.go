package probe

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/selection"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/synth"
)

// gateSource stops after `after` packets until open is closed.
type gateSource struct {
	drivers.Source
	after   int
	n       int
	reached chan struct{}
	open    chan struct{}
}

func (g *gateSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if g.n == g.after {
		close(g.reached)
		<-g.open
	}
	g.n++
	return g.Source.Next()
}

// namesExporter records what it gets and when names were announced.
type namesExporter struct {
	mu      sync.Mutex
	recs    []flow.Record
	renamed []int // len(recs) at each SetNames
	aggs    []map[uint32]string
}

func (e *namesExporter) Export(recs []flow.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recs = append(e.recs, recs...)
	return nil
}

func (e *namesExporter) Close() error { return nil }

func (e *namesExporter) SetNames(aggs map[uint32]string, _, _ map[uint16]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.renamed = append(e.renamed, len(e.recs))
	e.aggs = append(e.aggs, aggs)
}

func synthFile(t *testing.T, dir string) (string, *synth.Truth) {
	t.Helper()
	path := filepath.Join(dir, "synth.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	truth, err := synth.WritePcap(synth.Default(), f)
	if err != nil {
		t.Fatal(err)
	}
	return path, truth
}

// TestReloadMidCapture reloads the probe's configuration (new aggregate
// names and ids, a symptom database from a file) while a capture is
// read by two workers: every record metered before the reload carries
// the old aggregate, every record after it the new one, the exporter
// hears the new names between the two, no packet is lost (the records
// hold every packet of the capture), and a configuration whose symptom
// file does not load is refused with the file's error while the probe
// runs on.
func TestReloadMidCapture(t *testing.T) {
	dir := t.TempDir()
	pcap, _ := synthFile(t, dir)
	all := "net: [0.0.0.0/0, \"::/0\"]"
	cfgA, err := config.ParseProbe("a.yaml", []byte("pipeline: {workers: 2}\naggregates:\n  rules: [{name: old, id: 1, "+all+"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	syms := filepath.Join(dir, "symptoms.yaml")
	if err := os.WriteFile(syms, symptomFileYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgB, err := config.ParseProbe("b.yaml", []byte("pipeline: {workers: 2}\nsymptoms: {file: "+syms+"}\naggregates:\n  rules: [{name: new, id: 2, "+all+"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nsymptoms:\n  - name: X\n    patterns:\n      - {regex: \"(\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgBad, err := config.ParseProbe("c.yaml", []byte("pipeline: {workers: 2}\nsymptoms: {file: "+bad+"}\n"))
	if err != nil {
		t.Fatal(err)
	}

	src, err := pcapfile.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		if _, _, err := src.Next(); err != nil {
			break
		}
		total++
	}
	src.Close()
	src, err = pcapfile.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSource{Source: src, after: total / 2, reached: make(chan struct{}), open: make(chan struct{})}
	exp := &namesExporter{}
	p := New(cfgA, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{g}, Exporters: []Exporter{exp}})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	<-g.reached
	err = p.Reload(cfgBad)
	t.Logf("refused: %v", err)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("reload with a bad symptom file: %v, want an error naming %s", err, bad)
	}
	// A file's reader cuts the packet stream where it sees the reload,
	// so Reload returns once the reader reads on.
	reloadAtGate(t, p, cfgB, g, done)
	if applied, refused := p.Reloads(); applied != 1 || refused != 1 {
		t.Fatalf("reloads applied %d, refused %d; want 1 and 1", applied, refused)
	}
	if len(exp.renamed) != 1 || exp.aggs[0][2] != "new" {
		t.Fatalf("names announced %d times (%v), want once with aggregate 2 = new", len(exp.renamed), exp.aggs)
	}
	cut := exp.renamed[0]
	var packets uint64
	for i, r := range exp.recs {
		packets += r.Packets
		want := uint32(1)
		if i >= cut {
			want = 2
		}
		if r.Aggregate != want {
			t.Fatalf("record %d of %d (names announced after %d) has aggregate %d, want %d", i, len(exp.recs), cut, r.Aggregate, want)
		}
	}
	if cut == 0 || cut == len(exp.recs) {
		t.Fatalf("names announced after record %d of %d: want records on both sides", cut, len(exp.recs))
	}
	st := p.Pipeline().Stats()
	if packets != st.Meter.Packets || st.Packets != uint64(total) || st.Reloads != 1 {
		t.Fatalf("records hold %d packets, the meter counted %d, the pipeline read %d of %d, reloads %d",
			packets, st.Meter.Packets, st.Packets, total, st.Reloads)
	}
	if p.Symptoms() == nil || len(p.Symptoms().Symptoms()) != 1 {
		t.Fatalf("symptom database after the reload: %v", p.Symptoms())
	}
}

var symptomFileYAML = []byte(`version: 1
symptoms:
  - name: WEBGET
    description: an HTTP GET
    patterns:
      - {content: "GET /", anchor: line}
`)

// samplingExporter records the records it gets and the sampling
// announced, with how many records came before each announcement.
type samplingExporter struct {
	namesExporter
	announced []*ipfix.Sampling
	at        []int
}

func (e *samplingExporter) SetSampling(s *ipfix.Sampling) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.announced = append(e.announced, s)
	e.at = append(e.at, len(e.recs))
}

// TestReloadToUnsampled: a reload from random 1 in 4 to no sampling
// announces 1 in 1 (nil, saying nothing, left nfdump scaling the
// records after the reload by 4), and every record states its own
// sampling: 4 before the reload, 1 after.
func TestReloadToUnsampled(t *testing.T) {
	dir := t.TempDir()
	pcap, _ := synthFile(t, dir)
	cfgA, err := config.ParseProbe("a.yaml", []byte("sampling: {mode: random, interval: 4, seed: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfgB, err := config.ParseProbe("b.yaml", []byte("sampling: {mode: none}\n"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := pcapfile.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateSource{Source: src, after: 2000, reached: make(chan struct{}), open: make(chan struct{})}
	exp := &samplingExporter{}
	p := New(cfgA, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{g}, Exporters: []Exporter{exp}})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	<-g.reached
	reloadAtGate(t, p, cfgB, g, done)
	if len(exp.announced) != 1 || exp.announced[0] == nil || exp.announced[0].Interval != 1 {
		t.Fatalf("announced %v, want once 1 in 1", exp.announced)
	}
	cut := exp.at[0]
	if cut == 0 || cut == len(exp.recs) {
		t.Fatalf("announced after record %d of %d: want records on both sides", cut, len(exp.recs))
	}
	for i, r := range exp.recs {
		want := uint32(4)
		if i >= cut {
			want = 1
		}
		if r.SamplingPacketInterval != want {
			t.Fatalf("record %d of %d (announced after %d) states 1 in %d, want 1 in %d", i, len(exp.recs), cut, r.SamplingPacketInterval, want)
		}
	}
}

// TestUnsampledAnnounces: a probe that does not sample announces 1 in 1
// from its start, not nothing: a collector keeps the last sampling an
// exporter and domain announced, and nfdump scaled the records of a
// probe restarted unsampled under the domain of a run at random 1/4 by
// 4 (137,000 packets for 65,615).
func TestUnsampledAnnounces(t *testing.T) {
	cfg, err := config.ParseProbe("a.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	sel, err := selection.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if smp := p.exportSamplingOf(sel); smp == nil || smp.Interval != 1 || smp.Flow {
		t.Fatalf("unsampled probe announces %+v, want packet sampling 1 in 1", smp)
	}
}

// reloadAtGate reloads p with cfg while g holds its reader, opens the
// gate once the reload reached the pipeline, and waits for the reload
// and for the run (done) to end.
func reloadAtGate(t *testing.T, p *Probe, cfg *config.Probe, g *gateSource, done <-chan error) {
	t.Helper()
	reloaded := make(chan error, 1)
	go func() { reloaded <- p.Reload(cfg) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Pipeline().Stats().Reloads == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reload did not reach the pipeline")
		}
		time.Sleep(time.Millisecond)
	}
	close(g.open)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
