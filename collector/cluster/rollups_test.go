package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestWorkerRollups: over TestWorkerParts' cluster (two workers,
// partitions moved between them with connections spanning the move, a
// spooled replay stored twice), `--source rollups` (Report) equals, byte
// for byte, the rollup report of a single collector's store holding
// every record (Gather, then report.Rebuild, as `mira rollup` makes
// them), for groupings, buckets, ranges and filters; its usage table
// equals the record report's over the whole time, as the single
// collector's does; --source auto answers as the single collector's:
// the same over the whole time, from the records over the ranges (records
// lie across their bounds); a moved partition is
// rolled up by one of its holders with the other's records; the
// workers keep what they rolled up and the next report reads it.
func TestWorkerRollups(t *testing.T) {
	nc, js, t0, t1 := twoWorkers(t)
	ctx := context.Background()
	st, src := rebuiltStore(t, ctx, nc, js)
	ts := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	first := true
	for _, tc := range []struct {
		args  []string
		whole bool // the whole time: the usage equals the record report's
	}{
		{nil, true},
		{[]string{"--by", "category"}, true},
		{[]string{"--by", "probe", "--bucket", "1m"}, true},
		{[]string{"--by", "symptom", "--bucket", "1h"}, true},
		{[]string{"--category", "FTP", "--bucket", "5m"}, true},
		{[]string{"--symptom", "2"}, true},
		{[]string{"--from", ts(t1), "--to", ts(t1 + int64(4*time.Minute)), "--bucket", "1m"}, false},
		{[]string{"--to", ts(t0 + int64(2*time.Minute)), "--by", "category"}, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			p := params(t, append([]string{"--source", "rollups"}, tc.args...)...)
			opts := p.Options()
			opts.Rules = classify.Default()
			want, err := p.Report(ctx, st, opts, src)
			if err != nil {
				t.Fatal(err)
			}
			if want.Summary.Biflows == 0 || want.Summary.Rollup == nil {
				t.Fatalf("reference: %d biflows, rollup %v", want.Summary.Biflows, want.Summary.Rollup)
			}
			got, rs := clusterReport(t, ctx, nc, js, p)
			sameJSON(t, "rollup report", got, want)
			if !rs.Rollups || rs.Consolidated == 0 || rs.Central == 0 || (first && rs.Records == 0) {
				t.Errorf("want partitions held by one worker and moved ones rolled up with the other holder's records: %+v", rs)
			}
			if first && rs.Built == 0 {
				t.Error("the first report made no rollups at the workers")
			}
			if !first && (rs.Built != 0 || rs.Cached != rs.Consolidated+rs.Central) {
				t.Errorf("a later report made %d partitions' rollups again (%d kept of %d)", rs.Built, rs.Cached, rs.Consolidated+rs.Central)
			}
			first = false
			// auto: the rollups' answer over the whole time; with a
			// range (records of both exports lie across its bounds),
			// the records', as the single collector's auto.
			pa := params(t, append([]string{"--source", "auto"}, tc.args...)...)
			auto, ars, err := Report(ctx, nc, js, pa, nil, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			wantAuto, err := pa.Report(ctx, st, opts, src)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "--source auto", auto, wantAuto)
			switch {
			case tc.whole && (!ars.Rollups || !bytes.Equal(reportJSON(t, auto), reportJSON(t, want))):
				t.Errorf("--source auto: %v, not the rollups' answer", ars)
			case !tc.whole && (ars.Rollups || wantAuto.Summary.Rollup != nil || !strings.Contains(ars.Fallback, "lies across")):
				t.Errorf("--source auto over a range records lie across: %v, not the records' answer", ars)
			}
			if !tc.whole {
				return
			}
			pr := params(t, tc.args...)
			rec, _, err := Report(ctx, nc, js, pr, nil, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(rec.Usage)
			b, _ := json.Marshal(got.Usage)
			if !bytes.Equal(a, b) || rec.Summary.Biflows != got.Summary.Biflows || rec.Summary.Octets != got.Summary.Octets {
				t.Errorf("rollups' usage %s\nrecords' %s", b, a)
			}
		})
	}
	// What the rollups cannot answer: refused with the reason; auto
	// answers from the records.
	p := params(t, "--source", "rollups", "--port", "21")
	if _, _, err := Report(ctx, nc, js, p, nil, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--port") {
		t.Errorf("--port with --source rollups: %v", err)
	}
	p = params(t, "--source", "auto", "--port", "21")
	got, rs, err := Report(ctx, nc, js, p, nil, t.TempDir())
	if err != nil || got.Summary.Rollup != nil || rs.Fallback == "" || !strings.Contains(rs.String(), "--port") {
		t.Errorf("--port with --source auto: %v, %v", err, rs)
	}
}

