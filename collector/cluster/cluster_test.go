package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector/cluster"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/collector/web"
	"github.com/mira-project/mira/tools/peertest"
)

// The cluster tests run the real binaries: mira-probes reading a real
// capture (split by direction, one probe per direction), exporting to a
// single mira-collector for the reference, and to two ingest nodes
// (mira-collector --listen --nats) with two consolidation workers
// (mira-collector --nats --worker --db) on an embedded NATS server; the
// merged report (mira report --nats) must equal the reference exactly.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// TestMain removes the binaries built for the tests (each run built
// them into a new temporary directory and left it behind).
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binaries(t *testing.T) (probe, coll, mira string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mira-cluster-")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"mira-probe", "mira-collector", "mira"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "github.com/mira-project/mira/cmd/"+c)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "mira-probe"), filepath.Join(binDir, "mira-collector"), filepath.Join(binDir, "mira")
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago, never one
// it returned before in this process: two calls in a row may otherwise
// get the same port from the kernel (a collector's --listen and --http
// once did), and the second program then fails to bind.
func freePort(t *testing.T) int {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handed[port] {
			handed[port] = true
			return port
		}
	}
	t.Fatal("no port that was not handed out already")
	return 0
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// syncBuffer is a process's log, written by its pipes and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  syncBuffer
	done chan struct{}
}

func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, p.log.String())
		}
	})
	return p
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop:\n%s", p.name, p.log.String())
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// waitTCP waits until something listens on port.
func waitTCP(t *testing.T, p *proc, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.name, p.log.String())
		default:
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %d:\n%s", p.name, port, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const probeConfig = `probe: {name: cl}
aggregates:
  home: [192.168.0.0/16]
  rules:
    - {name: campus-out, direction: [outgoing]}
    - {name: campus-in, direction: [incoming]}
    - {name: campus-internal, direction: [internal]}
