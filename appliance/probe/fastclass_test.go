package probe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/synth"
)

// TestFastClassAndNames runs the probe on a synthetic capture with a
// fast-class list naming one server: that server's flows carry the
// category and no symptoms (they are not scanned), the others are
// scanned, and the exported file announces the symptom and category
// names in options records.
func TestFastClassAndNames(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "synth.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := synth.WritePcap(synth.Default(), f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A server whose flows carry planted symptoms.
	var server netip.Addr
	for _, tf := range truth.Flows {
		if tf.Initiator && tf.Proto == 6 && tf.Dst.Is4() && len(tf.Symptoms) > 0 {
			server = tf.Dst
			break
		}
	}
	list := filepath.Join(dir, "lab.csv")
	os.WriteFile(list, []byte(server.String()+",Lab\n"), 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cfg, err := config.ParseProbe("t.yaml", []byte(fmt.Sprintf(
		"capture:\n  files: [%q]\nexport:\n  - url: file://%s\nfastclass:\n  files: [%q]\n", pcap, out, list)))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.ipfix"))
	if len(files) == 0 {
		t.Fatal("no export file")
	}
	s := ipfix.NewSession("file")
	var opts ipfix.DomainOptions
	s.OnOptions = func(_ uint32, o ipfix.DomainOptions) { opts = o }
	var recs []flow.Record
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			h, ok := ipfix.ParseHeader(b)
			if !ok || int(h.Length) > len(b) {
				t.Fatal("bad message")
			}
			n := len(recs)
			recs, _, err = s.Decode(b[:h.Length], recs)
			if err != nil {
				t.Fatal(err)
			}
			for i := n; i < len(recs); i++ { // Symptoms alias the session's buffer
				recs[i].Symptoms = append([]flow.SymptomCount(nil), recs[i].Symptoms...)
			}
			b = b[h.Length:]
		}
	}
	if opts.Categories[1] != "Lab" {
		t.Errorf("category names %v", opts.Categories)
	}
	db := symptom.Default()
	for _, sy := range db.Symptoms() {
		if opts.Symptoms[sy.ID] != sy.Name {
			t.Errorf("symptom %d named %q, want %q", sy.ID, opts.Symptoms[sy.ID], sy.Name)
		}
	}
	lab, labSyms, scanned := 0, 0, 0
	for _, r := range recs {
		if r.Src == server || r.Dst == server {
			lab++
			if r.Category != 1 {
				t.Errorf("flow %v: category %d, want 1", r.Key, r.Category)
			}
			labSyms += len(r.Symptoms)
			continue
		}
		if r.Category != 0 {
			t.Errorf("flow %v: category %d, want none", r.Key, r.Category)
		}
		if len(r.Symptoms) > 0 {
			scanned++
		}
	}
	if lab == 0 || labSyms != 0 || scanned == 0 {
		t.Fatalf("%d fast-classed flows with %d symptoms (want some, none); %d other flows with symptoms", lab, labSyms, scanned)
	}
	t.Logf("%d flows of %v fast-classed, %d records in all", lab, server, len(recs))
}
