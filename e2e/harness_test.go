package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
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

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bin returns the path of one of the MIRA binaries, building all three
// once per test binary run.
func bin(t testing.TB, name string) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		binDir, binErr = os.MkdirTemp("", "mira-e2e-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command(goTool, "build", "-o", binDir+string(os.PathSeparator),
			"./cmd/mira", "./cmd/mira-probe", "./cmd/mira-collector")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, name)
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a peer or MIRA process started by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error
}

// start starts a long-running process; the test's cleanup kills it if it
// is still running.
func start(t testing.TB, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(path), cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.Env = append(os.Environ(), "TZ=UTC")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit by itself and fails the test if it
// does not within d or exits with an error.
func (p *proc) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %v\nstderr:\n%s", p.name, d, p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", p.name, p.err, p.stderr.String())
	}
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *proc) terminate(t testing.TB, d time.Duration) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited before SIGTERM: %v\nstderr:\n%s", p.name, p.err, p.stderr.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	p.wait(t, d)
}

// run runs a command to completion and returns its standard output.
func run(t testing.TB, path string, args ...string) []byte {
	t.Helper()
	out, _ := runErr(t, path, args...)
	return out
}

// runErr is run that also returns standard error.
func runErr(t testing.TB, path string, args ...string) (stdout []byte, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", filepath.Base(path), strings.Join(args, " "), err, se.String())
	}
	return so.Bytes(), se.String()
}

// poll calls cond until it returns true or d passes, then fails the test
// with what cond last described.
func poll(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	delay := 2 * time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last state: %s)", d, what, state)
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// freePort returns a port that was free on 127.0.0.1 for network ("udp"
// or "tcp") a moment ago; peers that cannot bind port 0 need one.
func freePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// waitUDPDrained waits until the receiver of UDP port has read every
// datagram queued to it, and fails if the kernel dropped any.
func waitUDPDrained(t testing.TB, port int) {
	t.Helper()
	poll(t, 20*time.Second, fmt.Sprintf("udp port %d receive queue to drain", port), func() (bool, string) {
		// /proc/net/udp is read in chunks while other tests open and
		// close sockets, so a line can be missed once: a socket not
		// found is looked for again until the deadline.
		q, ok := peertest.UDPQueue(port)
		if !ok {
			return false, "no socket bound"
		}
		return q == 0, fmt.Sprintf("rx_queue %d bytes", q)
	})
	if d, _ := peertest.UDPDrops(port); d != 0 {
		t.Fatalf("udp port %d: the kernel dropped %d datagrams (receiver too slow)", port, d)
	}
}

// uniflow is one unidirectional flow as the tests compare them: times in
// milliseconds, ICMP type and code folded into Dport as type<<8|code.
type uniflow struct {
	flow.Key
	Packets     uint64
	Octets      uint64
	First, Last int64 // ms since the epoch
}

func (f uniflow) String() string {
	return fmt.Sprintf("%s:%d > %s:%d proto %d vlan %d: %d packets %d octets %s..%s",
		f.Src, f.Sport, f.Dst, f.Dport, f.Proto, f.VLAN, f.Packets, f.Octets,
		time.UnixMilli(f.First).UTC().Format("15:04:05.000"), time.UnixMilli(f.Last).UTC().Format("15:04:05.000"))
}