`

var recordsRE = regexp.MustCompile(`capture ended.* records=(\d+)`)

// runProbe runs mira-probe on pcap keeping scope, exporting to port; it
// returns the records it exported.
func runProbe(t *testing.T, bin, pcap string, domain, port int, scope string) (int, error) {
	f := filepath.Join(t.TempDir(), "probe.yaml")
	if err := os.WriteFile(f, []byte(probeConfig+scope), 0o644); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--config", f, "-r", pcap, "--domain", strconv.Itoa(domain),
		"--export", fmt.Sprintf("tcp://127.0.0.1:%d", port)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("mira-probe: %v\n%s", err, out)
	}
	m := recordsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("mira-probe: no record count in its log:\n%s", out)
	}
	return strconv.Atoi(string(m[1]))
}

// scopes split the capture by direction: each direction of a connection
// is metered by one probe only.
var scopes = []string{"  scope: {directions: [outgoing, internal]}\n", "  scope: {directions: [incoming, transit]}\n"}

// runProbes runs one probe per scope, probe i exporting to ports[i].
func runProbes(t *testing.T, bin, pcap string, ports []int) int {
	t.Helper()
	var wg sync.WaitGroup
	n := make([]int, len(scopes))
	errs := make([]error, len(scopes))
	for i := range scopes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n[i], errs[i] = runProbe(t, bin, pcap, 10+i, ports[i], scopes[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return n[0] + n[1]
}

func reportJSON(t *testing.T, mira string, args ...string) (*report.Report, error) {
	t.Helper()
	out, err := exec.Command(mira, append([]string{"report", "--format", "json"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("mira report: %v\n%s", err, ee.Stderr)
		}
		return nil, err
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("mira report: %v", err)
	}
	return &r, nil
}

type biflowKey struct {
	src, dst     string
	sport, dport uint16
	proto        uint8
}

// biflows maps each 5-tuple to the counters (packets, octets, reverse
// packets, reverse octets) of its biflows, sorted: a connection's tuple
// can be reused, and a report lists biflows of equal size in no fixed
// order.
func biflows(r *report.Report) map[biflowKey]string {
	l := map[biflowKey][][4]uint64{}
	for _, b := range r.Biflows {
		k := biflowKey{b.Src.String(), b.Dst.String(), b.Sport, b.Dport, b.Proto}
		l[k] = append(l[k], [4]uint64{b.Packets, b.Octets, b.RPackets, b.ROctets})
	}
	m := map[biflowKey]string{}
	for k, v := range l {
		slices.SortFunc(v, func(a, b [4]uint64) int { return slices.Compare(a[:], b[:]) })
		m[k] = fmt.Sprint(v)
	}
	return m
}

// same compares the merged report with the reference.
func same(t *testing.T, got, want *report.Report) {
	t.Helper()
	gs, ws := got.Summary, want.Summary
	if gs.Flows != ws.Flows || gs.Biflows != ws.Biflows || gs.Packets != ws.Packets || gs.Octets != ws.Octets {
		t.Errorf("merged: flows %d biflows %d packets %d octets %d; single collector: %d %d %d %d",
			gs.Flows, gs.Biflows, gs.Packets, gs.Octets, ws.Flows, ws.Biflows, ws.Packets, ws.Octets)
	}
	gb, wb := biflows(got), biflows(want)
	for k, w := range wb {
		if g, ok := gb[k]; !ok || g != w {
			t.Errorf("biflow %v: merged %v, single collector %v", k, g, w)
		}
	}
	for k := range gb {
		if _, ok := wb[k]; !ok {
			t.Errorf("biflow %v only in the merged report", k)
		}
	}
	if len(got.Usage) != len(want.Usage) {
		t.Errorf("merged: %d usage rows, single collector %d", len(got.Usage), len(want.Usage))
	}
	for i := range min(len(got.Usage), len(want.Usage)) {
		g, w := got.Usage[i], want.Usage[i]
		if g.Aggregate != w.Aggregate || g.Category != w.Category || g.Biflows != w.Biflows || g.Packets != w.Packets || g.Octets != w.Octets {
			t.Errorf("usage row %d: merged %+v, single collector %+v", i, g, w)
		}
	}
}

// TestCluster: two ingest nodes (each direction of every connection
// enters a different one) and two workers, one killed with SIGKILL while
// the probes export and started again; the merged report equals a
// single collector's on the same export.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := peertest.CorpusFile(t, "pcaps", "ndpi", "1kxun.pcap")
	probeBin, collBin, miraBin := binaries(t)

	// The reference: one mira-collector.
	db := filepath.Join(t.TempDir(), "single.db")
	port := freePort(t)
	single := start(t, "single collector", collBin, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--db", db)
	waitTCP(t, single, port)
	n := runProbes(t, probeBin, pcap, []int{port, port})
	single.stop(t)
	want, err := reportJSON(t, miraBin, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	if want.Summary.Flows != n || want.Summary.Biflows < 50 {
		t.Fatalf("reference: %d records of %d exported, %d biflows", want.Summary.Flows, n, want.Summary.Biflows)
	}
	paired := 0
	for _, b := range want.Biflows {
		if b.Packets > 0 && b.RPackets > 0 {
			paired++
		}
	}
	t.Logf("single collector: %d records, %d biflows (%d with both directions), %d packets, %d octets",
		n, want.Summary.Biflows, paired, want.Summary.Packets, want.Summary.Octets)

	// The cluster on an embedded NATS server.
	ns, url, err := cluster.Embedded("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, js, err := cluster.Connect(url, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	if err := cluster.Setup(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	metricsPort := freePort(t)
	worker := func(name string) *proc {
		args := []string{"--nats", url, "--worker", "--db", filepath.Join(dir, name+".db")}
		if name == "wa" {
			args = append(args, "--metrics", fmt.Sprintf("127.0.0.1:%d", metricsPort))
		}
		return start(t, name, collBin, args...)
	}
	wa, wb := worker("wa"), worker("wb")
	waitLeases(t, js, map[string]bool{"wa": true, "wb": true})
	ports := []int{freePort(t), freePort(t)}
	httpPort := freePort(t)
	var ingest []*proc
	for i, p := range ports {
		args := []string{"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", p), "--nats", url}
		if i == 0 {
			// The first ingest node also serves the merged API and UI.
			args = append(args, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort))
		}
		g := start(t, fmt.Sprintf("ingest %d", i), collBin, args...)
		waitTCP(t, g, p)
		ingest = append(ingest, g)
	}

	// Kill wb once records flow, while the probes export.
	killed := make(chan int, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if s, err := js.Stream(ctx, cluster.FlowStream); err == nil {
				if info, err := s.Info(ctx); err == nil && info.State.LastSeq > 0 {
					wb.kill(t)
					killed <- int(info.State.LastSeq)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		killed <- -1
	}()
	if got := runProbes(t, probeBin, pcap, ports); got != n {
		t.Fatalf("probes exported %d records, %d to the single collector", got, n)
	}
	at := <-killed
	if at < 0 {
		t.Fatal("no record batch was published")
	}
	t.Logf("wb killed (SIGKILL) after %d batches were published", at)
	wb = worker("wb")
	_ = wa

	// Wait until the merged report holds every record.
	var got *report.Report
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err = reportJSON(t, miraBin, "--nats", url)
		if err == nil && got.Summary.Flows >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("merged report: %v, %d of %d records", err, flows(got), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	same(t, got, want)
	// Each direction entered a different ingest node: the pairs are
	// there all the same.
	gotPaired := 0
	for _, b := range got.Biflows {
		if b.Packets > 0 && b.RPackets > 0 {
			gotPaired++
		}
	}
	if gotPaired != paired || paired == 0 {
		t.Errorf("merged report: %d biflows with both directions, single collector %d", gotPaired, paired)
	}

	// The HTTP API of a node in cluster mode merges like mira report
	// --nats: its report and its probe list equal the single
	// collector's.
	api := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	var apiRep report.Report
	if err := getJSON(api+"/api/report", &apiRep); err != nil {
		t.Fatal(err)
	}
	same(t, &apiRep, want)

	// From the workers' rollups: the usage table by category and hour
	// equals the single collector's record report's (and its rollup
	// report's when no record reached its rollups late), through mira
	// report --nats and the API.
	byCat := []string{"--by", "category", "--bucket", "1h"}
	wantRec, err := reportJSON(t, miraBin, append([]string{"--db", db}, byCat...)...)
	if err != nil {
		t.Fatal(err)
	}
	wantRol, err := reportJSON(t, miraBin, append([]string{"--db", db, "--source", "rollups"}, byCat...)...)
	if err != nil {
		t.Fatal(err)
	}
	gotRol, err := reportJSON(t, miraBin, append([]string{"--nats", url, "--source", "rollups"}, byCat...)...)
	if err != nil {
		t.Fatal(err)
	}
	var apiRol report.Report
	if err := getJSON(api+"/api/report?source=rollups&by=category&bucket=1h", &apiRol); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*report.Report{gotRol, &apiRol} {
		if g.Summary.Rollup == nil || mustJSON(t, g.Usage) != mustJSON(t, wantRec.Usage) || g.Summary.Biflows != want.Summary.Biflows {
			t.Errorf("rollups of the cluster: %s\nsingle collector's records: %s", mustJSON(t, g.Usage), mustJSON(t, wantRec.Usage))
		}
	}
	if wantRol.Summary.Rollup.Late == 0 && mustJSON(t, gotRol.Usage) != mustJSON(t, wantRol.Usage) {
		t.Errorf("rollups of the cluster: %s\nsingle collector's: %s", mustJSON(t, gotRol.Usage), mustJSON(t, wantRol.Usage))
	}
	t.Logf("rollups: %d usage rows; the single collector's had %d late records", len(gotRol.Usage), wantRol.Summary.Rollup.Late)
	// /api/rollups (what the web UI asks before a report from rollups)
	// says the workers' rollups answer, over the records' time.
	var avail struct {
		Available   bool
		First, Last *report.Timestamp
	}
	if err := getJSON(api+"/api/rollups?by=category", &avail); err != nil {
		t.Fatal(err)
	}
	if !avail.Available || avail.First == nil || *avail.First != *wantRec.Summary.First {
		t.Errorf("/api/rollups of the cluster: %+v", avail)
	}
	var apiProbes []web.Probe
	if err := getJSON(api+"/api/probes", &apiProbes); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	wantProbes, err := web.Probes(ctx, st, store.Query{})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// When a sampling announcement arrived (and so its Since, when no
	// record came before it) is each run's own: the rest must agree.
	for _, ps := range [][]web.Probe{apiProbes, wantProbes} {
		for i := range ps {
			if a := ps[i].Sampling; a != nil {
				if a.At.IsZero() {
					t.Errorf("probe %s: sampling announcement without its arrival time", ps[i].Probe)
				}
				a.At, a.Since = time.Time{}, 0
			}
		}
	}
	if g, w := mustJSON(t, apiProbes), mustJSON(t, wantProbes); g != w || len(wantProbes) != 2 {
		t.Errorf("/api/probes of the cluster:\n%s\nsingle collector's:\n%s", g, w)
	}
	var flowList report.FlowList
	if err := getJSON(api+"/api/flows?limit=5", &flowList); err != nil {
		t.Fatal(err)
	}
	if flowList.Summary.Flows != n || len(flowList.Flows) != 5 {
		t.Errorf("/api/flows?limit=5: %d records listed of %d; want 5 of %d", len(flowList.Flows), flowList.Summary.Flows, n)
	}
	// /metrics in cluster mode: the first ingest node (on --http)
	// published every record it decoded; worker wa (on --metrics)
	// stored records and holds partitions.
	deadline = time.Now().Add(30 * time.Second)
	for {
		m, err := scrape(api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		rec, pub := m["mira_collector_records_total"], m["mira_cluster_published_records_total"]
		if rec > 0 && pub == rec && m["mira_cluster_unpublished_records_total"] == 0 {
			t.Logf("ingest node 0: %v records decoded and published", rec)
			if v, ok := m["mira_cluster_unpublished_announcements_total"]; !ok || v != 0 {
				t.Errorf("ingest node /metrics: mira_cluster_unpublished_announcements_total %v (shown: %v), want 0", v, ok)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest node /metrics: %v records decoded, %v published, %v unpublished", rec, pub, m["mira_cluster_unpublished_records_total"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	m, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	if m["mira_cluster_worker_stored_records_total"] == 0 || m["mira_cluster_worker_partitions"] == 0 || m["mira_cluster_worker_partitions"] > cluster.Partitions {
		t.Errorf("worker wa /metrics: %v records stored, %v partitions", m["mira_cluster_worker_stored_records_total"], m["mira_cluster_worker_partitions"])
	}
	t.Logf("worker wa: %v records stored, %v partitions", m["mira_cluster_worker_stored_records_total"], m["mira_cluster_worker_partitions"])
	for _, g := range ingest {
		g.stop(t)
	}
	wb.stop(t)
}

// scrape reads a Prometheus text page: the value of each metric without
// labels.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		// Labelled series keep their labels: name{label="value"}.
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[name] = f
		}
	}
	return m, nil
}

func flows(r *report.Report) int {
	if r == nil {
		return -1
	}
	return r.Summary.Flows
}

// waitLeases waits until the partitions are leased, each to one of want.
func waitLeases(t *testing.T, js jetstream.JetStream, want map[string]bool) {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cluster.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		held := map[string]int{}
		n := 0
		for p := 0; p < cluster.Partitions; p++ {
			if e, err := kv.Get(ctx, "p."+strconv.Itoa(p)); err == nil && want[string(e.Value())] {
				held[string(e.Value())]++
				n++
			}
		}
		if n == cluster.Partitions && len(held) == len(want) {
			t.Logf("partitions per worker: %v", held)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions leased: %v", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %v", url, err)
	}
	return nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClusterRetention: a one-box cluster (embedded NATS, one worker)
// and a single mira-collector, both with retention max_age 24h, get the
// same export of a capture made years ago: both delete every record on
// a retention pass, and the cluster's reports equal the single
// collector's: from the records (none left) and from the rollups (and
// auto), which outlive the records in both; the worker's /metrics
// counts every record exported as pruned by age.
func TestClusterRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	pcap := peertest.CorpusFile(t, "pcaps", "ndpi", "1kxun.pcap")
	probeBin, collBin, miraBin := binaries(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfg, []byte("retention:\n  max_age: 24h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "single.db")
	port := freePort(t)
	single := start(t, "single collector", collBin, "--config", cfg, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", port), "--db", db)
	cport, nport, mport := freePort(t), freePort(t), freePort(t)
	coll := start(t, "cluster", collBin, "--config", cfg, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", cport),
		"--nats", "embedded", "--nats-listen", fmt.Sprintf("127.0.0.1:%d", nport), "--worker", "--db", filepath.Join(dir, "w1.db"),
		"--metrics", fmt.Sprintf("127.0.0.1:%d", mport))
	waitTCP(t, single, port)
	waitTCP(t, coll, cport)
	n, err := runProbe(t, probeBin, pcap, 1, port, "")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := runProbe(t, probeBin, pcap, 1, cport, ""); err != nil || m != n {
		t.Fatalf("cluster's export: %d records (%v), single's %d", m, err, n)
	}
	pruned := `mira_cluster_worker_pruned_records_total{reason="age"}`
	peertest.WaitUntil(t, 90*time.Second, "every record pruned by age in both", func() bool {
		m, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
		return err == nil && m[pruned] == float64(n) && strings.Contains(single.log.String(), "retention: pruned old records")
	})
	single.stop(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", nport)
	for _, args := range [][]string{nil, {"--source", "rollups", "--by", "category"}, {"--source", "auto", "--by", "probe", "--bucket", "1h"}} {
		want, err := reportJSON(t, miraBin, append([]string{"--db", db}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reportJSON(t, miraBin, append([]string{"--nats", url}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if (args == nil) != (want.Summary.Biflows == 0) {
			t.Fatalf("%v: the single collector's report has %d biflows", args, want.Summary.Biflows)
		}
		same(t, got, want)
	}
}
