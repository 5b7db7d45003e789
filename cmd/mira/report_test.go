package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

func run(t *testing.T, f func(context.Context, []string, *bytes.Buffer) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := f(context.Background(), args, &out)
	return out.String(), err
}

func reportCmd(ctx context.Context, args []string, out *bytes.Buffer) error {
	return runReport(ctx, args, out)
}

func flowsCmd(ctx context.Context, args []string, out *bytes.Buffer) error {
	return runFlows(ctx, args, out)
}

// withNames sets o's name lookups to n's.
func withNames(n store.Names, o report.Options) report.Options {
	o.SymptomName = func(id uint16) string { return n.Symptoms[id] }
	o.CategoryName = func(id uint16) string { return n.Categories[id] }
	o.AggregateName = func(id uint32) string { return n.Aggregates[id] }
	return o
}

// fixtureReport is what mira report shows for the fixture store: its
// flows built with the embedded classification rules.
func fixtureReport() *report.Report {
	return report.Build(reporttest.Flows(), withNames(reporttest.Names(), report.Options{Stats: reporttest.Stats(), Rules: classify.Default()}))
}

func writeAll(t *testing.T, f func(*bytes.Buffer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRunReportMatchesBuild(t *testing.T) {
	db := reporttest.DB(t)
	got, err := run(t, reportCmd, "--db", db, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := writeAll(t, func(b *bytes.Buffer) error {
		return fixtureReport().WriteJSON(b)
	})
	if got != string(want) {
		t.Errorf("mira report --format json differs from Build over the same flows:\n%s\nwant\n%s", got, want)
	}
}

func reportJSON(t *testing.T, args ...string) *report.Report {
	t.Helper()
	out, err := run(t, reportCmd, args...)
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return &r
}

func TestRunReportFilters(t *testing.T) {
	db := reporttest.DB(t)
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
	cats := map[string]bool{}
	for _, b := range fixtureReport().Biflows {
		cats[b.Category] = true
	}
	if len(r.Usage) != len(cats) || len(cats) < 2 {
		t.Errorf("--by category: %d rows, want one per category of the biflows (%d)", len(r.Usage), len(cats))
	}
	r = reportJSON(t, "--db", db, "--format", "json", "--exporter", "probe-b")
	if r.Summary.Flows != 1 || len(r.Biflows) != 1 || r.Biflows[0].Probes[0] != "probe-b" {
		t.Errorf("--exporter probe-b: %+v", r.Summary)
	}
}

func TestRunReportTable(t *testing.T) {
	db := reporttest.DB(t)
	out, err := run(t, reportCmd, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	// The table lists the largest biflows first by default.
	want := writeAll(t, func(b *bytes.Buffer) error {
		return report.Build(reporttest.Flows(), withNames(reporttest.Names(), report.Options{Stats: reporttest.Stats(), Rules: classify.Default(),
			Order: report.OrderBytes, Limit: DefaultTableLimit})).WriteTable(b)
	})
	if out != string(want) {
		t.Errorf("table output:\n%s\nwant\n%s", out, want)
	}
}

func TestRunFlows(t *testing.T) {
	db := reporttest.DB(t)
	out, err := run(t, flowsCmd, "--db", db, "--format", "csv")
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
	out, err = run(t, flowsCmd, "--db", db, "--format", "csv", "--domain", "2")
	if err != nil {
		t.Fatal(err)
	}
	if rows, _ := csv.NewReader(strings.NewReader(out)).ReadAll(); len(rows) != 2 || rows[1][15] != "probe-b" {
		t.Errorf("--domain 2: %q", rows)
	}
	out, err = run(t, flowsCmd, "--db", db, "--format", "json", "--order", "bytes", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	var l report.FlowList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Flows) != 2 || l.Flows[0].Octets != 9000 || l.Flows[1].Octets != 4000 || l.Summary.Flows != 10 {
		t.Errorf("largest two: %+v summary %+v", l.Flows, l.Summary)
	}
	out, err = run(t, flowsCmd, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	want := writeAll(t, func(b *bytes.Buffer) error {
		return report.ListFlows(reporttest.Flows(), withNames(reporttest.Names(), report.Options{Rules: classify.Default()})).WriteTable(b)
	})
	if out != string(want) {
		t.Errorf("table:\n%s\nwant\n%s", out, want)
	}
}

// TestFlowsCategoriesAsReport: mira flows names each flow's category as
// mira report names its biflow's (the collector's classification), not
// the probe's category field, which is "Unclassified" for most flows.
func TestFlowsCategoriesAsReport(t *testing.T) {
	db := reporttest.DB(t)
	out, err := run(t, flowsCmd, "--db", db, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l report.FlowList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	rep := reportJSON(t, "--db", db, "--format", "json")
	same := func(f *report.Flow, b *report.Biflow) bool {
		if f.Proto != b.Proto || f.VLAN != b.VLAN || int64(f.First) < b.First || int64(f.Last) > b.Last {
			return false
		}
		icmp := f.Proto == 1 || f.Proto == 58
		fw := f.Src == b.Src && f.Dst == b.Dst && (icmp || f.Sport == b.Sport && f.Dport == b.Dport)
		rv := f.Src == b.Dst && f.Dst == b.Src && (icmp || f.Sport == b.Dport && f.Dport == b.Sport)
		return fw || rv
	}
	classified := 0
	for i := range l.Flows {
		f := &l.Flows[i]
		var b *report.Biflow
		for j := range rep.Biflows {
			if same(f, &rep.Biflows[j]) {
				b = &rep.Biflows[j]
				break
			}
		}
		if b == nil {
			t.Errorf("flow %v:%d > %v:%d in no biflow of the report", f.Src, f.Sport, f.Dst, f.Dport)
			continue
		}
		if f.Category != b.Category {
			t.Errorf("flow %v:%d > %v:%d: category %q, its biflow's in mira report %q", f.Src, f.Sport, f.Dst, f.Dport, f.Category, b.Category)
		}
		if f.Category != report.DefaultCategory {
			classified++
		}
	}
	if classified < len(l.Flows)/2 {
		t.Errorf("%d of %d flows classified", classified, len(l.Flows))
	}
	// --rules: another rule set gives other categories.
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - category: Everything\n    when: \"true\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, flowsCmd, "--db", db, "--format", "csv", "--rules", rules)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, ",Everything,"); n != len(l.Flows) {
		t.Errorf("--rules with one catch-all rule: %d of %d flows in its category\n%s", n, len(l.Flows), out)
	}
}

func TestRunErrors(t *testing.T) {
	db := reporttest.DB(t)
	missing := filepath.Join(t.TempDir(), "none.db")
	tests := []struct {
		name string
		f    func(context.Context, []string, *bytes.Buffer) error
		args []string
		want string
	}{
		{"no db", reportCmd, nil, "--db FILE is required"},
		{"missing db", reportCmd, []string{"--db", missing}, "database " + missing + " does not exist"},
		{"missing db flows", flowsCmd, []string{"--db", missing}, "database " + missing + " does not exist"},
		{"by as", reportCmd, []string{"--db", db, "--by", "as"}, "--by as needs --as FILE"},
		{"as file", reportCmd, []string{"--db", db, "--by", "as", "--as", missing}, "--as"},
		{"confidence", reportCmd, []string{"--db", db, "--confidence", "1.5"}, "--confidence 1.5"},
		{"by bogus", reportCmd, []string{"--db", db, "--by", "colour"}, `unknown report grouping "colour"`},
		{"format", flowsCmd, []string{"--db", db, "--format", "xml"}, `--format "xml": want table, json or csv`},
		{"from", reportCmd, []string{"--db", db, "--from", "last tuesday"}, `--from "last tuesday": want RFC 3339`},
		{"from after to", reportCmd, []string{"--db", db, "--from", "2019-03-15", "--to", "2019-03-14"}, "is not before --to"},
		{"order", flowsCmd, []string{"--db", db, "--order", "size"}, `--order "size"`},
		{"limit", flowsCmd, []string{"--db", db, "--limit", "-1"}, "--limit -1"},
		{"window", reportCmd, []string{"--db", db, "--window", "0s"}, "--window 0s"},
		{"argument", flowsCmd, []string{"--db", db, "extra"}, `unexpected argument "extra"`},
		{"flag", flowsCmd, []string{"--colour"}, "flag provided but not defined: -colour"},
		{"not a store", reportCmd, []string{"--db", "main.go"}, "store: open main.go"},
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
	out, err := run(t, reportCmd, "-h")
	if err != nil || !strings.Contains(out, "-by") || !strings.Contains(out, "-db") {
		t.Errorf("help: %v\n%s", err, out)
	}
}

func TestRunCancelled(t *testing.T) {
	db := reporttest.DB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runFlows(ctx, []string{"--db", db}, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestSamplingOverride: --sampling EXPORTER=packet:N scales that
// exporter's records; malformed values are refused by the flag.
func TestSamplingOverride(t *testing.T) {
	db := reporttest.DB(t)
	out, err := run(t, reportCmd, "--db", db, "--format", "json", "--sampling", "probe-a=packet:10")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"estimate"`) {
		t.Fatalf("override gave no estimate:\n%s", out)
	}
	for _, bad := range []string{"x", "probe-a=packet:0", "probe-a=bytes:3", "=flow:2"} {
		if _, err := run(t, reportCmd, "--db", db, "--sampling", bad); err == nil || !strings.Contains(err.Error(), "flag -sampling") {
			t.Errorf("--sampling %q: %v", bad, err)
		}
	}
}

// manyBiflowsDB is a store of n one-way TCP flows, each its own biflow,
// one a second from 2019-03-14 19:00 on.
func manyBiflowsDB(t *testing.T, n int) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "many.db")
	s, err := store.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2019, 3, 14, 19, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]flow.Record, n)
	for i := range recs {
		recs[i] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: netip.MustParseAddr("198.51.100.1"),
			Sport: uint16(10000 + i), Dport: 80, Proto: 6}, Packets: 2, Octets: uint64(100 + i),
			First: t0 + int64(i)*int64(time.Second), Last: t0 + int64(i)*int64(time.Second) + 1}
	}
	if err := s.Put(store.Origin{Exporter: "probe-a", Domain: 1}, recs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestReportTableLimit: the table lists the 50 largest biflows and says how
// many it left out; json and csv stay complete unless --limit is given.
func TestReportTableLimit(t *testing.T) {
	db := manyBiflowsDB(t, 120)
	out, err := run(t, reportCmd, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(out, "<->"); rows != DefaultTableLimit {
		t.Errorf("table lists %d biflows, want %d", rows, DefaultTableLimit)
	}
	if !strings.Contains(out, "... 70 more biflows not listed (50 of 120 shown;") || !strings.Contains(out, "biflows 120 (listed 50)") {
		t.Errorf("table does not say what it left out:\n%s", out)
	}
	// The top 50: the largest biflow (192.0.2.119, 219 octets) is listed
	// first, the smallest (192.0.2.0) is left out.
	if first, smallest := strings.Index(out, "192.0.2.119:"), strings.Index(out, "192.0.2.0:"); first < 0 || smallest >= 0 || first > strings.Index(out, "192.0.2.118:") {
		t.Errorf("table does not list the largest biflows first:\n%s", out)
	}
	out, err = run(t, reportCmd, "--db", db, "--limit", "0")
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(out, "<->"); rows != 120 || strings.Contains(out, "not listed") {
		t.Errorf("--limit 0: %d rows", rows)
	}
	out, err = run(t, reportCmd, "--db", db, "--limit", "7")
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(out, "<->"); rows != 7 || !strings.Contains(out, "... 113 more biflows not listed") {
		t.Errorf("--limit 7: %d rows\n%s", rows, out)
	}
	if r := reportJSON(t, "--db", db, "--format", "json"); len(r.Biflows) != 120 || r.Summary.Listed != 120 {
		t.Errorf("json without --limit: %d biflows", len(r.Biflows))
	}
	if r := reportJSON(t, "--db", db, "--format", "json", "--limit", "3"); len(r.Biflows) != 3 || r.Summary.Biflows != 120 {
		t.Errorf("json --limit 3: %d of %d biflows", len(r.Biflows), r.Summary.Biflows)
	}
	out, err = run(t, reportCmd, "--db", db, "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := csv.NewReader(strings.NewReader(out)).ReadAll(); err != nil || len(rows) != 121 {
		t.Errorf("csv without --limit: %d rows (%v), want header + 120", len(rows), err)
	}
}

// TestReportFromRollups: `mira rollup` makes a store's rollups, then
// `mira report --source rollups` gives the usage table and totals of
// the report over the records, without the biflow list; auto answers
// from them, and a record filter is refused with the reason.
func TestReportFromRollups(t *testing.T) {
	db := reporttest.DB(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		var err error
		if args[0] == "rollup" {
			err = runRollup(context.Background(), args[1:], &out)
		} else {
			err = runReport(context.Background(), args[1:], &out)
		}
		return out.String(), err
	}
	if _, err := run("report", "--db", db, "--source", "rollups"); err == nil || !strings.Contains(err.Error(), "mira rollup") {
		t.Fatalf("a store without rollups: %v", err)
	}
	if out, err := run("rollup", "--db", db); err != nil || !strings.Contains(out, "from 10 records") {
		t.Fatalf("mira rollup: %q, %v", out, err)
	}
	var rec, rol, auto report.Report
	for _, x := range []struct {
		r   *report.Report
		src string
	}{{&rec, "records"}, {&rol, "rollups"}, {&auto, "auto"}} {
		out, err := run("report", "--db", db, "--format", "json", "--by", "category", "--source", x.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), x.r); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := json.Marshal(rec.Usage)
	b, _ := json.Marshal(rol.Usage)
	if string(a) != string(b) || rol.Summary.Biflows != rec.Summary.Biflows || len(rol.Biflows) != 0 || rol.Summary.Rollup == nil {
		t.Fatalf("rollups %s (%d biflows listed)\nrecords %s", b, len(rol.Biflows), a)
	}
	if auto.Summary.Rollup == nil {
		t.Error("--source auto did not answer from complete rollups")
	}
	if _, err := run("report", "--db", db, "--source", "rollups", "--port", "25"); err == nil || !strings.Contains(err.Error(), "--port") {
		t.Errorf("--port with --source rollups: %v", err)
	}
	out, err := run("report", "--db", db, "--source", "rollups")
	if err != nil || !strings.Contains(out, "Answered from the rollups") {
		t.Errorf("table from the rollups: %v\n%s", err, out)
	}
}

// TestReaderLetsWriterCommit: the store mira report and mira flows open
// does not hold the file between reads, so a releasing writer (as
// mira-collector opens it) commits while it is open; a reader that kept
// the file locked made every commit wait for the whole report.
func TestReaderLetsWriterCommit(t *testing.T) {
	db := reporttest.DB(t)
	r, err := openStore(db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := store.Open(db, &store.Options{Release: true, Timeout: 200 * time.Millisecond, NoSync: true})
	if err != nil {
		t.Fatalf("writer beside an open reader: %v", err)
	}
	defer w.Close()
	rec := reporttest.Flows()[0]
	if err := w.Put(rec.Origin, []flow.Record{rec.Record}); err != nil {
		t.Fatalf("commit beside an open reader: %v", err)
	}
	n := 0
	if err := r.Flows(store.Query{}, func(store.StoredFlow) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := len(reporttest.Flows()) + 1; n != want {
		t.Fatalf("reader saw %d records after the commit, want %d", n, want)
	}
}