func compareUniflows(a, b uniflow) int {
	if c := a.Key.Compare(b.Key); c != 0 {
		return c
	}
	switch {
	case a.First != b.First:
		return cmpInt(a.First, b.First)
	case a.Last != b.Last:
		return cmpInt(a.Last, b.Last)
	case a.Packets != b.Packets:
		return cmpInt(int64(a.Packets), int64(b.Packets))
	}
	return cmpInt(int64(a.Octets), int64(b.Octets))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sameFlows fails the test unless got and want hold the same flows.
func sameFlows(t testing.TB, gotName string, got []uniflow, wantName string, want []uniflow) {
	t.Helper()
	slices.SortFunc(got, compareUniflows)
	slices.SortFunc(want, compareUniflows)
	if slices.Equal(got, want) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d flows, %s has %d; differences:\n", gotName, len(got), wantName, len(want))
	i, j, shown := 0, 0, 0
	for (i < len(got) || j < len(want)) && shown < 20 {
		switch {
		case j >= len(want) || (i < len(got) && compareUniflows(got[i], want[j]) < 0):
			fmt.Fprintf(&b, "  only in %s: %v\n", gotName, got[i])
			i++
			shown++
		case i >= len(got) || compareUniflows(got[i], want[j]) > 0:
			fmt.Fprintf(&b, "  only in %s: %v\n", wantName, want[j])
			j++
			shown++
		default:
			i++
			j++
		}
	}
	t.Fatal(b.String())
}

// nfdumpUniflows converts what nfdump showed (peertest.Nfcapd.Records)
// into uniflows.
func nfdumpUniflows(t testing.TB, recs []peertest.NfdumpRecord) []uniflow {
	t.Helper()
	ms := func(s string) int64 {
		ns, err := peertest.NfdumpTime(s)
		if err != nil {
			t.Fatal(err)
		}
		return ns / int64(time.Millisecond)
	}
	var fs []uniflow
	for _, r := range recs {
		src, dst, err := r.Endpoints()
		if err != nil {
			t.Fatalf("%v in %+v", err, r)
		}
		f := uniflow{Key: flow.Key{Src: src, Dst: dst, Proto: r.Proto, VLAN: r.SrcVLAN},
			Packets: r.InPackets, Octets: r.InBytes, First: ms(r.First), Last: ms(r.Last)}
		f.Sport, f.Dport = r.Ports()
		fs = append(fs, f)
	}
	return fs
}

// miraFlows is the part of `mira flows --format json` the tests read.
type miraFlows struct {
	Flows []struct {
		Src      netip.Addr `json:"src"`
		Dst      netip.Addr `json:"dst"`
		Sport    uint16     `json:"sport"`
		Dport    uint16     `json:"dport"`
		Proto    uint8      `json:"proto"`
		VLAN     uint16     `json:"vlan"`
		VPI      uint16     `json:"vpi"`
		VCI      uint16     `json:"vci"`
		Packets  uint64     `json:"packets"`
		Octets   uint64     `json:"octets"`
		First    time.Time  `json:"first"`
		Last     time.Time  `json:"last"`
		Exporter string     `json:"exporter"`
		// ScannedOctets is nil when the listing leaves it out.
		ScannedOctets *uint64 `json:"scanned_octets"`
	} `json:"flows"`
	Summary struct {
		Flows         int    `json:"flows"`
		Packets       uint64 `json:"packets"`
		Octets        uint64 `json:"octets"`
		ScannedOctets uint64 `json:"scanned_octets"`
	} `json:"summary"`
}

// storeFlows runs `mira flows --format json` on a stopped collector's
// store.
func storeFlows(t testing.TB, db string) ([]uniflow, miraFlows) {
	t.Helper()
	out := run(t, bin(t, "mira"), "flows", "--db", db, "--format", "json")
	var l miraFlows
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("mira flows --format json: %v\n%s", err, out)
	}
	var fs []uniflow
	for _, f := range l.Flows {
		fs = append(fs, uniflow{
			Key:     flow.Key{Src: f.Src, Dst: f.Dst, Sport: f.Sport, Dport: f.Dport, Proto: f.Proto, VLAN: f.VLAN},
			Packets: f.Packets, Octets: f.Octets, First: f.First.UnixMilli(), Last: f.Last.UnixMilli(),
		})
	}
	return fs, l
}

// reportJSON is the part of a report (`mira report` or `mira analyze`,
// --format json) the tests read.
type reportJSON struct {
	Biflows []report.Biflow `json:"biflows"`
	Summary struct {
		Flows        int               `json:"flows"`
		Biflows      int               `json:"biflows"`
		Packets      uint64            `json:"packets"`
		Octets       uint64            `json:"octets"`
		Messages     *uint64           `json:"messages"`
		Records      *uint64           `json:"records"`
		Lost         *uint64           `json:"lost"`
		Malformed    map[string]uint64 `json:"malformed"`
		DecodeErrors map[string]uint64 `json:"decode_errors"`
	} `json:"summary"`
}

func parseReport(t testing.TB, what string, out []byte) reportJSON {
	t.Helper()
	var r reportJSON
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	return r
}

// collectorProc is a running mira-collector.
type collectorProc struct {
	p       *proc
	db      string
	udp     string // host:port, when listening on UDP
	tcp     string
	metrics string // host:port of /metrics
}

var listeningRE = regexp.MustCompile(`msg=listening url=(udp|tcp)://\S+ addr=(\S+)`)

// startCollector starts mira-collector on ephemeral ports (read back from
// its "listening" log lines) with /metrics.
func startCollector(t testing.TB, udp, tcp bool) *collectorProc {
	t.Helper()
	c := &collectorProc{db: filepath.Join(t.TempDir(), "flows.db")}
	c.metrics = fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	args := []string{"--db", c.db, "--metrics", c.metrics, "--log-level", "info"}
	want := 0
	if udp {
		args = append(args, "--listen", "udp://127.0.0.1:0")
		want++
	}
	if tcp {
		args = append(args, "--listen", "tcp://127.0.0.1:0")
		want++
	}
	c.p = start(t, bin(t, "mira-collector"), args...)
	poll(t, 10*time.Second, "mira-collector to listen", func() (bool, string) {
		if c.p.exited() {
			t.Fatalf("mira-collector exited: %v\nstderr:\n%s", c.p.err, c.p.stderr.String())
		}
		m := listeningRE.FindAllStringSubmatch(c.p.stderr.String(), -1)
		for _, x := range m {
			if x[1] == "udp" {
				c.udp = x[2]
			} else {
				c.tcp = x[2]
			}
		}
		if len(m) < want {
			return false, fmt.Sprintf("%d of %d listeners", len(m), want)
		}
		_, err := c.scrape()
		return err == nil, fmt.Sprint("metrics: ", err)
	})
	return c
}

