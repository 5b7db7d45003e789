package web_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/synth"
	"github.com/mira-project/mira/tools/peertest"
)

var screenshots = flag.String("screenshots", "", "write the browser test's screenshots to this directory (default: the test's temporary directory)")

// env is a mira-collector filled by two real mira-probes, and the tools
// to check what its web UI shows.
type env struct {
	bin  string // directory of mira, mira-probe, mira-collector
	db   string
	base string // http://127.0.0.1:port/
	shot string // screenshot directory
	as   string // the collector's AS table
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildBinaries builds the commands the tests run (once per test binary;
// the directory stays for the other tests and is removed by TestMain).
func buildBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "mira-web-"); buildErr != nil {
			return
		}
		for _, c := range []string{"mira", "mira-probe", "mira-collector"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "github.com/mira-project/mira/cmd/"+c).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCollector runs mira-collector on a new store with the extra
// arguments and waits until its HTTP address answers.
func startCollector(t *testing.T, bin string, extra ...string) (db string, ipfixPort int, base string) {
	t.Helper()
	db, ipfixPort, base, _ = runCollector(t, bin, extra...)
	return db, ipfixPort, base
}

// runCollector is startCollector that also returns a function stopping
// the collector (SIGTERM: it commits and closes the store) and waiting
// for it to exit.
func runCollector(t *testing.T, bin string, extra ...string) (db string, ipfixPort int, base string, stop func()) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "flows.db")
	ipfixPort, httpPort := freePort(t), freePort(t)
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "mira-collector"), append([]string{"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", ipfixPort),
		"--db", db, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort)}, extra...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	stop = func() {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("mira-collector did not exit on SIGTERM:\n%s", log.String())
		}
	}
	base = fmt.Sprintf("http://127.0.0.1:%d/", httpPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("mira-collector exited:\n%s", log.String())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort)); err == nil {
			c.Close()
			return db, ipfixPort, base, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("mira-collector not serving HTTP:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe runs mira-probe on pcap with a configuration, exporting over TCP:
// when it exits, the collector has stored its records.
func probe(t *testing.T, bin, pcap, config string, port, domain int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-r", pcap, "--export", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--domain", strconv.Itoa(domain)}
	if config != "" {
		args = append(args, "--config", config)
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, "mira-probe"), args...).CombinedOutput(); err != nil {
		t.Fatalf("mira-probe %v: %v\n%s", args, err, out)
	}
}