// TestRollupParams: the parameters' hash (what kept rollups were made
// with) is the same for equal parameters however their maps iterate,
// and differs when an announcement, a name or the window differs.
func TestRollupParams(t *testing.T) {
	mk := func(interval uint32, name string, window time.Duration) *report.PartSpec {
		s := &report.PartSpec{Window: window, Names: &store.NameIndex{Origins: map[store.Origin][]store.NameAnnouncement{}},
			Announcements: map[store.Origin][]store.Announcement{}}
		for i := range 20 {
			o := store.Origin{Exporter: "192.0.2." + strconv.Itoa(i) + ":4739", Domain: uint32(i)}
			s.Announcements[o] = []store.Announcement{{Since: int64(i), Interval: interval}}
			s.Names.Origins[o] = []store.NameAnnouncement{{Since: int64(i), Names: store.Names{Symptoms: map[uint16]string{1: name, 2: "b", 3: "c"}}}}
		}
		return s
	}
	base, err := rollupParams(mk(10, "a", 0))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if h, _ := rollupParams(mk(10, "a", 0)); h != base {
			t.Fatal("equal parameters hash differently")
		}
	}
	for _, s := range []*report.PartSpec{mk(11, "a", 0), mk(10, "x", 0), mk(10, "a", time.Minute)} {
		if h, _ := rollupParams(s); h == base {
			t.Errorf("other parameters hash the same: %+v", s)
		}
	}
}

// TestWorkerRollupsSampled: with an origin announcing packet sampling
// (1 in 10) and one flow sampling (1 in 49: estimates and variances
// that are not integers), the cluster's rollup report equals the single
// collector's (report.Rebuild over every record gathered) byte for
// byte: the estimator sums are exact (sum.Exact), so the workers'
// partial cells add up to the bits of the single store's. --merge-stats
// says sampled cells were summed. Partitions moved between the workers
// are rolled up by one holder with the other's records.
func TestWorkerRollupsSampled(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	var workers []*Worker
	run := func(name string) { workers = append(workers, runWorker(t, name, nc, js)) }
	wait := func(cond func() bool, what string) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	owned := func() bool {
		n := 0
		for _, w := range workers {
			if len(w.Owned()) == 0 {
				return false
			}
			n += len(w.Owned())
		}
		return n == Partitions
	}
	sent := uint64(0)
	stored := func() bool {
		n := uint64(0)
		for _, w := range workers {
			n += w.Stored.Load()
		}
		return n >= sent
	}
	run("w1")
	wait(owned, "partitions not owned")
	g := NewIngest(js, nil)
	sampled := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.7:4739"), Domain: 1}
	flowed := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.8:4739"), Domain: 2}
	g.ConsumeOptions(sampled, ipfix.DomainOptions{HaveSampling: true, Sampling: ipfix.Sampling{Interval: 10}})
	g.ConsumeOptions(flowed, ipfix.DomainOptions{HaveSampling: true, Sampling: ipfix.Sampling{Interval: 49, Flow: true}})
	rng := rand.New(rand.NewPCG(7, 8))
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	send := func(recs []flow.Record) {
		half := len(recs) / 2
		g.Consume(sampled, recs[:half])
		g.Consume(flowed, recs[half:])
		g.FlushAll()
		sent += uint64(len(recs))
	}
	recs := partRecords(rng, 800, t0, int64(5*time.Minute))
	send(recs[:len(recs)/2])
	wait(stored, "records not stored")
	run("w2")
	wait(owned, "partitions not owned")
	send(recs[len(recs)/2:])
	wait(stored, "records not stored")

	compare := func(round int) {
		st, src := rebuiltStore(t, ctx, nc, js)
		for i, args := range [][]string{{"--by", "probe"}, {"--by", "category", "--bucket", "1m"}} {
			p := params(t, append([]string{"--source", "rollups"}, args...)...)
			want, err := p.Report(ctx, st, report.Options{}, src)
			if err != nil {
				t.Fatal(err)
			}
			got, rs := clusterReport(t, ctx, nc, js, p)
			if want.Summary.Estimate == nil {
				t.Fatal("the reference has no sampled estimate")
			}
			if !rs.Sampled || rs.Central == 0 || rs.Consolidated == 0 {
				t.Errorf("want sampled cells, moved and kept partitions: %+v", rs)
			}
			if round == 1 && i == 0 && rs.Built == 0 {
				t.Errorf("round %d: no partition rolled up again after new records: %v", round, rs)
			}
			sameJSON(t, fmt.Sprintf("round %d %v: rollup report", round, args), got, want)
		}
	}
	compare(0)
	// More records of every partition: the workers roll the changed
	// partitions up again, and the report still equals the reference.
	send(partRecords(rng, 300, t0+int64(7*time.Minute), int64(2*time.Minute)))
	wait(stored, "records not stored")
	compare(1)
}

