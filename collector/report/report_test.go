package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func fixtureNames() store.Names { return reporttest.Names() }

func withNames(n store.Names, o Options) Options {
	o.SymptomName = func(id uint16) string { return n.Symptoms[id] }
	o.CategoryName = func(id uint16) string { return n.Categories[id] }
	o.AggregateName = func(id uint32) string { return n.Aggregates[id] }
	return o
}

// fixtureFlows is reporttest's fixture (see reporttest.Flows).
func fixtureFlows() []store.StoredFlow { return reporttest.Flows() }

func fixtureStats() *store.Stats { return reporttest.Stats() }

func writeAll(t *testing.T, f func(*bytes.Buffer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReportGolden(t *testing.T) {
	opts := withNames(fixtureNames(), Options{
		Stats: fixtureStats(), StoreErrors: map[string]uint64{"truncated": 1},
	})
	rep := Build(fixtureFlows(), opts)
	golden(t, "report.json", writeAll(t, func(b *bytes.Buffer) error { return rep.WriteJSON(b) }))
	golden(t, "report.csv", writeAll(t, func(b *bytes.Buffer) error { return rep.WriteCSV(b) }))
	golden(t, "report.txt", writeAll(t, func(b *bytes.Buffer) error { return rep.WriteTable(b) }))

	for _, by := range []string{ByAggregate, ByCategory, ByApp} {
		o := opts
		o.By, o.Order, o.Limit = by, OrderBytes, 2
		rep := Build(fixtureFlows(), o)
		golden(t, "report-by-"+by+".txt", writeAll(t, func(b *bytes.Buffer) error { return rep.WriteTable(b) }))
	}
}

func TestFlowsGolden(t *testing.T) {
	opts := withNames(fixtureNames(), Options{})
	l := ListFlows(fixtureFlows(), opts)
	golden(t, "flows.json", writeAll(t, func(b *bytes.Buffer) error { return l.WriteJSON(b) }))
	golden(t, "flows.csv", writeAll(t, func(b *bytes.Buffer) error { return l.WriteCSV(b) }))
	golden(t, "flows.txt", writeAll(t, func(b *bytes.Buffer) error { return l.WriteTable(b) }))
}

// TestReportJSONContract checks the keys and formats ARCHITECTURE.md §3
// promises, independently of the golden file.
func TestReportJSONContract(t *testing.T) {
	rep := Build(fixtureFlows(), withNames(fixtureNames(), Options{}))
	var doc map[string][]map[string]any
	raw := writeAll(t, func(b *bytes.Buffer) error { return rep.WriteJSON(b) })
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	delete(top, "summary")
	b, _ := json.Marshal(top)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	biflowKeys := []string{"src", "dst", "sport", "dport", "proto", "packets", "octets", "rpackets", "roctets",
		"scanned_octets", "rscanned_octets", "first", "last", "symptoms", "category", "aggregate", "sampling", "probes"}
	usageKeys := []string{"aggregate", "category", "biflows", "packets", "octets", "estimated_octets"}
	check := func(what string, objs []map[string]any, keys []string) {
		if len(objs) == 0 {
			t.Fatalf("no %s", what)
		}
		for _, o := range objs {
			for _, k := range keys {
				if _, ok := o[k]; !ok {
					t.Errorf("%s lacks key %q: %v", what, k, o)
				}
			}
		}
	}
	check("biflows", doc["biflows"], biflowKeys)
	check("usage", doc["usage"], usageKeys)

	// The SMTP session: initiator, both directions, both probes, times.
	smtp := doc["biflows"][0]
	want := map[string]any{
		"src": "192.0.2.1", "dst": "198.51.100.7", "sport": 40001.0, "dport": 25.0, "proto": 6.0,
		"packets": 12.0, "octets": 2301.0, "rpackets": 9.0, "roctets": 811.0,
		"scanned_octets": 1653.0, "rscanned_octets": 343.0,
		"first": "2019-03-14T19:03:54.892Z", "last": "2019-03-14T19:04:03.371Z",
		"category": "Mail", "aggregate": "campus-out", "sampling": 1.0,
	}
	for k, v := range want {
		if smtp[k] != v {
			t.Errorf("smtp %s = %v, want %v", k, smtp[k], v)
		}
	}
	if got := smtp["symptoms"].(map[string]any); len(got) != 1 || got["MAIL"] != 3.0 {
		t.Errorf("smtp symptoms %v, want MAIL: 3", got)
	}
	if got := smtp["probes"].([]any); len(got) != 2 || got[0] != "probe-a" || got[1] != "probe-b" {
		t.Errorf("smtp probes %v", got)
	}
}

func TestUsageAndSampling(t *testing.T) {
	rep := Build(fixtureFlows(), withNames(fixtureNames(), Options{}))
	var web *UsageRow
	for i := range rep.Usage {
		if rep.Usage[i].Category == "Web" {
			web = &rep.Usage[i]
		}
	}
	if web == nil {
		t.Fatalf("no Web usage row in %+v", rep.Usage)
	}
	// 140 packets of 100 octets, sampled 1 in 10.
	if web.Biflows != 1 || web.Packets != 140 || web.Octets != 14000 || web.EstimatedOctets != 140000 {
		t.Errorf("web usage %+v", *web)
	}
	var total uint64
	for _, u := range rep.Usage {
		total += u.Octets
	}
	if total != rep.Summary.Octets {
		t.Errorf("usage octets %d != summary octets %d", total, rep.Summary.Octets)
	}
	for _, b := range rep.Biflows {
		if b.Category == "Web" && b.Sampling != 0.1 {
			t.Errorf("web sampling %v, want 0.1", b.Sampling)
		}
	}
}

func TestClassifyOverridesCategory(t *testing.T) {
	rules, err := classify.Parse("exe.yaml", []byte("version: 1\nrules:\n  - category: Executable download\n    when: EXE > 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	opts := withNames(fixtureNames(), Options{Rules: rules})
	rep := Build(fixtureFlows(), opts)
	var cats []string
	for _, b := range rep.Biflows {
		cats = append(cats, b.Category)
	}
	slices.Sort(cats)
	want := []string{"Executable download", "Mail", "Unclassified", "Unclassified", "Unclassified"}
	if !slices.Equal(cats, want) {
		t.Errorf("categories %q, want %q", cats, want)
	}
}

func TestUnknownSymptomUsesID(t *testing.T) {
	rep := Build(fixtureFlows(), withNames(fixtureNames(), Options{}))
	for _, b := range rep.Biflows {
		if _, ok := b.Symptoms["EXE"]; ok {
			if b.Symptoms["9"] != 1 {
				t.Errorf("symptoms %v, want unnamed id 9 listed as \"9\"", b.Symptoms)
			}
			return
		}
	}
	t.Fatal("no biflow with EXE")
}

func TestTimestampJSON(t *testing.T) {
	ts := Timestamp(t0.UnixNano())
	b, err := json.Marshal(ts)
	if err != nil || string(b) != `"2019-03-14T19:03:54.892Z"` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var back Timestamp
	if err := json.Unmarshal(b, &back); err != nil || back != ts {
		t.Fatalf("unmarshal: %v, %v", back, err)
	}
	if s := ts.String(); s != "2019-03-14 19:03:54.892" {
		t.Errorf("String = %q", s)
	}
	if err := json.Unmarshal([]byte(`"yesterday"`), &back); err == nil || !strings.Contains(err.Error(), "yesterday") {
		t.Errorf("bad timestamp error %v", err)
	}
}

func TestDurationAndFlags(t *testing.T) {
	if got := duration(0, Timestamp(3*time.Hour+2*time.Minute+8479*time.Millisecond)); got != "03:02:08.479" {
		t.Errorf("duration %q", got)
	}
	if got := tcpFlags(ack | psh | syn | fin); got != "...AP.SF" {
		t.Errorf("flags %q", got)
	}
}

func TestEmptyReport(t *testing.T) {
	rep := Build(nil, Options{})
	raw := writeAll(t, func(b *bytes.Buffer) error { return rep.WriteJSON(b) })
	if !bytes.Contains(raw, []byte(`"biflows": []`)) || !bytes.Contains(raw, []byte(`"usage": []`)) {
		t.Errorf("empty report should have empty arrays, got %s", raw)
	}
	writeAll(t, func(b *bytes.Buffer) error { return rep.WriteTable(b) })
}

// TestByProbeDomains: a probe is an exporter and an observation domain,
// so two domains of one host are two rows of --by probe.
func TestByProbeDomains(t *testing.T) {
	d1 := store.Origin{Exporter: "192.0.2.250", Domain: 10}
	d2 := store.Origin{Exporter: "192.0.2.250", Domain: 11}
	a := uf{ends: "10.0.0.1:40000>10.0.0.2:80", start: 0, stop: 1, pkts: 10}.record(6, 0)
	b := uf{ends: "10.0.0.3:40000>10.0.0.4:80", start: 0, stop: 1, pkts: 20}.record(6, 0)
	rep := Build([]store.StoredFlow{{Origin: d1, Record: a}, {Origin: d2, Record: b}}, Options{By: ByProbe})
	got := map[string]uint64{}
	for _, u := range rep.Usage {
		got[u.Probe] = u.Packets
	}
	want := map[string]uint64{"192.0.2.250/10": 10, "192.0.2.250/11": 20}
	if len(got) != len(want) || got["192.0.2.250/10"] != 10 || got["192.0.2.250/11"] != 20 {
		t.Errorf("--by probe rows %v, want %v", got, want)
	}
	for _, bf := range rep.Biflows {
		if len(bf.Probes) != 1 || bf.Probes[0] != "192.0.2.250" || len(bf.Origins) != 1 {
			t.Errorf("biflow probes %v origins %v", bf.Probes, bf.Origins)
		}
	}
}

// jsonReportOf builds the report over the store at path, as `mira
// report --format json` does without classification rules, and returns
// it as read back from its JSON.
func jsonReportOf(t *testing.T, path string) *Report {
	t.Helper()
	s, err := store.Open(path, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	built, err := FromStore(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := built.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// TestNamesPerOrigin: id 1 is MAIL for one probe and SNORT-1 for
// another; each record is named by its own origin's names, in the
// report and in the flow listing, and the classification sees them.
func TestNamesPerOrigin(t *testing.T) {
	a := store.Origin{Exporter: "192.0.2.1", Domain: 1}
	b := store.Origin{Exporter: "192.0.2.2", Domain: 1}
	x := &store.NameIndex{Origins: map[store.Origin][]store.NameAnnouncement{
		a: {{Names: store.Names{Symptoms: map[uint16]string{1: "MAIL"}, Categories: map[uint16]string{1: "Mail"}}}},
		b: {{Names: store.Names{Symptoms: map[uint16]string{1: "SNORT-1"}, Categories: map[uint16]string{1: "Attack"}}}},
	}}
	ra := uf{ends: "10.0.0.1:40000>10.0.0.2:25", start: 0, stop: 1, pkts: 10}.record(6, 0)
	rb := uf{ends: "10.0.0.3:40000>10.0.0.4:80", start: 0, stop: 1, pkts: 20}.record(6, 0)
	ra.Symptoms = []flow.SymptomCount{{ID: 1, Count: 2}}
	rb.Symptoms = []flow.SymptomCount{{ID: 1, Count: 5}}
	ra.Category, rb.Category = 1, 1
	flows := []store.StoredFlow{{Origin: a, Record: ra}, {Origin: b, Record: rb}}
	rep := Build(flows, Options{Names: x})
	got := map[string]string{}
	for _, bf := range rep.Biflows {
		got[bf.Src.String()] = fmt.Sprint(bf.Symptoms, " ", bf.Category)
	}
	want := map[string]string{"10.0.0.1": "map[MAIL:2] Mail", "10.0.0.3": "map[SNORT-1:5] Attack"}
	if !maps.Equal(got, want) {
		t.Errorf("biflows %v, want %v", got, want)
	}
	// The classification rules see each origin's names.
	rules, err := classify.Parse("seen.yaml", []byte("version: 1\nrules:\n  - category: SawMail\n    when: MAIL == 2\n  - category: SawSnort\n    when: symptoms[\"SNORT-1\"] == 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep = Build(flows, Options{Names: x, Rules: rules})
	got = map[string]string{}
	for _, bf := range rep.Biflows {
		got[bf.Src.String()] = bf.Category
	}
	if want := map[string]string{"10.0.0.1": "SawMail", "10.0.0.3": "SawSnort"}; !maps.Equal(got, want) {
		t.Errorf("classified %v, want %v", got, want)
	}
	l := ListFlows(flows, Options{Names: x})
	got = map[string]string{}
	for _, f := range l.Flows {
		got[f.Src.String()] = fmt.Sprint(f.Symptoms, " ", f.Category)
	}
	if !maps.Equal(got, want) {
		t.Errorf("flows %v, want %v", got, want)
	}
	if flows[0].Record.Symptoms[0].ID != 1 || flows[1].Record.Category != 1 {
		t.Error("Build changed its input")
	}
}

// TestByApp: the app grouping names each biflow by its application name
// through the service list (default or given), every biflow in one row;
// --app keeps one application's biflows; the JSON keys round-trip.
func TestByApp(t *testing.T) {
	opts := withNames(fixtureNames(), Options{By: ByApp})
	rep := Build(fixtureFlows(), opts)
	rows := map[string]UsageRow{}
	biflows := 0
	for _, u := range rep.Usage {
		if u.Aggregate != "" || u.Category != "" || u.Host != "" {
			t.Errorf("row %+v sets another grouping's key", u)
		}
		rows[u.App] = u
		biflows += u.Biflows
	}
	if biflows != rep.Summary.Biflows {
		t.Errorf("rows hold %d biflows, the report %d", biflows, rep.Summary.Biflows)
	}
	want := map[string]int{"YouTube": 1, "example.net": 1, service.Unknown: 3}
	if len(rows) != len(want) {
		t.Errorf("rows %v, want apps %v", rows, want)
	}
	for app, n := range want {
		if rows[app].Biflows != n {
			t.Errorf("app %q: %d biflows, want %d", app, rows[app].Biflows, n)
		}
	}
	if u := rows["YouTube"]; u.Packets != 140 || u.Octets != 14000 {
		t.Errorf("YouTube row %+v: want the web biflow's 140 packets, 14000 octets", u)
	}
	for _, b := range rep.Biflows {
		if b.Dport == 53 && (!b.Meta.DNSResponse || b.Meta.DNSRcode != 3 || b.Meta.DNSName != "api.example.net") {
			t.Errorf("DNS biflow metadata %+v: want the query's name and the response's rcode 3", b.Meta)
		}
	}

	// A service list of one's own.
	l, err := service.Parse("s.yaml", []byte("version: 1\nservices:\n  Example: [example.net]\n"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Services = l
	rep = Build(fixtureFlows(), opts)
	got := map[string]int{}
	for _, u := range rep.Usage {
		got[u.App] = u.Biflows
	}
	if got["Example"] != 1 || got["youtube.com"] != 1 || got["YouTube"] != 0 {
		t.Errorf("with a list of one's own: %v, want Example 1, youtube.com 1 (unlisted: its registered domain)", got)
	}

	// --app keeps one application's biflows.
	p := Params{App: "YouTube"}
	o := p.Options()
	o.SymptomName, o.CategoryName, o.AggregateName = opts.SymptomName, opts.CategoryName, opts.AggregateName
	rep = Build(fixtureFlows(), o)
	if len(rep.Biflows) != 1 || rep.Biflows[0].App != "YouTube" || rep.Summary.Flows != 3 {
		t.Errorf("--app YouTube: %d biflows, summary %d flows; want the web biflow and its 3 records", len(rep.Biflows), rep.Summary.Flows)
	}

	// JSON: app, the names and dns_rcode round-trip.
	all := Build(fixtureFlows(), withNames(fixtureNames(), Options{}))
	raw := writeAll(t, func(b *bytes.Buffer) error { return all.WriteJSON(b) })
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for i := range all.Biflows {
		if a, b := all.Biflows[i], back.Biflows[i]; a.App != b.App || a.Meta != b.Meta {
			t.Errorf("biflow %d: %q %+v after JSON, want %q %+v", i, b.App, b.Meta, a.App, a.Meta)
		}
	}
}

func TestCheckServices(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nservices:\n  A: [a.com]\n  B: [b.com, a.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Params{By: ByApp, Window: DefaultWindow, Confidence: 0.95, ServicesFile: bad}
	p.Format, p.Order = "json", OrderTime
	err := p.Check()
	if err == nil || !strings.Contains(err.Error(), bad+":4: key \"services.B[1]\"") {
		t.Fatalf("Check: %v, want an error naming %s:4 and the key", err, bad)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nservices:\n  A: [a.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.ServicesFile = good
	if err := p.Check(); err != nil || p.Options().Services == nil {
		t.Fatalf("Check: %v; options' services %v", err, p.Options().Services)
	}
	if s, _ := p.Options().Services.Lookup("x.a.com"); s != "A" {
		t.Errorf("the loaded list names x.a.com %q, want A", s)
	}
}
