package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector/cluster"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/tools/peertest"
)

// lab is a set of network namespaces, one per node, each with one veth
// on a bridge in the test's namespace (which reaches every node).
type lab struct {
	t      *testing.T
	prefix string
	net    string // "10.201.X."
	nodes  []string
}

func ipRun(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func newLab(t *testing.T) *lab {
	t.Helper()
	peertest.Program(t, "ip")
	peertest.NetNamespaces(t)
	pid := os.Getpid()
	l := &lab{t: t, prefix: fmt.Sprintf("mc%d", pid%100000), net: fmt.Sprintf("10.201.%d.", pid%250)}
	t.Cleanup(l.destroy)
	l.must("link", "add", l.prefix+"br", "type", "bridge")
	l.must("addr", "add", l.net+"254/24", "dev", l.prefix+"br")
	l.must("link", "set", l.prefix+"br", "up")
	return l
}

func (l *lab) must(args ...string) {
	l.t.Helper()
	if err := ipRun(args...); err != nil {
		l.t.Fatal(err)
	}
}

// add makes node's namespace with address net+host.
func (l *lab) add(node string, host int) string {
	l.t.Helper()
	ns := l.prefix + node
	l.must("netns", "add", ns)
	l.nodes = append(l.nodes, node)
	h, c := ns+"h", ns+"c"
	l.must("link", "add", h, "type", "veth", "peer", "name", c)
	l.must("link", "set", c, "netns", ns)
	l.must("link", "set", h, "master", l.prefix+"br")
	l.must("link", "set", h, "up")
	l.must("-n", ns, "addr", "add", l.net+strconv.Itoa(host)+"/24", "dev", c)
	l.must("-n", ns, "link", "set", c, "up")
	l.must("-n", ns, "link", "set", "lo", "up")
	return l.net + strconv.Itoa(host)
}

func (l *lab) destroy() {
	for _, n := range l.nodes {
		ipRun("link", "del", l.prefix+n+"h")
		ipRun("netns", "del", l.prefix+n)
	}
	ipRun("link", "del", l.prefix+"br")
}

// start runs bin in node's namespace.
func (l *lab) start(name, node, bin string, args ...string) *proc {
	l.t.Helper()
	return start(l.t, name, "ip", append([]string{"netns", "exec", l.prefix + node, bin}, args...)...)
}

// natsNode is one nats-server of the cluster.
type natsNode struct {
	name, addr, conf string
	p                *proc
}

func (l *lab) natsConfig(dir, name, addr string, peers []string) string {
	var routes []string
	for _, p := range peers {
		if p != addr {
			routes = append(routes, "nats-route://"+p+":6222")
		}
	}
	conf := fmt.Sprintf(`server_name: %s
listen: %s:4222
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: mira
  listen: %s:6222
  routes: [%s]
}
`, name, addr, filepath.Join(dir, name), addr, strings.Join(routes, ", "))
	f := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return f
}

// probeRound runs one probe per scope in namespaces p1 and p2 on pcap,
// probe i exporting to ingest[i] and to the single collector at single.
func (l *lab) probeRound(bin, pcap, single string, ingest []string, round int) (int, error) {
	var wg sync.WaitGroup
	n := make([]int, len(scopes))
	errs := make([]error, len(scopes))
	for i := range scopes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := filepath.Join(l.t.TempDir(), "probe.yaml")
			if err := os.WriteFile(f, []byte(netnsProbeConfig+scopes[i]), 0o644); err != nil {
				errs[i] = err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", fmt.Sprintf("%sp%d", l.prefix, i+1),
				bin, "--config", f, "-r", pcap, "--domain", strconv.Itoa(10+i),
				"--export", "tcp://"+ingest[i]+":4739", "--export", "tcp://"+single+":4739").CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("mira-probe %d, round %d: %v\n%s", i+1, round, err, out)
				return
			}
			m := recordsRE.FindSubmatch(out)
			if m == nil {
				errs[i] = fmt.Errorf("mira-probe %d: no record count in its log:\n%s", i+1, out)
				return
			}
			n[i], errs[i] = strconv.Atoi(string(m[1]))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return n[0] + n[1], nil
}