// clusterReport is `mira report --nats` with p over the test's cluster;
// it logs how the report was made.
func clusterReport(t *testing.T, ctx context.Context, nc *nats.Conn, js jetstream.JetStream, p *report.Params) (*report.Report, ReportStats) {
	t.Helper()
	r, rs, err := Report(ctx, nc, js, p, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rs)
	return r, rs
}

// reportJSON is r as `mira report --format json` writes it.
func reportJSON(t *testing.T, r *report.Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sameJSON fails the test when got and want differ as JSON reports,
// showing where.
func sameJSON(t *testing.T, what string, got, want *report.Report) {
	t.Helper()
	g, w := reportJSON(t, got), reportJSON(t, want)
	if bytes.Equal(g, w) {
		return
	}
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			t.Fatalf("%s: reports differ at byte %d:\n got %s\nwant %s", what, i, g[max(0, i-300):min(len(g), i+300)], w[max(0, i-300):min(len(w), i+300)])
		}
	}
	t.Fatalf("%s: reports differ in length: %d, want %d", what, len(g), len(w))
}

// params parses a mira report command line (JSON output) as the CLI does.
func params(t *testing.T, args ...string) *report.Params {
	t.Helper()
	var p report.Params
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	p.Register(fs)
	if err := fs.Parse(append([]string{"--format", "json"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	return &p
}

// rebuiltStore gathers every worker's records into a temporary store
// and rolls them up as `mira rollup` does: what the cluster's rollup
// reports must equal. The store is closed with the test.
func rebuiltStore(t *testing.T, ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*store.Store, report.RollupSource) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "all.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := Gather(ctx, nc, js, st); err != nil {
		t.Fatal(err)
	}
	cfg, src, err := report.LoadRollupConfig("", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Rebuild(ctx, st, cfg); err != nil {
		t.Fatal(err)
	}
	return st, src
}

// TestWorkerRollupsLive: a worker's clean partitions keep live rollups
// fed at commit. The first report from rollups rolls every partition up
// from all its records (and seeds the live rollups); after more records
// arrive, the next report answers every partition from the live rollups
// (none rolled up again from all its records; the reports after it read
// the cells it kept, nothing having changed) and still equals, byte for
// byte, the rollup report of a store holding every record (Gather,
// report.Rebuild), which they would not without the pending state
// (connections still open at the horizon) flushed into the answer.
func TestWorkerRollupsLive(t *testing.T) {
	_, nc, js := embeddedJS(t)
	ctx := context.Background()
	w := runWorker(t, "w1", nc, js)
	wait := func(cond func() bool, what string) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(func() bool { return len(w.Owned()) == Partitions }, "partitions not owned")
	g := NewIngest(js, nil)
	rng := rand.New(rand.NewPCG(11, 12))
	sent := uint64(0)
	send := func(recs []flow.Record) {
		sent += sendTwoProbes(g, rng, recs)
		wait(func() bool { return w.Stored.Load() >= sent }, "records not stored")
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	compare := func(round int) {
		st, src := rebuiltStore(t, ctx, nc, js)
		for i, args := range [][]string{{"--by", "category", "--bucket", "1h"}, {"--by", "probe", "--bucket", "1m"}, {"--by", "symptom"}} {
			p := params(t, append([]string{"--source", "rollups"}, args...)...)
			opts := p.Options()
			opts.Rules = classify.Default()
			want, err := p.Report(ctx, st, opts, src)
			if err != nil {
				t.Fatal(err)
			}
			got, rs := clusterReport(t, ctx, nc, js, p)
			sameJSON(t, fmt.Sprintf("round %d %v: rollup report", round, args), got, want)
			if want.Summary.Biflows == 0 || rs.Consolidated == 0 || rs.Central != 0 {
				t.Fatalf("round %d: want biflows and partitions held by one worker: %d biflows, %v", round, want.Summary.Biflows, rs)
			}
			switch {
			case round == 0 && i == 0:
				if rs.Built != rs.Consolidated || rs.Live != 0 {
					t.Errorf("first report: want every partition rolled up from its records: %v", rs)
				}
			case i == 0:
				if rs.Built != 0 || rs.Live != rs.Consolidated || rs.Cached != rs.Consolidated {
					t.Errorf("round %d: want every partition answered from its live rollups, none rolled up again: %v", round, rs)
				}
			default:
				// Nothing stored since: the cells the previous report
				// answered, kept.
				if rs.Built != 0 || rs.Live != 0 || rs.Cached != rs.Consolidated {
					t.Errorf("round %d: want the kept cells of the previous answer read: %v", round, rs)
				}
			}
		}
	}
	send(partRecords(rng, 600, t0, int64(5*time.Minute)))
	compare(0)
	for round := 1; round <= 2; round++ {
		send(partRecords(rng, 300, t0+int64(round)*int64(6*time.Minute), int64(3*time.Minute)))
		compare(round)
	}
}
