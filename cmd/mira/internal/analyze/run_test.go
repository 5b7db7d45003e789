package analyze_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/synth"
)

// runJSON runs `mira analyze --format json ARGS` and decodes the report.
func runJSON(t *testing.T, args ...string) (*report.Report, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := analyze.Run(context.Background(), append([]string{"--format", "json"}, args...), &out, &errb)
	if out.Len() == 0 {
		return nil, errb.String(), err
	}
	var r report.Report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%.500s", jerr, out.String())
	}
	return &r, errb.String(), err
}

func symptomTotal(r *report.Report) (n uint64, names map[string]bool) {
	names = map[string]bool{}
	for _, b := range r.Biflows {
		for s, c := range b.Symptoms {
			n += c
			names[s] = true
		}
	}
	return n, names
}

// TestSymptomsFile: --symptoms replaces the embedded database (the
// report's symptoms are the file's), and a missing or bad file is an
// error before any work.
func TestSymptomsFile(t *testing.T) {
	def, _, err := runJSON(t)
	if err != nil {
		t.Fatal(err)
	}
	n, names := symptomTotal(def)
	if n == 0 || !names["HTTP_GET"] && len(names) < 3 {
		t.Fatalf("the built-in sample shows no symptoms with the embedded database: %v", names)
	}
	dir := t.TempDir()
	// One symptom: the "GET " of HTTP requests, under a name of our own.
	custom := filepath.Join(dir, "custom.yaml")
	if err := os.WriteFile(custom, []byte("symptoms:\n  - name: OURS_GET\n    patterns:\n      - {content: \"GET \", anchor: start}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := runJSON(t, "--symptoms", custom)
	if err != nil {
		t.Fatal(err)
	}
	n, names = symptomTotal(got)
	if n == 0 || len(names) != 1 || !names["OURS_GET"] {
		t.Errorf("with --symptoms %s: symptoms %v (%d occurrences), want only OURS_GET", custom, names, n)
	}
	if got.Summary.Flows != def.Summary.Flows {
		t.Errorf("flows %d with the custom database, %d without", got.Summary.Flows, def.Summary.Flows)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("symptoms:\n  - name: X\n    patterns:\n      - {content: abc, anchor: end}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.yaml")
	for file, want := range map[string]string{missing: "none.yaml: no such file", bad: "bad.yaml:4"} {
		r, _, err := runJSON(t, "--symptoms", file)
		if err == nil || r != nil || !strings.Contains(err.Error(), "--symptoms") || !strings.Contains(err.Error(), want) {
			t.Errorf("--symptoms %s: report %v, error %v; want no report and an error with %q", file, r != nil, err, want)
		}
	}
}

// TestTruncatedCapture: a capture cut short is reported as far as it was
// read, and then the read error is returned (exit 1), as mira-probe
// exports what it read and then fails.
func TestTruncatedCapture(t *testing.T) {
	var pcap bytes.Buffer
	if _, err := synth.WritePcap(synth.Default(), &pcap); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, pcap.Bytes()[:pcap.Len()/3], 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, err := runJSON(t, cut)
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") || !strings.Contains(err.Error(), "covers only what was read") {
		t.Fatalf("error %v, want the read error", err)
	}
	if r == nil || r.Summary.Flows == 0 || r.Summary.Biflows == 0 {
		t.Fatalf("no report of what was read before the error: %+v", r)
	}
	full, _, err := runJSON(t)
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.Packets >= full.Summary.Packets {
		t.Errorf("truncated capture reports %d packets, the whole one %d", r.Summary.Packets, full.Summary.Packets)
	}
}

// TestProgress: --progress writes progress to stderr (the packets read,
// then the report phase), never to stdout; without it and without a
// terminal there is none.
func TestProgress(t *testing.T) {
	r, stderr, err := runJSON(t, "--progress")
	if err != nil || r == nil {
		t.Fatalf("report %v, err %v", r != nil, err)
	}
	for _, w := range []string{"analysed ", " packets", "building the report from ", " flow records: done in "} {
		if !strings.Contains(stderr, w) {
			t.Errorf("progress on stderr lacks %q: %q", w, stderr)
		}
	}
	if _, stderr, err = runJSON(t); err != nil || stderr != "" {
		t.Errorf("without --progress and a terminal: stderr %q, err %v", stderr, err)
	}
}

// TestDBHoldsRecords: mira analyze --db into a store that already holds
// records is refused: the report is the store's, so analysing the same
// capture twice into one --db reported twice its packets. A new file
// is analysed and kept.
func TestDBHoldsRecords(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mira.db")
	first, _, err := runJSON(t, "--db", db)
	if err != nil || first.Summary.Packets == 0 {
		t.Fatalf("into a new --db: %v", err)
	}
	again, _, err := runJSON(t, "--db", db)
	if err == nil || !strings.Contains(err.Error(), "already holds flow records") {
		var pk uint64
		if again != nil {
			pk = again.Summary.Packets
		}
		t.Fatalf("into the same --db again: %v (report of %d packets, the capture has %d)", err, pk, first.Summary.Packets)
	}
}

// TestTimeoutFlags: negative --idle-timeout and --active-timeout are
// refused before any work, as mira-probe refuses negative meter
// timeouts (they were taken as the defaults, silently); a positive one
// is the meter's (the built-in sample: 334 flows by default, more when
// flows time out after a second).
func TestTimeoutFlags(t *testing.T) {
	for _, f := range []string{"--idle-timeout", "--active-timeout"} {
		rep, stderr, err := runJSON(t, f, "-5s")
		if err == nil || rep != nil || !strings.Contains(err.Error(), "-5s is negative") || !strings.Contains(err.Error(), f[2:]) {
			t.Errorf("%s -5s: err %v, report %v, stderr %.200s: want refused, naming the flag", f, err, rep != nil, stderr)
		}
	}
	def, _, err := runJSON(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--idle-timeout", "--active-timeout"} {
		rep, _, err := runJSON(t, f, "1s")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Summary.Flows <= def.Summary.Flows || rep.Summary.Packets != def.Summary.Packets {
			t.Errorf("%s 1s: %d flows (%d packets), default %d (%d): the timeout was not applied", f, rep.Summary.Flows, rep.Summary.Packets, def.Summary.Flows, def.Summary.Packets)
		}
	}
}