// The whole private space is home: every capture's clients are inside,
// so the two scopes split each connection between the two probes.
const netnsProbeConfig = `probe: {name: cl}
aggregates:
  home: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]
  rules:
    - {name: campus-out, direction: [outgoing]}
    - {name: campus-in, direction: [incoming]}
    - {name: campus-internal, direction: [internal]}
`

// roundCaptures are the real captures the probes replay, one probe run
// per capture (a new exporting process each time, as a probe restarts).
var roundCaptures = []string{"sip.pcap", "1kxun.pcap", "teamspeak3.pcap", "vxlan.pcap", "rtsp.pcap",
	"6in4tunnel.pcap", "portable_executable.pcap", "gnutella.pcap"}

// TestClusterNetns is the check: in network namespaces, a
// three-node nats-server cluster (streams and buckets replicated three
// times), two ingest nodes and three consolidation workers; two probes
// (one per direction, so the two directions of every connection enter
// different ingest nodes) replay real captures, each exporting both to
// its ingest node and to a single mira-collector. While they export,
// one worker and the NATS node leading the flow stream are killed with
// SIGKILL and started again, and a fourth worker joins. The merged
// report (mira report --nats) must equal the single collector's:
// biflows, packets, octets, both-direction pairs, usage rows.
func TestClusterNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	natsBin := peertest.Program(t, "nats-server")
	var pcaps []string
	for _, c := range roundCaptures {
		pcaps = append(pcaps, peertest.CorpusFile(t, "pcaps", "ndpi", c))
	}
	probeBin, collBin, miraBin := binaries(t)
	l := newLab(t)
	dir := t.TempDir()

	// The NATS cluster.
	var nodes []*natsNode
	var addrs, urls []string
	for i := 1; i <= 3; i++ {
		n := &natsNode{name: fmt.Sprintf("n%d", i)}
		n.addr = l.add(n.name, i)
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr)
		urls = append(urls, "nats://"+n.addr+":4222")
	}
	url := strings.Join(urls, ",")
	for _, n := range nodes {
		n.conf = l.natsConfig(dir, n.name, n.addr, addrs)
		n.p = l.start("nats "+n.name, n.name, natsBin, "-c", n.conf)
	}
	for _, a := range addrs {
		waitListening(t, a+":4222")
	}
	nc, js, err := cluster.Connect(url, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	peertest.WaitUntil(t, 60*time.Second, "JetStream meta leader of the NATS cluster", func() bool {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := js.AccountInfo(actx)
		return err == nil
	})

	// The single collector, the reference.
	single := l.add("s", 30)
	sdb := filepath.Join(dir, "single.db")
	sc := l.start("single collector", "s", collBin, "--listen", "tcp://"+single+":4739", "--db", sdb)

	// Three workers; the first creates the streams replicated three times.
	for _, w := range []string{"w1", "w2", "w3", "w4"} {
		l.add(w, 10+int(w[1]-'0'))
	}
	workers := map[string]*proc{}
	worker := func(name string, args ...string) {
		workers[name] = l.start(name, name, collBin, append([]string{"--nats", url, "--worker",
			"--db", filepath.Join(dir, name+".db")}, args...)...)
	}
	worker("w1", "--nats-replicas", "3")
	waitShares(t, js, "w1")
	worker("w2")
	worker("w3")
	waitShares(t, js, "w1", "w2", "w3")
	s, err := js.Stream(ctx, cluster.FlowStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("flow stream replicated %d times, want 3", r)
	}

	// Two ingest nodes.
	var ingest []string
	var ingestProcs []*proc
	for i := 1; i <= 2; i++ {
		node := fmt.Sprintf("i%d", i)
		a := l.add(node, 20+i)
		ingest = append(ingest, a)
		ingestProcs = append(ingestProcs, l.start("ingest "+node, node, collBin, "--listen", "tcp://"+a+":4739", "--nats", url))
	}
	for i := 1; i <= 2; i++ {
		l.add(fmt.Sprintf("p%d", i), 40+i)
	}
	for _, a := range append([]string{single}, ingest...) {
		waitListening(t, a+":4739")
	}
	_ = sc

	// lastSeq is the flow stream's last sequence, the last one known
	// while the cluster does not answer (a leader election).
	var knownSeq uint64
	lastSeq := func() uint64 {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if info, err := s.Info(sctx); err == nil {
			knownSeq = max(knownSeq, info.State.LastSeq)
		}
		return knownSeq
	}
	// Events, each once the flow stream has grown during its round:
	// round 1 kills w2, round 2 the NATS node leading the flow stream,
	// round 4 restarts both, round 5 adds w4.
	var killedNode *natsNode
	var seqAtNodeKill, seqAtNodeRestart uint64
	events := map[int]func(){
		1: func() {
			workers["w2"].kill(t)
			t.Logf("w2 killed (SIGKILL), flow stream at %d", lastSeq())
		},
		2: func() {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := s.Info(sctx)
			cancel()
			if err != nil || info.Cluster == nil {
				t.Fatalf("flow stream info: %v", err)
			}
			for _, n := range nodes {
				if n.name == info.Cluster.Leader {
					killedNode = n
				}
			}
			if killedNode == nil {
				t.Fatalf("flow stream leader %q is none of the nodes", info.Cluster.Leader)
			}
			seqAtNodeKill = info.State.LastSeq
			killedNode.p.kill(t)
			t.Logf("NATS node %s (the flow stream's leader) killed (SIGKILL), flow stream at %d", killedNode.name, seqAtNodeKill)
		},
		4: func() {
			// The node stays down until records published after its
			// loss are in the stream (ingest retries through the
			// election of a new leader).
			for deadline := time.Now().Add(60 * time.Second); lastSeq() <= seqAtNodeKill && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			seqAtNodeRestart = lastSeq()
			killedNode.p = l.start("nats "+killedNode.name+" again", killedNode.name, natsBin, "-c", killedNode.conf)
			worker("w2")
			t.Logf("NATS node %s and w2 started again, flow stream at %d", killedNode.name, seqAtNodeRestart)
		},
		5: func() {
			worker("w4")
			t.Log("w4 started")
		},
	}
	total := 0
	for round, pcap := range pcaps {
		switch round {
		case 5: // w2 back: its share again
			waitShares(t, js, "w1", "w2", "w3")
		case 7: // w4 joined: the last round goes to four workers
			waitShares(t, js, "w1", "w2", "w3", "w4")
		}
		ev := events[round]
		done := make(chan struct{})
		if ev != nil {
			from := lastSeq()
			go func() {
				defer close(done)
				deadline := time.Now().Add(30 * time.Second)
				for lastSeq() <= from && time.Now().Before(deadline) {
					time.Sleep(2 * time.Millisecond)
				}
				ev()
			}()
		} else {
			close(done)
		}
		n, err := l.probeRound(probeBin, pcap, single, ingest, round)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		total += n
		t.Logf("round %d: %s, %d records", round, filepath.Base(pcap), n)
	}
	if seqAtNodeRestart <= seqAtNodeKill {
		t.Errorf("no record batch was published while NATS node %s was down (flow stream at %d, then %d)",
			killedNode.name, seqAtNodeKill, seqAtNodeRestart)
	}
	waitShares(t, js, "w1", "w2", "w3", "w4")
	// The restarted NATS node caught up with the flow stream.
	peertest.WaitUntil(t, 60*time.Second, "three current replicas of the flow stream", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := s.Info(sctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})

	sc.stop(t)
	want, err := reportJSON(t, miraBin, "--db", sdb)
	if err != nil {
		t.Fatal(err)
	}
	if want.Summary.Flows != total {
		t.Fatalf("single collector: %d records of %d exported", want.Summary.Flows, total)
	}
	paired := 0
	for _, b := range want.Biflows {
		if b.Packets > 0 && b.RPackets > 0 {
			paired++
		}
	}
	t.Logf("single collector: %d records, %d biflows (%d with both directions), %d packets, %d octets",
		total, want.Summary.Biflows, paired, want.Summary.Packets, want.Summary.Octets)

	var got *report.Report
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err = reportJSON(t, miraBin, "--nats", url)
		if err == nil && got.Summary.Flows >= total {
			break
		}
		if err == nil && got.Summary.Dropped > 0 {
			t.Fatalf("ingest nodes dropped %d records", got.Summary.Dropped)
		}
		if time.Now().After(deadline) {
			t.Fatalf("merged report: %v, %d of %d records", err, flows(got), total)
		}
		time.Sleep(250 * time.Millisecond)
	}
	same(t, got, want)
	// Again, saying how it was merged: some partitions (those that
	// stayed with one worker through the kill and the join) were
	// consolidated at the workers, and the report is still the same.
	got, stats, err := reportMergeStats(t, miraBin, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(stats)
	m := mergeStatsRE.FindStringSubmatch(stats)
	if m == nil {
		t.Fatalf("mira report --merge-stats said %q", stats)
	}
	if n, _ := strconv.Atoi(m[2]); n == 0 {
		t.Errorf("no biflow consolidated at a worker (%s)", stats)
	}
	same(t, got, want)
	// The table's form (the 50 largest biflows): the workers send their
	// usage rows and first biflows, the same report.
	top := []string{"--limit", "50", "--order", "bytes"}
	want50, err := reportJSON(t, miraBin, append([]string{"--db", sdb}, top...)...)
	if err != nil {
		t.Fatal(err)
	}
	got50, stats, err := reportMergeStats(t, miraBin, url, top...)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(stats)
	if !strings.Contains(stats, "parts as usage rows") || strings.Contains(stats, " 0 parts as usage rows") {
		t.Errorf("no worker part came as usage rows: %s", stats)
	}
	same(t, got50, want50)
	if len(got50.Biflows) != 50 || got50.Summary.Biflows != want.Summary.Biflows {
		t.Errorf("top 50: %d listed of %d biflows", len(got50.Biflows), got50.Summary.Biflows)
	}
	// From the workers' rollups (mira report --nats --bucket 1h --source
	// rollups): the single collector's rollup report's usage (when none
	// of its records reached its rollups late) and its record report's;
	// asked again, the workers answer from the rollups they kept.
	byCat := []string{"--by", "category", "--bucket", "1h"}
	wantRec, err := reportJSON(t, miraBin, append([]string{"--db", sdb}, byCat...)...)
	if err != nil {
		t.Fatal(err)
	}
	byCat = append(byCat, "--source", "rollups")
	wantRol, err := reportJSON(t, miraBin, append([]string{"--db", sdb}, byCat...)...)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		gotRol, stats, err := reportMergeStats(t, miraBin, url, byCat...)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(stats)
		if !strings.Contains(stats, "merged report from rollups") || (round == 1 && !strings.Contains(stats, " 0 rolled up for this report")) {
			t.Errorf("round %d: %s", round, stats)
		}
		gs, ws := gotRol.Summary, wantRec.Summary
		if gs.Rollup == nil || gs.Biflows != ws.Biflows || gs.Packets != ws.Packets || gs.Octets != ws.Octets || mustJSON(t, gotRol.Usage) != mustJSON(t, wantRec.Usage) {
			t.Errorf("rollups of the cluster: %d biflows %d packets %d octets %s\nsingle collector's records: %d %d %d %s",
				gs.Biflows, gs.Packets, gs.Octets, mustJSON(t, gotRol.Usage), ws.Biflows, ws.Packets, ws.Octets, mustJSON(t, wantRec.Usage))
		}
		if wantRol.Summary.Rollup.Late == 0 && mustJSON(t, gotRol.Usage) != mustJSON(t, wantRol.Usage) {
			t.Errorf("rollups of the cluster: %s\nsingle collector's rollups: %s", mustJSON(t, gotRol.Usage), mustJSON(t, wantRol.Usage))
		}
	}
	t.Logf("rollups: %d usage rows; the single collector's rollups counted %d late records", len(wantRec.Usage), wantRol.Summary.Rollup.Late)
	gotPaired := 0
	for _, b := range got.Biflows {
		if b.Packets > 0 && b.RPackets > 0 {
			gotPaired++
		}
	}
	if gotPaired != paired || paired == 0 {
		t.Errorf("merged report: %d biflows with both directions (each direction through a different ingest node), single collector %d", gotPaired, paired)
	}
	// How long the ingest nodes published batches again (the flow
	// stream's leader election as they saw it).
	for i, g := range ingestProcs {
		g.stop(t)
		if m := ingestStoppedRE.FindString(g.log.String()); m != "" {
			t.Logf("i%d: %s", i+1, m)
		}
	}
	for _, name := range []string{"w1", "w2", "w3", "w4"} {
		workers[name].stop(t)
		if m := storedRE.FindStringSubmatch(workers[name].log.String()); m != nil {
			t.Logf("%s stored %s records since its (re)start", name, m[1])
		}
	}
}