// apiReport returns the collector's /api/report for query.
func (e *env) apiReport(t *testing.T, query string) *report.Report {
	t.Helper()
	resp, err := http.Get(e.base + "api/report?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r report.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// report runs `mira report --format json` on the store with args.
func (e *env) report(t *testing.T, args ...string) *report.Report {
	t.Helper()
	out, err := exec.Command(filepath.Join(e.bin, "mira"), append([]string{"report", "--db", e.db, "--format", "json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("mira report %v: %v", args, err)
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("mira report %v: %v", args, err)
	}
	return &r
}

// flows runs `mira flows --format json` on the store with args.
func (e *env) flows(t *testing.T, args ...string) *report.FlowList {
	t.Helper()
	out, err := exec.Command(filepath.Join(e.bin, "mira"), append([]string{"flows", "--db", e.db, "--format", "json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("mira flows %v: %v", args, err)
	}
	var l report.FlowList
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}

// browser is one headless Chromium shared by the subtests, with the
// console errors and exceptions it reported.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := peertest.Program(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	b := &browser{ctx: ctx}
	// Start the browser (no deadline on the first run: it would stop the
	// browser), then follow its console: errors, exceptions and error
	// entries of the browser log (failed loads).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		peertest.Missing(t, "chromium does not start: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, m.String()+" "+m.URL)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

type action = chromedp.Action[chromedp.Void]

// run runs actions with a deadline.
func (b *browser) run(t *testing.T, actions ...action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// get runs one action with a value.
func get[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// eval evaluates a JavaScript expression into T.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	return get(t, b, chromedp.Evaluate[T](expr))
}

// noErrors fails t with the console errors and exceptions seen since the
// last call.
func (b *browser) noErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	errs := b.errs
	b.errs = nil
	b.mu.Unlock()
	for _, e := range errs {
		t.Errorf("browser console: %s", e)
	}
}

// ready waits until the page shows view (data-state ready).
func ready(view string) action {
	return chromedp.WaitVisible(chromedp.CSS(`#view[data-state="ready"][data-view="` + view + `"]`))
}

// stale marks the shown view outdated so that ready waits for the next
// render after an action.
func stale() action {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](`document.getElementById("view").dataset.state = "stale"`)(ctx, tg)
		return err
	})
}

// click clicks the element sel names and waits for view.
func click(sel, view string) []action {
	return []action{stale(), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible), ready(view)}
}

// navigate loads a page of the UI and waits for view.
func navigate(url, view string) []action {
	return []action{chromedp.Navigate(url), ready(view)}
}

var digits = regexp.MustCompile(`[^0-9]`)

// number reads a number shown with thousands separators.
func number(t *testing.T, s string) uint64 {
	t.Helper()
	d := digits.ReplaceAllString(s, "")
	v, err := strconv.ParseUint(d, 10, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return v
}

// row is one table row as shown: its cells' text, and the numeric cells
// by their data-col.
type row struct {
	Cells []string          `json:"cells"`
	Cols  map[string]string `json:"cols"`
}

// tableRows reads the rows of the table data-table=name.
func tableRows(t *testing.T, b *browser, name string) []row {
	t.Helper()
	return eval[[]row](t, b, `[...document.querySelectorAll('table[data-table="`+name+`"] tbody tr')].map(tr => ({
		cells: [...tr.cells].map(td => td.textContent),
		cols: Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map(td => [td.dataset.col, td.textContent]))}))`)
}

// text reads the text of the element sel names.
func text(t *testing.T, b *browser, sel string) string {
	t.Helper()
	return get(t, b, chromedp.TextContent(chromedp.CSS(sel)))
}

// noLeaks fails t when the page shows an unformatted value.
func noLeaks(t *testing.T, b *browser, what string) {
	t.Helper()
	if bad := eval[string](t, b, `(document.body.innerText.match(/\b(undefined|NaN|null|\[object Object\])\b/) || [""])[0]`); bad != "" {
		t.Errorf("%s: the page shows %q", what, bad)
	}
}

// shotDir is where the screenshots go: -screenshots, or the test's
// temporary directory.
func shotDir(t *testing.T) string {
	t.Helper()
	if *screenshots == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(*screenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	return *screenshots
}

// shoot writes screenshots of the page at 1280 and 390 px wide.
func (e *env) shoot(t *testing.T, b *browser, name string) {
	t.Helper()
	view := eval[string](t, b, `document.getElementById("view").dataset.view`)
	for _, w := range []int64{1280, 390} {
		// Load the page (its URL holds the state) at that width, as a
		// phone or a desktop would.
		b.run(t, chromedp.EmulateViewport(w, 900), stale(), chromedp.Reload(), ready(view))
		// Let the page lay out at the new width (charts resize on the
		// resize event) before measuring and capturing.
		eval[any](t, b, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`)
		png := get(t, b, chromedp.FullScreenshot(100))
		p := filepath.Join(e.shot, fmt.Sprintf("%s-%d.png", name, w))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		noLeaks(t, b, fmt.Sprintf("%s at %d px", name, w))
		// The page must fit the width: no sideways scroll of the page
		// (wide tables scroll inside their own box).
		if eval[bool](t, b, `document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`) {
			t.Errorf("%s at %d px: the page scrolls sideways", name, w)
		}
	}
	b.run(t, chromedp.EmulateViewport(1280, 900), stale(), chromedp.Reload(), ready(view))
	t.Logf("screenshots: %s-{1280,390}.png in %s", name, e.shot)
}

// checkDownloads fetches the view's CSV and JSON downloads: the CSV has
// a header and one line per row of the table data-table=name, the JSON
// parses.
func checkDownloads(t *testing.T, b *browser, name string) {
	t.Helper()
	fetch := func(id string) string {
		return get(t, b, chromedp.Evaluate[string](`fetch(document.getElementById("`+id+`").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	}
	recs, err := csv.NewReader(strings.NewReader(fetch("dl-csv"))).ReadAll()
	if err != nil {
		t.Fatalf("%s CSV: %v", name, err)
	}
	rows := tableRows(t, b, name)
	if len(recs) != len(rows)+1 || len(rows) == 0 {
		t.Errorf("%s CSV has %d lines, the table %d rows (+ header)", name, len(recs), len(rows))
	} else if len(recs[0]) != len(rows[0].Cells) {
		t.Errorf("%s CSV has %d columns, the table %d", name, len(recs[0]), len(rows[0].Cells))
	}
	var v any
	if err := json.Unmarshal([]byte(fetch("dl-json")), &v); err != nil {
		t.Errorf("%s JSON: %v", name, err)
	}
}

// usageKey names a usage row as the UI's first cells show it.
func usageKey(by string, u report.UsageRow) string {
	switch by {
	case "aggregate":
		return dashNone(u.Aggregate)
	case "category":
		return u.Category
	case "host":
		return u.Host
	case "symptom":
		return u.Symptom
	case "app":
		return u.App
	case "probe":
		return u.Probe
	case "as":
		return asName(u.SrcAS) + "|" + asName(u.DstAS)
	}
	return dashNone(u.Aggregate) + "|" + u.Category
}

func asName(n uint32) string {
	if n == 0 {
		return "unknown"
	}
	return "AS" + strconv.FormatUint(uint64(n), 10)
}

func dashNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// checkUsage compares the usage table shown with the report's rows.
func checkUsage(t *testing.T, by string, rows []row, want []report.UsageRow) {
	t.Helper()
	if len(rows) != len(want) {
		t.Errorf("by %s: %d rows shown, the report has %d", by, len(rows), len(want))
		return
	}
	for i, u := range want {
		r := rows[i]
		key := r.Cells[0]
		if by == "aggregate,category" || by == "as" {
			key += "|" + r.Cells[1]
		}
		if key != usageKey(by, u) {
			t.Errorf("by %s row %d: %q, the report has %q", by, i, key, usageKey(by, u))
		}
		if b, p, o := number(t, r.Cols["biflows"]), number(t, r.Cols["packets"]), number(t, r.Cols["octets"]); b != uint64(u.Biflows) || p != u.Packets || o != u.Octets {
			t.Errorf("by %s row %q: %d biflows %d packets %d octets shown, the report has %d %d %d", by, key, b, p, o, u.Biflows, u.Packets, u.Octets)
		}
		if est, ok := r.Cols["estimated_octets"]; ok && number(t, est) != u.EstimatedOctets {
			t.Errorf("by %s row %q: %s estimated octets shown, the report has %d", by, key, est, u.EstimatedOctets)
		}
		if hits, ok := r.Cols["hits"]; ok && number(t, hits) != u.Hits {
			t.Errorf("by %s row %q: %s hits shown, the report has %d", by, key, hits, u.Hits)
		}
	}
}

// checkTotals compares the totals a view shows (data-total) with a report.
func checkTotals(t *testing.T, b *browser, what string, want *report.Report) {
	t.Helper()
	bf, pk, oc := text(t, b, `[data-total="biflows"]`), text(t, b, `[data-total="packets"]`), text(t, b, `[data-total="octets"]`)
	s := want.Summary
	if number(t, bf) != uint64(s.Biflows) || number(t, pk) != s.Packets || number(t, oc) != s.Octets {
		t.Errorf("%s: shows %s biflows %s packets %s octets, mira report has %d %d %d", what, bf, pk, oc, s.Biflows, s.Packets, s.Octets)
	}
	if s.Biflows == 0 {
		t.Errorf("%s: the report is empty: not a useful check", what)
	}
}

// synthPcap writes the synthesised default capture into a temporary
// directory and returns its path.
func synthPcap(t *testing.T) string {
	t.Helper()
	pcap := filepath.Join(t.TempDir(), "synth.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := synth.WritePcap(synth.Default(), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return pcap
}

// TestBrowser fills a collector from two real probes (the README's
// campus example: one samples 1 in 4, one does not) and checks every
// view of the web UI in headless Chromium against `mira report --format
// json` with the same filters, clicking through filters and drill-downs.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and starts a browser")
	}
	b := newBrowser(t)
	e := &env{bin: buildBinaries(t), shot: shotDir(t)}
	pcap := synthPcap(t)
	// An AS table for usage by AS: the campus and the synth's outside.
	dir := t.TempDir()
	e.as = filepath.Join(dir, "as.csv")
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(e.as, []byte("10.16.0.0/16,64500\n198.18.0.0/15,64501\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("as: "+e.as+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var port int
	e.db, port, e.base = startCollector(t, e.bin, "--config", cfg)
	probe(t, e.bin, pcap, filepath.Join(peertest.Root(), "examples", "out.yaml"), port, 1)
	probe(t, e.bin, pcap, filepath.Join(peertest.Root(), "examples", "in.yaml"), port, 2)

	t.Run("overview", func(t *testing.T) {
		all := e.report(t)
		b.run(t, navigate(e.base, "overview")...)
		b.run(t, chromedp.WaitVisible(chromedp.CSS(`#usage-chart canvas`)))
		pk, oc, bf := text(t, b, `[data-metric="packets"]`), text(t, b, `[data-metric="octets"]`), text(t, b, `[data-metric="biflows"]`)
		s := all.Summary
		if number(t, pk) != s.Packets || number(t, oc) != s.Octets || number(t, bf) != uint64(s.Biflows) {
			t.Errorf("overview shows %s packets, %s octets, %s biflows; mira report has %d, %d, %d", pk, oc, bf, s.Packets, s.Octets, s.Biflows)
		}
		if s.Estimate == nil {
			t.Fatal("the sampled probe's traffic gave no estimate")
		}
		// The overview's numbers come from the collector's rollups (with
		// what its Roller still holds), which equal the records' report.
		resp, err := http.Get(e.base + "/api/report?source=rollups&by=category&limit=1")
		if err != nil {
			t.Fatal(err)
		}
		var rr report.Report
		err = json.NewDecoder(resp.Body).Decode(&rr)
		resp.Body.Close()
		if err != nil || rr.Summary.Rollup == nil || !rr.Summary.Rollup.Complete || rr.Summary.Packets != s.Packets ||
			rr.Summary.Octets != s.Octets || rr.Summary.Biflows != s.Biflows || rr.Summary.Estimate == nil || *rr.Summary.Estimate != *s.Estimate {
			t.Errorf("the live rollups answer %+v (%+v), %v; mira report has %d packets, %d octets, %d biflows, %+v",
				rr.Summary.Rollup, rr.Summary.Estimate, err, s.Packets, s.Octets, s.Biflows, s.Estimate)
		}
		ep, eo := text(t, b, `[data-metric="est-packets"]`), text(t, b, `[data-metric="est-octets"]`)
		if number(t, ep) != s.Estimate.Packets || number(t, eo) != s.Estimate.Octets {
			t.Errorf("overview estimates %s packets %s octets; mira report has %d %d", ep, eo, s.Estimate.Packets, s.Estimate.Octets)
		}
		rows := tableRows(t, b, "categories")
		byCat := e.report(t, "--by", "category")
		if len(rows) != len(byCat.Usage) {
			t.Fatalf("%d categories shown, the report has %d", len(rows), len(byCat.Usage))
		}
		for i, u := range byCat.Usage {
			if rows[i].Cells[0] != u.Category || number(t, rows[i].Cells[1]) != uint64(u.Biflows) || number(t, rows[i].Cells[3]) != u.Octets {
				t.Errorf("category row %d: %v, the report has %+v", i, rows[i].Cells, u)
			}
		}
		// The chart stacks one series per category.
		if n := eval[int](t, b, `document.querySelectorAll("#usage-chart .u-legend .u-series").length`); n != len(byCat.Usage)+1 {
			t.Errorf("chart legend has %d series, want time + %d categories", n, len(byCat.Usage))
		}
		checkDownloads(t, b, "categories")
		e.shoot(t, b, "overview")
		// The biflows total opens the explorer on all of them.
		b.run(t, click(`[data-metric="biflows"] a`, "explorer")...)
		checkTotals(t, b, "explorer from the overview's total", all)
		b.noErrors(t)
	})

	t.Run("usage-drilldown", func(t *testing.T) {
		b.run(t, navigate(e.base+"?view=usage", "usage")...)
		full := e.report(t)
		checkUsage(t, "aggregate,category", tableRows(t, b, "usage"), full.Usage)
		checkDownloads(t, b, "usage")
		e.shoot(t, b, "usage")
		// Click the first aggregate: its categories.
		aggArg := full.Usage[0].Aggregate
		if aggArg == "" {
			aggArg = "-"
		}
		b.run(t, click(`table[data-table="usage"] tbody tr:first-child td:first-child a`, "usage")...)
		rows := tableRows(t, b, "usage")
		checkUsage(t, "category", rows, e.report(t, "--by", "category", "--aggregate", aggArg).Usage)
		// Then a category of it: its hosts.
		cat := rows[0].Cells[0]
		b.run(t, click(`table[data-table="usage"] tbody tr:first-child td:first-child a`, "usage")...)
		rows = tableRows(t, b, "usage")
		checkUsage(t, "host", rows, e.report(t, "--by", "host", "--aggregate", aggArg, "--category", cat).Usage)
		checkTotals(t, b, "hosts of "+cat, e.report(t, "--aggregate", aggArg, "--category", cat))
		e.shoot(t, b, "usage-drilldown")
		// A biflow count opens the explorer on those biflows.
		host := rows[0].Cells[0]
		b.run(t, click(`table[data-table="usage"] tbody tr:first-child td[data-col="biflows"] a`, "explorer")...)
		want := e.report(t, "--aggregate", aggArg, "--category", cat, "--host", host, "--order", "bytes", "--limit", "100")
		checkTotals(t, b, "explorer of "+host, want)
		if n := len(tableRows(t, b, "biflows")); n != len(want.Biflows) {
			t.Errorf("explorer lists %d biflows, the report %d", n, len(want.Biflows))
		}
		// Other groupings by the selector.
		for _, by := range []string{"probe", "aggregate", "category", "as", "app"} {
			b.run(t, navigate(e.base+"?view=usage", "usage")...)
			// SetValue fires the select's change event.
			b.run(t, stale(), chromedp.SetValue(chromedp.CSS(`#by`), by), ready("usage"))
			want := e.report(t, "--by", by, "--as", e.as).Usage
			if by == "as" && len(want) < 2 {
				t.Errorf("usage by AS has %d rows: the AS table matched nothing", len(want))
			}
			if by == "app" && (len(want) < 2 || want[0].App == "" || (want[0].App == "unknown" && want[1].App == "")) {
				t.Errorf("usage by app has no named application: %+v", want)
			}
			checkUsage(t, by, tableRows(t, b, "usage"), want)
		}
		b.noErrors(t)
	})

	t.Run("filters", func(t *testing.T) {
		all := e.report(t, "--order", "bytes")
		top := all.Biflows[0]
		host, port := top.Dst.String(), strconv.Itoa(int(top.Dport))
		b.run(t, navigate(e.base+"?view=explorer", "explorer")...)
		b.run(t, chromedp.SetValue(chromedp.CSS(`#filters input[name="host"]`), host),
			chromedp.SetValue(chromedp.CSS(`#filters input[name="port"]`), port))
		b.run(t, click(`#apply`, "explorer")...)
		want := e.report(t, "--host", host, "--port", port, "--order", "bytes", "--limit", "100")
		checkTotals(t, b, "explorer --host "+host+" --port "+port, want)
		loc := get(t, b, chromedp.Location())
		if !strings.Contains(loc, "host="+host) || !strings.Contains(loc, "port="+port) {
			t.Errorf("the filters are not in the URL: %s", loc)
		}
		// The URL reproduces the view.
		b.run(t, navigate("about:blank", "")[0])
		b.run(t, navigate(loc, "explorer")...)
		checkTotals(t, b, "reloaded "+loc, want)
		checkDownloads(t, b, "biflows")
		e.shoot(t, b, "explorer-filtered")
		// A filter chip removes its filter.
		b.run(t, click(`.chip[data-filter="port"] button`, "explorer")...)
		checkTotals(t, b, "explorer --host "+host, e.report(t, "--host", host))
		// Probe and time range filters.
		from := time.Unix(0, top.First).UTC().Format(time.RFC3339)
		b.run(t, navigate(e.base+"?view=usage&probe=127.0.0.1/2&from="+from, "usage")...)
		checkTotals(t, b, "usage of probe 127.0.0.1/2 from "+from, e.report(t, "--exporter", "127.0.0.1", "--domain", "2", "--from", from))
		// The unsampled probe's overview: no estimates.
		b.run(t, navigate(e.base+"?probe=127.0.0.1/2", "overview")...)
		unsampled := e.report(t, "--exporter", "127.0.0.1", "--domain", "2")
		if pk := text(t, b, `[data-metric="packets"]`); number(t, pk) != unsampled.Summary.Packets || unsampled.Summary.Estimate != nil {
			t.Errorf("overview of probe 127.0.0.1/2: %s packets, the report %d (estimate %v)", pk, unsampled.Summary.Packets, unsampled.Summary.Estimate)
		}
		if n := eval[int](t, b, `document.querySelectorAll('[data-metric^="est-"]').length`); n != 0 {
			t.Errorf("overview of an unsampled probe shows %d estimates", n)
		}
		noLeaks(t, b, "overview of probe 127.0.0.1/2")
		b.noErrors(t)
	})

	t.Run("talkers", func(t *testing.T) {
		b.run(t, navigate(e.base+"?view=talkers", "talkers")...)
		rows, top := tableRows(t, b, "talkers"), tableRows(t, b, "top-biflows")
		hosts := e.report(t, "--by", "host").Usage
		if len(hosts) > 25 {
			hosts = hosts[:25]
		}
		checkUsage(t, "host", rows, hosts)
		want := e.report(t, "--order", "bytes", "--limit", "25").Biflows
		if len(top) != len(want) {
			t.Fatalf("%d top biflows shown, want %d", len(top), len(want))
		}
		for i, bf := range want {
			if number(t, top[i].Cells[6]) != bf.Octets+bf.ROctets {
				t.Errorf("top biflow %d: %s bytes, the report has %d", i, top[i].Cells[6], bf.Octets+bf.ROctets)
			}
		}
		checkDownloads(t, b, "talkers")
		e.shoot(t, b, "talkers")
		// Clicking a host filters by it.
		host := rows[0].Cells[0]
		b.run(t, click(`table[data-table="talkers"] tbody tr:first-child td:first-child a`, "explorer")...)
		checkTotals(t, b, "explorer of talker "+host, e.report(t, "--host", host))
		b.noErrors(t)
	})

	t.Run("symptoms", func(t *testing.T) {
		b.run(t, navigate(e.base+"?view=symptoms", "symptoms")...)
		want := e.report(t, "--by", "symptom").Usage
		if len(want) == 0 {
			t.Fatal("no symptoms in the synth capture's report")
		}
		checkUsage(t, "symptom", tableRows(t, b, "symptoms"), want)
		// The heatmap's cells per symptom sum to its biflows.
		type cell struct{ Symptom, Bucket, Text string }
		cells := eval[[]cell](t, b, `[...document.querySelectorAll("#heatmap .cell:not(.zero)")].map(c => ({Symptom: c.dataset.symptom, Bucket: c.dataset.bucket, Text: c.textContent}))`)
		sum := map[string]uint64{}
		for _, c := range cells {
			sum[c.Symptom] += number(t, c.Text)
		}
		for _, u := range want {
			if sum[u.Symptom] != uint64(u.Biflows) {
				t.Errorf("heatmap row %s sums to %d biflows, the report has %d", u.Symptom, sum[u.Symptom], u.Biflows)
			}
		}
		checkDownloads(t, b, "symptoms")
		e.shoot(t, b, "symptoms")
		// A cell opens that symptom's biflows of that bucket.
		c := cells[0]
		b.run(t, click(fmt.Sprintf(`#heatmap .cell[data-symptom="%s"][data-bucket="%s"]`, c.Symptom, c.Bucket), "explorer")...)
		from, to := get(t, b, chromedp.Value(chromedp.CSS(`#filters input[name="from"]`))), get(t, b, chromedp.Value(chromedp.CSS(`#filters input[name="to"]`)))
		checkTotals(t, b, "symptom "+c.Symptom+" "+from+".."+to, e.report(t, "--symptom", c.Symptom, "--from", from, "--to", to, "--started"))
		b.noErrors(t)
	})

	t.Run("probes", func(t *testing.T) {
		b.run(t, navigate(e.base+"?view=probes", "probes")...)
		rows := tableRows(t, b, "probes")
		if len(rows) != 2 {
			t.Fatalf("%d probes shown, want 2", len(rows))
		}
		for i, r := range rows {
			l := e.flows(t, "--exporter", "127.0.0.1", "--domain", strconv.Itoa(i+1))
			if r.Cells[0] != fmt.Sprintf("127.0.0.1/%d", i+1) || number(t, r.Cells[1]) != uint64(l.Summary.Flows) {
				t.Errorf("probe row %v: mira flows has %d records", r.Cells, l.Summary.Flows)
			}
		}
		if !strings.Contains(rows[0].Cols["sampling"], "1/4") {
			t.Errorf("the sampling probe shows sampling %q, want 1/4", rows[0].Cols["sampling"])
		}
		// The collector counters are those of the report's summary (the
		// collector saves them periodically: compare when the report had
		// the same before and after reading the page).
		before := e.report(t).Summary
		b.run(t, navigate(e.base+"?view=probes", "probes")...)
		shown := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll("[data-counter]")].map(d => [d.dataset.counter, d.textContent]))`)
		after := e.report(t).Summary
		if fmt.Sprint(before.Records, before.Messages) == fmt.Sprint(after.Records, after.Messages) {
			if (after.Records == nil) != (shown["records"] == "") || after.Records != nil && number(t, shown["records"]) != *after.Records {
				t.Errorf("collector records counter shows %q, the report has %v", shown["records"], after.Records)
			}
			loss := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll("[data-loss]")].map(d => [d.dataset.loss, d.textContent]))`)
			if len(loss) != len(after.Loss) || len(loss) == 0 {
				t.Errorf("loss ledger shows %v, the report has %v", loss, after.Loss)
			}
			for st, n := range after.Loss {
				if v, ok := loss[st]; !ok || number(t, v) != n {
					t.Errorf("loss ledger stage %s shows %q, the report has %d", st, v, n)
				}
			}
			if after.Messages != nil && number(t, shown["messages"]) != *after.Messages {
				t.Errorf("collector messages counter shows %q, the report has %v", shown["messages"], *after.Messages)
			}
		}
		checkDownloads(t, b, "probes")
		e.shoot(t, b, "probes")
		b.noErrors(t)
	})

	t.Run("explorer-records", func(t *testing.T) {
		want := e.report(t, "--order", "bytes", "--limit", "100")
		b.run(t, navigate(e.base+"?view=explorer", "explorer")...)
		if n := len(tableRows(t, b, "biflows")); n != len(want.Biflows) {
			t.Fatalf("%d biflows listed, the report lists %d", n, len(want.Biflows))
		}
		checkTotals(t, b, "explorer", want)
		// A biflow both probes saw (two or more records).
		pick := -1
		for i, bf := range want.Biflows {
			if bf.Flows >= 2 {
				pick = i
				break
			}
		}
		if pick < 0 {
			t.Fatal("no biflow with several records")
		}
		b.run(t, click(fmt.Sprintf(`table[data-table="biflows"] tbody tr:nth-child(%d) td:nth-child(2)`, pick+1), "explorer")...)
		b.run(t, chromedp.WaitVisible(chromedp.CSS(`#records`)))
		recs := tableRows(t, b, "records")
		bf := want.Biflows[pick]
		if len(recs) != bf.Flows {
			t.Errorf("biflow %v: %d records shown, the report merged %d", bf.Key, len(recs), bf.Flows)
		}
		// Each record's scanned octets as mira flows gives them ("–":
		// none); the biflow's directions sum its kept records'.
		var shown, listed []uint64
		for _, r := range recs {
			v, ok := r.Cols["scanned_octets"]
			if !ok {
				t.Fatalf("records table has no scanned_octets column: %v", r.Cells)
			}
			n := uint64(0)
			if v != "–" {
				n = number(t, v)
			}
			shown = append(shown, n)
		}
		l := e.flows(t, "--host", bf.Src.String(), "--port", strconv.Itoa(int(bf.Sport)), "--proto", strconv.Itoa(int(bf.Proto)))
		for _, f := range l.Flows {
			fwd := f.Src == bf.Src && f.Sport == bf.Sport && f.Dst == bf.Dst && f.Dport == bf.Dport
			rev := f.Src == bf.Dst && f.Sport == bf.Dport && f.Dst == bf.Src && f.Dport == bf.Sport
			if (fwd || rev) && int64(f.First) >= bf.First && int64(f.Last) <= bf.Last {
				listed = append(listed, f.ScannedOctets)
			}
		}
		slices.Sort(shown)
		slices.Sort(listed)
		if !slices.Equal(shown, listed) {
			t.Errorf("biflow %v: records show scanned octets %v, mira flows %v", bf.Key, shown, listed)
		}
		t.Logf("biflow %v: scanned %d/%d, records %v", bf.Key, bf.ScannedOctets, bf.RScannedOctets, shown)
		e.shoot(t, b, "explorer-records")
		b.noErrors(t)
	})

	t.Run("explorer-pages", func(t *testing.T) {
		// Pages of 10 biflows: next, next, previous, each the report's
		// --limit 10 --offset N; "show" is only on the first page.
		ep := func(a string, port uint16) string {
			if strings.Contains(a, ":") {
				a = "[" + a + "]"
			}
			return fmt.Sprintf("%s:%d", a, port)
		}
		check := func(off int) {
			t.Helper()
			want := e.report(t, "--order", "bytes", "--limit", "10", "--offset", strconv.Itoa(off))
			var w, got []string
			for _, bf := range want.Biflows {
				w = append(w, ep(bf.Src.String(), bf.Sport)+" "+ep(bf.Dst.String(), bf.Dport))
			}
			for _, r := range tableRows(t, b, "biflows") {
				got = append(got, r.Cells[3]+" "+r.Cells[4])
			}
			if strings.Join(got, ",") != strings.Join(w, ",") {
				t.Fatalf("offset %d: listed %q, the report %q", off, got, w)
			}
			if got, w := text(t, b, `[data-page="listed"]`), fmt.Sprintf("%d–%d", off+1, off+len(want.Biflows)); got != w {
				t.Errorf("offset %d: says %q listed, want %q", off, got, w)
			}
			checkTotals(t, b, "explorer page", want)
			if more := eval[bool](t, b, `[...document.querySelectorAll("#view a.drill")].some(a => a.textContent.startsWith("show "))`); more != (off == 0) {
				t.Errorf("offset %d: a show link: %v", off, more)
			}
			if prev := eval[bool](t, b, `!!document.getElementById("page-prev")`); prev != (off > 0) {
				t.Errorf("offset %d: a previous link: %v", off, prev)
			}
		}
		b.run(t, navigate(e.base+"?view=explorer&limit=10", "explorer")...)
		check(0)
		b.run(t, click("#page-next", "explorer")...)
		check(10)
		b.run(t, click("#page-next", "explorer")...)
		check(20)
		b.run(t, click("#page-prev", "explorer")...)
		check(10)
		if !eval[bool](t, b, `location.search.includes("offset=10")`) {
			t.Errorf("the URL %s does not hold the page", eval[string](t, b, `location.search`))
		}
		// Another filter starts again at the first page.
		b.run(t, navigate(e.base+"?view=explorer&limit=10&proto=tcp&offset=10", "explorer")...)
		b.run(t, stale(), chromedp.Click(chromedp.CSS(`#chips [data-filter="proto"] button`), chromedp.NodeVisible), ready("explorer"))
		if eval[bool](t, b, `location.search.includes("offset=")`) {
			t.Errorf("removing a filter kept the page: %s", eval[string](t, b, `location.search`))
		}
		check(0)
		noLeaks(t, b, "explorer pages")
		b.noErrors(t)
	})

	t.Run("read-only", func(t *testing.T) {
		for _, path := range []string{"", "api/report", "api/probes"} {
			resp, err := http.Post(e.base+path, "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST /%s: %d, want 405", path, resp.StatusCode)
			}
		}
	})
}

// TestAccess runs mira-collector with collector.yaml's web section (a
// token and a certificate): the UI and the API answer over HTTPS only,
// and only with the token; writes are refused even with it.
func TestAccess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mira-collector")
	}
	bin := buildBinaries(t)
	pki := peertest.NewTLSFiles(t)
	cfg := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("web: {token: s3cret, cert: %s, key: %s}\n", pki.ServerCert, pki.ServerKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, base := startCollector(t, bin, "--config", cfg)
	pem, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	secure := strings.Replace(base, "http://", "https://", 1)
	do := func(method, url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		io.Copy(&b, resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, path := range []string{"", "api/report", "api/probes", "metrics", "app.js"} {
		if code, _ := do("GET", secure+path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET /%s without the token: %d, want 401", path, code)
		}
		if code, _ := do("GET", secure+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET /%s with a wrong token: %d, want 401", path, code)
		}
		if code, _ := do("GET", secure+path, "s3cret"); code != http.StatusOK {
			t.Errorf("GET /%s with the token: %d, want 200", path, code)
		}
	}
	if code, body := do("GET", secure+"api/report", "s3cret"); !strings.Contains(body, `"summary"`) {
		t.Errorf("GET /api/report: %d %s", code, body)
	}
	if code, _ := do("POST", secure+"api/report", "s3cret"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/report with the token: %d, want 405", code)
	}
	// Plain HTTP gets no page.
	if code, body := do("GET", base, "s3cret"); code == http.StatusOK {
		t.Errorf("plain HTTP answered 200: %.80s", body)
	}
}

var large = flag.Bool("large", false, "TestOverviewLarge: fill the store from `mira synth --large` (400k flows) and time the overview")

var overviewDB = flag.String("overview-db", "", "TestOverviewLarge: time the overview over a copy of this store (e.g. 10 M flows from tools/bench/flowstore)")

// overviewStore times the overview over a copy of the -overview-db store,
// served by mira-collector (its rollups rebuilt first when they were
// made with other rules), and checks its totals against the rollups'
// report (on that store equal to the records', see BENCHMARKS.md; the
// records' report of 10 M flows takes minutes and 18 GB).
func overviewStore(t *testing.T, b *browser, e *env) {
	db := filepath.Join(t.TempDir(), "copy.db")
	if out, err := exec.Command("cp", *overviewDB, db).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	start := time.Now()
	if err := exec.Command(filepath.Join(e.bin, "mira"), "report", "--db", db, "--source", "rollups", "--format", "json").Run(); err != nil {
		// Made with other rules: rebuild them as the collector would.
		if out, err := exec.Command(filepath.Join(e.bin, "mira"), "rollup", "--db", db).CombinedOutput(); err != nil {
			t.Fatalf("mira rollup: %v %s", err, out)
		}
		t.Logf("rollups rebuilt in %v", time.Since(start).Round(time.Millisecond))
	}
	_, _, e.base = startCollector(t, e.bin, "--db", db)
	e.db = db
	start = time.Now()
	b.run(t, chromedp.Navigate(e.base), chromedp.WaitVisible(chromedp.CSS(`#view[data-state="ready"][data-view="overview"]`)))
	took := time.Since(start)
	all := e.report(t, "--source", "rollups")
	t.Logf("overview rendered in %v over %d records (%d biflows)", took.Round(time.Millisecond), all.Summary.Flows, all.Summary.Biflows)
	if pk := text(t, b, `[data-metric="packets"]`); number(t, pk) != all.Summary.Packets {
		t.Errorf("overview shows %s packets, the report %d", pk, all.Summary.Packets)
	}
	e.shoot(t, b, "overview-store")
	b.noErrors(t)
}

// TestOverviewLarge times the overview in Chromium over the store that
// `mira synth --large` (about 400,000 flows) fills through mira-probe and
// mira-collector, and checks its totals against `mira report`. It only
// measures (issue 15 asks for 1 s at 10 M flows, which needs the rollups
// of the performance issue): run with -large.
func TestOverviewLarge(t *testing.T) {
	if !*large {
		t.Skip("run with -large")
	}
	b := newBrowser(t)
	e := &env{bin: buildBinaries(t), shot: shotDir(t)}
	if *overviewDB != "" {
		overviewStore(t, b, e)
		return
	}
	pcap := filepath.Join(t.TempDir(), "large.pcap")
	if out, err := exec.Command(filepath.Join(e.bin, "mira"), "synth", "--large", "-o", pcap).CombinedOutput(); err != nil {
		t.Fatalf("mira synth --large: %v\n%s", err, out)
	}
	var port int
	e.db, port, e.base = startCollector(t, e.bin)
	start := time.Now()
	probe(t, e.bin, pcap, "", port, 1)
	t.Logf("mira-probe -r large.pcap into mira-collector: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	b.run(t, chromedp.Navigate(e.base), chromedp.WaitVisible(chromedp.CSS(`#view[data-state="ready"][data-view="overview"]`)))
	took := time.Since(start)
	start = time.Now()
	all := e.report(t)
	t.Logf("overview rendered in %v over %d records (%d biflows); mira report --format json took %v",
		took.Round(time.Millisecond), all.Summary.Flows, all.Summary.Biflows, time.Since(start).Round(time.Millisecond))
	if pk := text(t, b, `[data-metric="packets"]`); number(t, pk) != all.Summary.Packets {
		t.Errorf("overview shows %s packets, mira report %d", pk, all.Summary.Packets)
	}
	e.shoot(t, b, "overview-large")
	b.noErrors(t)
}

// TestRangeCut: once retention deleted older records and rollups, the
// web UI says where its numbers start, as mira report's "Range cut:"
// lines do: the top talkers (from the records) with the records' cut,
// the overview with the cut of whichever answered it.
func TestRangeCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and starts a browser")
	}
	b := newBrowser(t)
	e := &env{bin: buildBinaries(t), shot: shotDir(t)}
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Minute)
	var pcaps []string
	for i, age := range []time.Duration{3 * time.Hour, 10 * time.Minute} {
		c := synth.Default()
		c.Start = now.Add(-age)
		pcaps = append(pcaps, filepath.Join(dir, fmt.Sprintf("synth%d.pcap", i)))
		f, err := os.Create(pcaps[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := synth.WritePcap(c, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfg, []byte("retention: {max_age: 1h}\nrollups: {minute_retention: 1h, hour_retention: 1h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, port, _, stop := runCollector(t, e.bin, "--config", cfg)
	for i, p := range pcaps {
		probe(t, e.bin, p, "", port, i+1)
	}
	stop()
	// Retention runs when the collector starts.
	_, _, e.base = startCollector(t, e.bin, "--config", cfg, "--db", db)
	e.db = db
	get := func(query string) *report.Report { return e.apiReport(t, query) }
	// cutOf is the line the UI shows for a report's summary.
	cutOf := func(r *report.Report) string {
		var notes []string
		if r.Summary.Rollup != nil && r.Summary.Rollup.Note != "" {
			notes = append(notes, r.Summary.Rollup.Note)
		}
		if r.Summary.RecordsNote != "" {
			notes = append(notes, r.Summary.RecordsNote)
		}
		if len(notes) == 0 {
			return ""
		}
		return "Range cut: " + strings.Join(notes, "; ")
	}
	var talkers *report.Report
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if talkers = get("by=host&order=bytes&limit=25"); talkers.Summary.RecordsNote != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no records_note a minute after restarting the collector with max_age 1h: %+v", talkers.Summary)
		}
	}
	cut := func() string {
		return eval[string](t, b, `(document.querySelector('[data-note="range-cut"]') || {textContent: ""}).textContent`)
	}
	b.run(t, navigate(e.base+"?view=talkers", "talkers")...)
	if got, want := cut(), cutOf(talkers); got != want {
		t.Errorf("top talkers say %q, want %q", got, want)
	}
	e.shoot(t, b, "range-cut-talkers")
	b.run(t, navigate(e.base+"?view=overview", "overview")...)
	// The report the overview asked for (its bucket decides whether the
	// rollups or the records answer).
	asked := eval[string](t, b, `performance.getEntriesByType("resource").map(r => r.name).filter(n => n.includes("/api/report?")).pop() || ""`)
	_, query, ok := strings.Cut(asked, "?")
	if !ok {
		t.Fatalf("the overview asked for no report (%q)", asked)
	}
	overview := get(query)
	if got, want := cut(), cutOf(overview); got != want || want == "" {
		t.Errorf("the overview says %q, want %q", got, want)
	}
	e.shoot(t, b, "range-cut-overview")
	noLeaks(t, b, "range cut")
	b.noErrors(t)
}

// TestBasicAuthInAddress: with collector.yaml's web user and password, a
// browser opened on http://user:password@host/ shows the views. Every
// view failed ("Request cannot be constructed from a URL that includes
// credentials"): the page's requests were relative to an address that
// held the credentials, and fetch refuses those.
func TestBasicAuthInAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs mira-collector")
	}
	bin := buildBinaries(t)
	cfg := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(cfg, []byte("web: {user: mira, password: \"s3cret-pass\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, base := startCollector(t, bin, "--config", cfg)
	b := newBrowser(t)
	withCreds := strings.Replace(base, "http://", "http://mira:s3cret-pass@", 1)
	for _, v := range []string{"overview", "usage", "explorer"} {
		b.run(t, navigate(withCreds+"?view="+v, v)...)
		if msg := eval[string](t, b, `(document.getElementById("error") || {}).textContent || ""`); msg != "" {
			t.Fatalf("%s: the view shows an error: %s", v, msg)
		}
		if v == "overview" {
			if got := text(t, b, `[data-metric="packets"]`); got != "0" {
				t.Errorf("overview of an empty store: %q packets", got)
			}
		}
	}
}

// TestHeatmapCellsByStart: every cell of the symptoms heatmap opens the
// flow explorer on the biflows it counted: a cell counts the biflows
// that started in its bucket, and the explorer listed those active in
// it (more, where biflows cross the bucket's bounds) until the cells'
// links selected by start (started=1). The capture's connections cross
// the buckets' bounds: in some cell the biflows active differ from
// those started, else the test proves nothing. The overview's
// drag-to-zoom selects its range by start too.
func TestHeatmapCellsByStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and starts a browser")
	}
	b := newBrowser(t)
	e := &env{bin: buildBinaries(t), shot: shotDir(t)}
	pcap := synthPcap(t)
	var port int
	e.db, port, e.base = startCollector(t, e.bin)
	probe(t, e.bin, pcap, "", port, 1)
	api := func(query string) *report.Report { return e.apiReport(t, query) }
	type cell struct{ Symptom, Bucket, Text string }
	cellSel := func(c cell) string {
		return fmt.Sprintf(`#heatmap .cell[data-symptom="%s"][data-bucket="%s"]`, c.Symptom, c.Bucket)
	}
	b.run(t, navigate(e.base+"?view=symptoms", "symptoms")...)
	cells := eval[[]cell](t, b, `[...document.querySelectorAll("#heatmap .cell:not(.zero)")].map(c => ({Symptom: c.dataset.symptom, Bucket: c.dataset.bucket, Text: c.textContent}))`)
	if len(cells) < 5 {
		t.Fatalf("%d heatmap cells: the test proves little", len(cells))
	}
	// The buckets' length, from the heatmap's columns.
	cols := eval[[]string](t, b, `[...document.querySelectorAll("#heatmap .colh")].map(c => c.title)`)
	if len(cols) < 2 {
		t.Fatalf("%d heatmap columns", len(cols))
	}
	t0, err0 := time.Parse(time.RFC3339, cols[0])
	t1, err1 := time.Parse(time.RFC3339, cols[1])
	if err0 != nil || err1 != nil || !t1.After(t0) {
		t.Fatalf("heatmap columns %q, %q", cols[0], cols[1])
	}
	step := t1.Sub(t0)
	// Every cell's count is /api/report's with started=1 for its
	// bucket; the cells whose biflows active in the bucket differ are
	// the ones the explorer got wrong.
	var crossing, plain []cell
	for _, c := range cells {
		n := number(t, c.Text)
		from, err := time.Parse(time.RFC3339, c.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		q := "symptom=" + url.QueryEscape(c.Symptom) + "&from=" + from.Format(time.RFC3339) + "&to=" + from.Add(step).Format(time.RFC3339) + "&limit=1"
		if started := api(q + "&started=1"); uint64(started.Summary.Biflows) != n {
			t.Errorf("cell %s %s counts %d biflows, /api/report with started=1 %d", c.Symptom, c.Bucket, n, started.Summary.Biflows)
		}
		if active := api(q); uint64(active.Summary.Biflows) != n {
			crossing = append(crossing, c)
		} else {
			plain = append(plain, c)
		}
	}
	t.Logf("%d cells of %v; in %d the biflows active in the bucket differ from those started in it", len(cells), step, len(crossing))
	if len(crossing) == 0 {
		t.Fatal("no cell's biflows cross its bucket's bounds: the test proves nothing")
	}
	// Click those cells (and a few others): the explorer lists what the
	// cell counted.
	for _, c := range append(crossing[:min(len(crossing), 12)], plain[:min(len(plain), 4)]...) {
		n := number(t, c.Text)
		b.run(t, navigate(e.base+"?view=symptoms", "symptoms")...)
		b.run(t, click(cellSel(c), "explorer")...)
		if shown := number(t, text(t, b, `[data-total="biflows"]`)); shown != n {
			t.Errorf("cell %s %s counts %d biflows, its explorer lists %d", c.Symptom, c.Bucket, n, shown)
		}
	}
	e.shoot(t, b, "heatmap-explorer")

	// Drag-to-zoom over the overview chart: the range it selects counts
	// the biflows by start, as the chart's buckets do.
	b.run(t, navigate(e.base, "overview")...)
	b.run(t, chromedp.WaitVisible(chromedp.CSS(`#usage-chart .u-over`)))
	r := eval[[]float64](t, b, `(() => { const r = document.querySelector("#usage-chart .u-over").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	y := r[1] + r[3]/2
	b.run(t, stale(), chromedp.DragAndDropXY(r[0]+r[2]*0.3, y, r[0]+r[2]*0.6, y, 10), ready("overview"))
	u, err := url.Parse(eval[string](t, b, `location.href`))
	if err != nil {
		t.Fatal(err)
	}
	zq := u.Query()
	if zq.Get("from") == "" || zq.Get("to") == "" || zq.Get("started") != "1" {
		t.Fatalf("drag-to-zoom went to %s: want from, to and started=1", u)
	}
	want := e.report(t, "--from", zq.Get("from"), "--to", zq.Get("to"), "--started")
	if bf := text(t, b, `[data-metric="biflows"]`); number(t, bf) != uint64(want.Summary.Biflows) {
		t.Errorf("zoomed to %s..%s, the overview shows %s biflows, mira report --started %d", zq.Get("from"), zq.Get("to"), bf, want.Summary.Biflows)
	}
	e.shoot(t, b, "zoomed-overview")
	b.noErrors(t)
}
