package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// fixtureDB writes the fixture flows, names and stats into a new store
// and returns its path.
func fixtureDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flows.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	by := map[store.Origin][]flow.Record{}
	for _, f := range fixtureFlows() {
		by[f.Origin] = append(by[f.Origin], f.Record)
	}
	for o, recs := range by {
		if err := s.Put(o, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutNames(fixtureNames()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStats(*fixtureStats()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, f func(context.Context, []string, *bytes.Buffer) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := f(context.Background(), args, &out)
	return out.String(), err
}

func runReport(ctx context.Context, args []string, out *bytes.Buffer) error {
	return RunReport(ctx, args, out)
}

func runFlows(ctx context.Context, args []string, out *bytes.Buffer) error {
	return RunFlows(ctx, args, out)
}

func TestRunReportMatchesBuild(t *testing.T) {
	db := fixtureDB(t)
	got, err := run(t, runReport, "--db", db, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := writeAll(t, func(b *bytes.Buffer) error {
		return Build(fixtureFlows(), withNames(fixtureNames(), Options{Stats: fixtureStats()})).WriteJSON(b)
	})
	if got != string(want) {
		t.Errorf("mira report --format json differs from Build over the same flows:\n%s\nwant\n%s", got, want)
	}
}

func reportJSON(t *testing.T, args ...string) *Report {
	t.Helper()
	out, err := run(t, runReport, args...)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return &r
}

func TestRunReportFilters(t *testing.T) {
	db := fixtureDB(t)
	// Flows active between 19:04:00 and 19:04:10: SMTP (ends 19:04:03),
	// the web download (2 of its 3 records) and the ping; not DNS (19:03:59) nor the SYN
	// (19:04:14).
	r := reportJSON(t, "--db", db, "--format", "json", "--from", "2019-03-14 19:04:00", "--to", "2019-03-14T19:04:10Z")
	if r.Summary.Biflows != 3 || r.Summary.Flows != 6 {
		t.Errorf("time range: %d biflows of %d flows, want 3 of 6", r.Summary.Biflows, r.Summary.Flows)
	}
	r = reportJSON(t, "--db", db, "--format", "json", "--order", "bytes", "--limit", "1")
	if len(r.Biflows) != 1 || r.Biflows[0].Dport != 80 || r.Summary.Biflows != 5 || r.Summary.Listed != 1 {
		t.Errorf("limit 1 by bytes: %+v, summary %+v", r.Biflows, r.Summary)
	}
	r = reportJSON(t, "--db", db, "--format", "json", "--by", "category")
	for _, u := range r.Usage {
		if u.Aggregate != "" {
			t.Errorf("--by category row has aggregate %q", u.Aggregate)
		}
	}
	if len(r.Usage) != 3 {
		t.Errorf("--by category: %d rows, want 3", len(r.Usage))
	}
	r = reportJSON(t, "--db", db, "--format", "json", "--exporter", "probe-b")
	if r.Summary.Flows != 1 || len(r.Biflows) != 1 || r.Biflows[0].Probes[0] != "probe-b" {
		t.Errorf("--exporter probe-b: %+v", r.Summary)
	}
}

func TestRunReportTable(t *testing.T) {
	db := fixtureDB(t)
	out, err := run(t, runReport, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	want := writeAll(t, func(b *bytes.Buffer) error {
		return Build(fixtureFlows(), withNames(fixtureNames(), Options{Stats: fixtureStats()})).WriteTable(b)
	})
	if out != string(want) {
		t.Errorf("table output:\n%s\nwant\n%s", out, want)
	}
}

func TestRunFlows(t *testing.T) {
	db := fixtureDB(t)
	out, err := run(t, runFlows, "--db", db, "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 11 || rows[0][0] != "first" {
		t.Fatalf("got %d csv rows (header %v), want header + 10", len(rows), rows[0])
	}
	out, err = run(t, runFlows, "--db", db, "--format", "csv", "--domain", "2")
	if err != nil {
		t.Fatal(err)
	}
	if rows, _ := csv.NewReader(strings.NewReader(out)).ReadAll(); len(rows) != 2 || rows[1][15] != "probe-b" {
		t.Errorf("--domain 2: %q", rows)
	}
	out, err = run(t, runFlows, "--db", db, "--format", "json", "--order", "bytes", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	var l FlowList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Flows) != 2 || l.Flows[0].Octets != 9000 || l.Flows[1].Octets != 4000 || l.Summary.Flows != 10 {
		t.Errorf("largest two: %+v summary %+v", l.Flows, l.Summary)
	}
	out, err = run(t, runFlows, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	want := writeAll(t, func(b *bytes.Buffer) error {
		return ListFlows(fixtureFlows(), withNames(fixtureNames(), Options{})).WriteTable(b)
	})
	if out != string(want) {
		t.Errorf("table:\n%s\nwant\n%s", out, want)
	}
}

func TestRunErrors(t *testing.T) {
	db := fixtureDB(t)
	missing := filepath.Join(t.TempDir(), "none.db")
	tests := []struct {
		name string
		f    func(context.Context, []string, *bytes.Buffer) error
		args []string
		want string
	}{
		{"no db", runReport, nil, "--db FILE is required"},
		{"missing db", runReport, []string{"--db", missing}, "database " + missing + " does not exist"},
		{"missing db flows", runFlows, []string{"--db", missing}, "database " + missing + " does not exist"},
		{"by as", runReport, []string{"--db", db, "--by", "as"}, "--by as needs --as FILE"},
		{"as file", runReport, []string{"--db", db, "--by", "as", "--as", missing}, "--as"},
		{"confidence", runReport, []string{"--db", db, "--confidence", "1.5"}, "--confidence 1.5"},
		{"by bogus", runReport, []string{"--db", db, "--by", "colour"}, `unknown report grouping "colour"`},
		{"format", runFlows, []string{"--db", db, "--format", "xml"}, `--format "xml": want table, json or csv`},
		{"from", runReport, []string{"--db", db, "--from", "last tuesday"}, `--from "last tuesday": want RFC 3339`},
		{"from after to", runReport, []string{"--db", db, "--from", "2019-03-15", "--to", "2019-03-14"}, "is not before --to"},
		{"order", runFlows, []string{"--db", db, "--order", "size"}, `--order "size"`},
		{"limit", runFlows, []string{"--db", db, "--limit", "-1"}, "--limit -1"},
		{"window", runReport, []string{"--db", db, "--window", "0s"}, "--window 0s"},
		{"argument", runFlows, []string{"--db", db, "extra"}, `unexpected argument "extra"`},
		{"flag", runFlows, []string{"--colour"}, "flag provided but not defined: -colour"},
		{"not a store", runReport, []string{"--db", "cmd.go"}, "store: open cmd.go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.f, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	out, err := run(t, runReport, "-h")
	if err != nil || !strings.Contains(out, "-by") || !strings.Contains(out, "-db") {
		t.Errorf("help: %v\n%s", err, out)
	}
}

func TestRunCancelled(t *testing.T) {
	db := fixtureDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := RunFlows(ctx, []string{"--db", db}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