// startCollectorIn starts mira-collector inside network namespace ns,
// storing to db and listening on TCP on an ephemeral port (read back from
// its "listening" log line); it returns the process and that host:port.
// ip netns exec execs the program: signals reach it directly.
func startCollectorIn(t testing.TB, ns, db string) (*proc, string) {
	t.Helper()
	coll := start(t, "ip", "netns", "exec", ns, bin(t, "mira-collector"), "--listen", "tcp://127.0.0.1:0", "--db", db, "--log-level", "info")
	var addr string
	poll(t, 10*time.Second, "mira-collector to listen", func() (bool, string) {
		if coll.exited() {
			t.Fatalf("mira-collector exited: %v\n%s", coll.err, coll.stderr.String())
		}
		m := listeningRE.FindStringSubmatch(coll.stderr.String())
		if m == nil {
			return false, coll.stderr.String()
		}
		addr = m[2]
		return true, ""
	})
	return coll, addr
}

func (c *collectorProc) udpPort() int {
	ap, _ := netip.ParseAddrPort(c.udp)
	return int(ap.Port())
}

// scrape reads /metrics into a map keyed by the sample's name and labels
// as printed (`mira_collector_malformed_total{reason="field-count"}`).
func (c *collectorProc) scrape() (map[string]float64, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// waitMetric waits until the collector's metric reaches want.
func (c *collectorProc) waitMetric(t testing.TB, name string, want uint64) {
	t.Helper()
	poll(t, 20*time.Second, fmt.Sprintf("%s = %d", name, want), func() (bool, string) {
		if c.p.exited() {
			t.Fatalf("mira-collector exited: %v\nstderr:\n%s", c.p.err, c.p.stderr.String())
		}
		m, err := c.scrape()
		if err != nil {
			return false, err.Error()
		}
		if got := uint64(m[name]); got > want {
			t.Fatalf("%s = %d, want %d", name, got, want)
		}
		return uint64(m[name]) == want, fmt.Sprintf("%s = %v", name, m[name])
	})
}

// probeResult is what mira-probe reported when it finished.
type probeResult struct {
	packets, flows, records uint64
}

var captureEndedRE = regexp.MustCompile(`msg="capture ended" packets=(\d+) flows=(\d+) records=(\d+)`)

// runProbe runs mira-probe to completion and returns its final counts.
func runProbe(t testing.TB, args ...string) probeResult {
	t.Helper()
	_, stderr := runErr(t, bin(t, "mira-probe"), append([]string{"--log-level", "info"}, args...)...)
	m := captureEndedRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("mira-probe printed no \"capture ended\" line:\n%s", stderr)
	}
	var r probeResult
	r.packets, _ = strconv.ParseUint(m[1], 10, 64)
	r.flows, _ = strconv.ParseUint(m[2], 10, 64)
	r.records, _ = strconv.ParseUint(m[3], 10, 64)
	if strings.Contains(stderr, "export failed") {
		t.Fatalf("mira-probe could not export:\n%s", stderr)
	}
	return r
}

// synthPcap writes `mira synth` output (the default sample) into dir.
func synthPcap(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, "synth.pcap")
	run(t, bin(t, "mira"), append([]string{"synth", "-o", out}, args...)...)
	return out
}

// pcapPackets counts the complete packet records of a classic pcap file
// that may still be being written.
func pcapPackets(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) < 24 {
		return 0, nil
	}
	var order binary.ByteOrder
	switch hex.EncodeToString(b[:4]) {
	case "d4c3b2a1", "4d3cb2a1":
		order = binary.LittleEndian
	case "a1b2c3d4", "a1b23c4d":
		order = binary.BigEndian
	default:
		return 0, fmt.Errorf("%s: not a classic pcap file", path)
	}
	n := 0
	for off := 24; off+16 <= len(b); n++ {
		l := int(order.Uint32(b[off+8:]))
		if off+16+l > len(b) {
			break
		}
		off += 16 + l
	}
	return n, nil
}

// writeStream copies r into a new file at path until EOF.
func writeStream(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