var storedRE = regexp.MustCompile(`worker stopped.* stored=(\d+)`)

var ingestStoppedRE = regexp.MustCompile(`ingest stopped.*`)

var mergeStatsRE = regexp.MustCompile(`(\d+) partitions consolidated at workers \((\d+) biflows;`)

// reportMergeStats runs mira report --nats URL --merge-stats [args]: the
// report and what it said on stderr of its merge.
func reportMergeStats(t *testing.T, mira, url string, args ...string) (*report.Report, string, error) {
	t.Helper()
	cmd := exec.Command(mira, append([]string{"report", "--format", "json", "--nats", url, "--merge-stats"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("mira report: %v\n%s", err, stderr.String())
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, "", fmt.Errorf("mira report: %v", err)
	}
	return &r, strings.TrimSpace(stderr.String()), nil
}

// waitShares waits until the partitions are leased to exactly names, in
// even shares (floor(32/n) or one more each).
func waitShares(t *testing.T, js jetstream.JetStream, names ...string) {
	t.Helper()
	ctx := context.Background()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	lo, hi := cluster.Partitions/len(names), (cluster.Partitions+len(names)-1)/len(names)
	var held map[string]int
	peertest.WaitUntil(t, 60*time.Second, fmt.Sprintf("partitions leased evenly to %v", names), func() bool {
		held = map[string]int{}
		kctx, cancel := context.WithTimeout(ctx, time.Second)
		kv, err := js.KeyValue(kctx, cluster.LeaseBucket)
		cancel()
		if err != nil {
			return false // no worker has set the cluster up yet
		}
		for p := 0; p < cluster.Partitions; p++ {
			gctx, cancel := context.WithTimeout(ctx, time.Second)
			e, err := kv.Get(gctx, "p."+strconv.Itoa(p))
			cancel()
			if err != nil || !want[string(e.Value())] {
				return false
			}
			held[string(e.Value())]++
		}
		for _, n := range names {
			if held[n] < lo || held[n] > hi {
				return false
			}
		}
		return true
	})
	t.Logf("partitions per worker: %v", held)
}

// waitListening waits until something accepts TCP connections at addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	peertest.WaitUntil(t, 30*time.Second, "a listener at "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
