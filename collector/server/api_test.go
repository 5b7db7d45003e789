package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
)

// written returns what f writes.
func written(t *testing.T, f func(io.Writer) error) string {
	t.Helper()
	var b strings.Builder
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestAPI checks that the HTTP API serves what `mira report` and
// `mira flows` print for the same store, and refuses bad parameters.
func TestAPI(t *testing.T) {
	db := reporttest.DB(t)
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := 0
	srv := httptest.NewServer(API(APIConfig{Store: st, Before: func() { before++ }}))
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ctype, body := get("/api/report?by=category")
	want := written(t, func(w io.Writer) error {
		rep, err := report.FromStoreQuery(context.Background(), st, store.Query{Field: store.Overlap}, report.Options{Window: report.DefaultWindow, By: report.ByCategory, Order: report.OrderTime, Confidence: 0.95})
		if err != nil {
			return err
		}
		return rep.WriteJSON(w)
	})
	if code != 200 || ctype != "application/json" || body != want {
		t.Fatalf("report: %d %s\n%s\nwant\n%s", code, ctype, body, want)
	}
	code, _, body = get("/api/flows?format=csv&limit=2")
	want = written(t, func(w io.Writer) error {
		l, err := report.FlowsFromStore(context.Background(), st, store.Query{Field: store.Overlap}, report.Options{Order: report.OrderTime, Limit: 2})
		if err != nil {
			return err
		}
		return l.WriteCSV(w)
	})
	if code != 200 || body != want {
		t.Fatalf("flows: %d\n%s\nwant\n%s", code, body, want)
	}
	// The scanned octets the fixture's records carry come through the
	// store to /api/flows (per record) and /api/report (per direction).
	code, _, body = get("/api/flows?format=json&port=25")
	var fl struct {
		Flows []struct {
			Sport         uint16 `json:"sport"`
			ScannedOctets uint64 `json:"scanned_octets"`
		} `json:"flows"`
		Summary struct {
			ScannedOctets uint64 `json:"scanned_octets"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(body), &fl); err != nil || code != 200 || len(fl.Flows) != 2 {
		t.Fatalf("flows json: %d %v\n%s", code, err, body)
	}
	if f := fl.Flows; f[0].Sport != 40001 || f[0].ScannedOctets != 1653 || f[1].ScannedOctets != 343 || fl.Summary.ScannedOctets != 1653+343 {
		t.Errorf("flows scanned octets: %+v, summary %d; want 1653 and 343", f, fl.Summary.ScannedOctets)
	}
	code, _, body = get("/api/report?port=25")
	var rp struct {
		Biflows []struct {
			ScannedOctets  uint64 `json:"scanned_octets"`
			RScannedOctets uint64 `json:"rscanned_octets"`
		} `json:"biflows"`
	}
	if err := json.Unmarshal([]byte(body), &rp); err != nil || code != 200 || len(rp.Biflows) != 1 {
		t.Fatalf("report json: %d %v\n%s", code, err, body)
	}
	if b := rp.Biflows[0]; b.ScannedOctets != 1653 || b.RScannedOctets != 343 {
		t.Errorf("report scanned octets %+v, want 1653 and 343", b)
	}
	for path, msg := range map[string]string{
		"/api/report?by=colour":   `unknown report grouping`,
		"/api/report?db=/etc/x":   "parameter db is set by the server",
		"/api/flows?from=tuesday": "--from",
		"/api/report?by=as":       "--by as needs --as",
		"/api/report?services=x":  "parameter services is set by the server",
	} {
		code, _, body := get(path)
		var e map[string]string
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e["error"], msg) {
			t.Errorf("%s: %d %s, want 400 with %q", path, code, body, msg)
		}
	}
	if before == 0 {
		t.Error("Before hook not called")
	}
}

// TestAPIByApp: /api/report?by=app groups by the server's service list.
func TestAPIByApp(t *testing.T) {
	db := reporttest.DB(t)
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := service.Parse("s.yaml", []byte("version: 1\nservices:\n  Example: [example.net]\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(API(APIConfig{Store: st, Services: l}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/report?by=app")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep report.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	got := map[string]int{}
	for _, u := range rep.Usage {
		got[u.App] = u.Biflows
	}
	if got["Example"] != 1 || got["youtube.com"] != 1 || got[service.Unknown] != 3 {
		t.Errorf("usage by app %v: want Example (the server's list) 1, youtube.com 1 (unlisted: its registered domain), unknown 3", got)
	}
}

// rolledUpAPI serves the API over the reporttest fixture's store with
// its rollups rebuilt (closed when the test ends).
func rolledUpAPI(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(reporttest.DB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, src, err := report.LoadRollupConfig("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Rebuild(context.Background(), st, cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(API(APIConfig{Store: st, Rules: cfg.Rules, Rollups: src}))
	t.Cleanup(srv.Close)
	return srv, st
}

// TestAPIRollups checks /api/rollups and /api/report's source: the
// rollups answer what they can (with their span), say why not
// otherwise, and auto falls back to the records.
func TestAPIRollups(t *testing.T) {
	srv, _ := rolledUpAPI(t)
	get := func(path string, v any) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	var a struct {
		Available bool
		Reason    string
		Rollup    *report.RollupInfo
		First     *report.Timestamp
	}
	if code := get("/api/rollups", &a); code != 200 || !a.Available || a.Rollup == nil || !a.Rollup.Complete || a.First == nil {
		t.Fatalf("/api/rollups: %d %+v", code, a)
	}
	a = struct {
		Available bool
		Reason    string
		Rollup    *report.RollupInfo
		First     *report.Timestamp
	}{}
	if code := get("/api/rollups?host=192.0.2.1", &a); code != 200 || a.Available || !strings.Contains(a.Reason, "--host") {
		t.Fatalf("/api/rollups with --host: %d %+v", code, a)
	}
	var rr, rec, auto report.Report
	get("/api/report?source=rollups&by=category", &rr)
	get("/api/report?by=category", &rec)
	get("/api/report?source=auto&by=category&host=192.0.2.1", &auto)
	if rr.Summary.Rollup == nil || len(rr.Biflows) != 0 || rr.Summary.Biflows != rec.Summary.Biflows || rr.Summary.Octets != rec.Summary.Octets {
		t.Fatalf("source=rollups: %+v; records: %d biflows %d bytes", rr.Summary, rec.Summary.Biflows, rec.Summary.Octets)
	}
	if auto.Summary.Rollup != nil || len(auto.Biflows) == 0 {
		t.Fatalf("source=auto with --host answered from the rollups")
	}
	var e map[string]string
	if code := get("/api/report?source=rollups&host=192.0.2.1", &e); code != 400 || !strings.Contains(e["error"], "rollups cannot answer") {
		t.Fatalf("source=rollups with --host: %d %v", code, e)
	}
}

// TestAPIRollupsAutoRange: /api/rollups (auto, the default) says what
// /api/report?source=auto answers from, also with --from and --to: the
// records when one lies across a bound (report.Params.BoundsCrossed).
// The fixture's web download (records 19:03:56.9-19:04:56.9 and on to
// 19:05:04.9) crosses 19:04: the rollups, counting biflows by their
// start, have none in [19:04, 19:10) where the records have it. Before,
// /api/rollups said the rollups answer there. A crossed range long
// enough (here 36-41 minutes, one with bounds inside seconds) is
// composed: /api/rollups says "composed", and auto's usage and totals
// are the records'.
func TestAPIRollupsAutoRange(t *testing.T) {
	srv, st := rolledUpAPI(t)
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	type answer struct {
		Available bool
		Source    string
		Reason    string
	}
	for _, c := range []struct {
		from, to, want string
	}{
		{"2019-03-14T19:04:00Z", "2019-03-14T19:10:00Z", "records"}, // crossed at --from
		{"2019-03-14T19:00:00Z", "2019-03-14T19:04:00Z", "records"}, // crossed at --to
		{"2019-03-14T19:00:00Z", "2019-03-14T19:30:00Z", "rollups"},
		{"2019-03-14T18:00:00Z", "2019-03-14T19:00:00Z", "rollups"},
		// Crossed at --from, long enough to compose: the rollups of
		// the whole minutes inside, the records around the bounds.
		{"2019-03-14T19:04:00Z", "2019-03-14T19:45:00Z", "composed"},
		{"2019-03-14T19:03:59.5Z", "2019-03-14T19:40:00.25Z", "composed"},
	} {
		q := "by=category&from=" + c.from + "&to=" + c.to
		var a answer
		get("/api/rollups?"+q, &a)
		var auto, rec report.Report
		get("/api/report?source=auto&"+q, &auto)
		get("/api/report?"+q, &rec)
		used := "records"
		if ri := auto.Summary.Rollup; ri != nil && ri.Edges != nil {
			used = "composed"
		} else if ri != nil {
			used = "rollups"
		}
		if a.Source != c.want || used != c.want || a.Available != (c.want != "records") {
			t.Errorf("[%s, %s): /api/rollups %+v, /api/report?source=auto used the %s; want the %s", c.from, c.to, a, used, c.want)
		}
		if c.want == "records" && !strings.Contains(a.Reason, "across --from or --to") {
			t.Errorf("[%s, %s): reason %q", c.from, c.to, a.Reason)
		}
		if !reflect.DeepEqual(auto.Usage, rec.Usage) || auto.Summary.Biflows != rec.Summary.Biflows || auto.Summary.Octets != rec.Summary.Octets ||
			auto.Summary.Flows != rec.Summary.Flows || auto.Summary.Packets != rec.Summary.Packets {
			t.Errorf("[%s, %s): auto %d biflows %d bytes, records %d biflows %d bytes", c.from, c.to,
				auto.Summary.Biflows, auto.Summary.Octets, rec.Summary.Biflows, rec.Summary.Octets)
		}
		// source=rollups answers there all the same (biflows by their
		// start), on whole minutes.
		if strings.Contains(c.from, ".") {
			continue
		}
		var r answer
		get("/api/rollups?source=rollups&"+q, &r)
		if !r.Available || r.Source != "rollups" {
			t.Errorf("[%s, %s): /api/rollups?source=rollups %+v", c.from, c.to, r)
		}
	}
	// The crossed range is one where the rollups differ: the test
	// compares answers that matter.
	q := "by=category&from=2019-03-14T19:04:00Z&to=2019-03-14T19:10:00Z"
	var rr, rec report.Report
	get("/api/report?source=rollups&"+q, &rr)
	get("/api/report?"+q, &rec)
	if rr.Summary.Biflows == rec.Summary.Biflows {
		t.Fatalf("[19:04, 19:10): the rollups (%d biflows) equal the records (%d): the range proves nothing", rr.Summary.Biflows, rec.Summary.Biflows)
	}
	// --by as: the server's AS table, as /api/report has it (before,
	// /api/rollups?by=as was refused: "--by as needs --as").
	asFile := filepath.Join(t.TempDir(), "as.csv")
	if err := os.WriteFile(asFile, []byte("192.0.2.0/24,64500\n198.51.100.0/24,64501\n203.0.113.0/24,64502\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	acfg, asrc, err := report.LoadRollupConfig("", asFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Rebuild(context.Background(), st, acfg); err != nil {
		t.Fatal(err)
	}
	asSrv := httptest.NewServer(API(APIConfig{Store: st, Rules: acfg.Rules, Rollups: asrc, ASFile: asFile}))
	defer asSrv.Close()
	for _, q := range []string{"by=as", "by=as&from=2019-03-14T19:04:00Z&to=2019-03-14T19:10:00Z"} {
		var a answer
		var auto report.Report
		for path, v := range map[string]any{"/api/rollups?" + q: &a, "/api/report?source=auto&" + q: &auto} {
			resp, err := http.Get(asSrv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(v)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %s %v", path, resp.Status, err)
			}
		}
		if used := map[bool]string{true: "rollups", false: "records"}[auto.Summary.Rollup != nil]; a.Source != used {
			t.Errorf("%s: /api/rollups %+v, /api/report?source=auto used the %s", q, a, used)
		}
		if want := map[bool]string{true: "rollups", false: "records"}[!strings.Contains(q, "from")]; a.Source != want {
			t.Errorf("%s: /api/rollups says the %s, want the %s", q, a.Source, want)
		}
	}
	var bad map[string]string
	resp, err := http.Get(srv.URL + "/api/rollups?source=records")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&bad); resp.StatusCode != 400 || !strings.Contains(bad["error"], "auto or rollups") {
		t.Errorf("/api/rollups?source=records: %s %v", resp.Status, bad)
	}
}

// TestAPIReportCounters: /api/report's summary has the collector's
// counters (messages, records, lost) as mira report --format json has
// them, at once: the API saves them before it answers. Before, they were
// saved only at the stats tick (5 s), so a report asked sooner after the
// start had none of the three keys.
func TestAPIReportCounters(t *testing.T) {
	ls := startServerWith(t, func(s *Server) {
		s.cfg.HTTP = "127.0.0.1:0"
		s.statsEvery = time.Hour // no tick during the test
	})
	until(t, "http api", func() bool { return ls.HTTPAddr() != nil })
	recs := pairedRecords(4, 50, time.Now().Add(-time.Hour))
	sendRecords(t, ls.tcp, recs)
	until(t, "records stored", func() bool { s, _ := ls.counts(); return s == uint64(len(recs)) })
	resp, err := http.Get("http://" + ls.HTTPAddr().String() + "/api/report")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Summary map[string]json.RawMessage `json:"summary"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"records": fmt.Sprint(len(recs)), "lost": "0"} {
		if got := string(rep.Summary[k]); got != want {
			t.Errorf("summary %q = %q, want %s", k, got, want)
		}
	}
	if m := string(rep.Summary["messages"]); m == "" || m == "0" {
		t.Errorf("summary messages = %q, want the messages received", m)
	}
}

// TestAPIReportOverrideUnknown: /api/report with a sampling override of
// an exporter none of the records came from is a bad parameter (400),
// over a store and over a cluster's reports (APIConfig.Report; here the
// store's report stands in for cluster.Report, which refuses alike).
func TestAPIReportOverrideUnknown(t *testing.T) {
	db := reporttest.DB(t)
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	direct := func(ctx context.Context, p *report.Params) (*report.Report, error) {
		return p.Report(ctx, st, p.Options(), report.RollupSource{})
	}
	for _, cfg := range []APIConfig{{Store: st}, {Store: st, Report: direct}} {
		srv := httptest.NewServer(API(cfg))
		resp, err := http.Get(srv.URL + "/api/report?sampling=10.9.9.9%3Dpacket%3A4")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		var e map[string]string
		if resp.StatusCode != 400 || json.Unmarshal(b, &e) != nil || !strings.Contains(e["error"], `no records from exporter "10.9.9.9"`) {
			t.Errorf("direct %v: %d %s, want 400 naming the exporter", cfg.Report != nil, resp.StatusCode, b)
		}
	}
}
