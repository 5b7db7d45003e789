package image_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/gosnmp/gosnmp"

	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/image"
	"github.com/mira-project/mira/mib"
	"github.com/mira-project/mira/tools/peertest"
)

// The boot contract of issue 11, kept exactly; tests add a monitor socket.
func qemuArgs(img string, ovmf bool, snmpPort, feedPort, qemuPort int, monitor string, fwd tcpFwd) []string {
	args := []string{"-accel", "tcg", "-m", "1024", "-smp", "1", "-nographic", "-no-reboot"}
	if ovmf {
		args = append(args, "-bios", ovmfPath)
	}
	return append(args,
		"-drive", "file="+img+",format=raw,if=virtio",
		"-nic", fmt.Sprintf("user,model=virtio-net-pci,hostfwd=udp:127.0.0.1:%d-:161", snmpPort)+fwd.String(),
		"-nic", fmt.Sprintf("socket,model=virtio-net-pci,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d", feedPort, qemuPort),
		"-monitor", "unix:"+monitor+",server=on,wait=off")
}

// tcpFwd forwards host TCP ports to the guest's update endpoint (8443)
// and web UI (8080), for the tests that use them; the boot contract has
// no such ports.
type tcpFwd struct{ update, web int }

func (f tcpFwd) String() string {
	s := ""
	if f.update != 0 {
		s += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:8443", f.update)
	}
	if f.web != 0 {
		s += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:8080", f.web)
	}
	return s
}

const ovmfPath = "/usr/share/ovmf/OVMF.fd"

// hostBins builds mira, mira-probe and mira-collector for the host.
func hostBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/mira-project/mira/cmd/mira", "github.com/mira-project/mira/cmd/mira-probe", "github.com/mira-project/mira/cmd/mira-collector")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

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

// console is the guest's serial console; it notes when mira-init
// reported the capture port up.
type console struct {
	lockedBuffer
	mu sync.Mutex
	up time.Time
}

func (c *console) Write(p []byte) (int, error) {
	n, err := c.lockedBuffer.Write(p)
	c.mu.Lock()
	if c.up.IsZero() && strings.Contains(c.lockedBuffer.String(), "capture eth1: up") {
		c.up = time.Now()
	}
	c.mu.Unlock()
	return n, err
}

func (c *console) upAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func poll(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last state: %s)", d, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// collector is a host mira-collector on 127.0.0.1.
type collector struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	db      string
	port    int
	metrics string
	done    chan error
}

var listeningRE = regexp.MustCompile(`msg=listening url=udp://\S+ addr=127\.0\.0\.1:(\d+)`)

func startCollector(t *testing.T, bins string) *collector {
	t.Helper()
	c := &collector{stderr: &lockedBuffer{}, db: filepath.Join(t.TempDir(), "flows.db"), done: make(chan error, 1)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.metrics = l.Addr().String()
	l.Close()
	c.cmd = exec.Command(filepath.Join(bins, "mira-collector"), "--listen", "udp://127.0.0.1:0", "--db", c.db, "--metrics", c.metrics)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { c.cmd.Process.Kill() })
	poll(t, 20*time.Second, "mira-collector to listen", func() (bool, string) {
		m := listeningRE.FindStringSubmatch(c.stderr.String())
		if m == nil {
			return false, c.stderr.String()
		}
		c.port, _ = strconv.Atoi(m[1])
		_, err := c.metric("mira_collector_stored_records_total")
		return err == nil, fmt.Sprint(err)
	})
	return c
}

func (c *collector) metric(name string) (float64, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, sc.Err()
}

// stop ends the collector and returns the flows in its store.
func (c *collector) stop(t *testing.T, bins string) []flow {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("mira-collector did not stop:\n%s", c.stderr.String())
	}
	out, err := exec.Command(filepath.Join(bins, "mira"), "flows", "--db", c.db, "--format", "json").Output()
	if err != nil {
		t.Fatalf("mira flows: %v", err)
	}
	fs, err := parseFlows(out)
	if err != nil {
		t.Fatalf("mira flows: %v", err)
	}
	return fs
}

// parseFlows reads the flows of `mira flows --format json` (and of the
// HTTP API's /api/flows?format=json).
func parseFlows(out []byte) ([]flow, error) {
	var l struct {
		Flows []struct {
			Src     netip.Addr `json:"src"`
			Dst     netip.Addr `json:"dst"`
			Sport   uint16     `json:"sport"`
			Dport   uint16     `json:"dport"`
			Proto   uint8      `json:"proto"`
			VLAN    uint16     `json:"vlan"`
			Packets uint64     `json:"packets"`
			Octets  uint64     `json:"octets"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	var fs []flow
	for _, f := range l.Flows {
		fs = append(fs, flow{f.Src, f.Dst, f.Sport, f.Dport, f.Proto, f.VLAN, f.Packets, f.Octets})
	}
	return fs, nil
}

// flow is what the test compares: the key, packets and octets (the
// times differ: the guest meters arrival times, -r the capture's).
type flow struct {
	Src, Dst        netip.Addr
	Sport, Dport    uint16
	Proto           uint8
	VLAN            uint16
	Packets, Octets uint64
}

func (f flow) String() string {
	return fmt.Sprintf("%s:%d > %s:%d proto %d vlan %d: %d packets %d octets", f.Src, f.Sport, f.Dst, f.Dport, f.Proto, f.VLAN, f.Packets, f.Octets)
}

func sameFlows(t *testing.T, got, want []flow) {
	t.Helper()
	cmp := func(a, b flow) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if slices.Equal(got, want) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the appliance exported %d flows, mira-probe -r %d:\n", len(got), len(want))
	for _, f := range got {
		if !slices.Contains(want, f) {
			fmt.Fprintf(&b, "  only from the appliance: %v\n", f)
		}
	}
	for _, f := range want {
		if !slices.Contains(got, f) {
			fmt.Fprintf(&b, "  only from mira-probe -r: %v\n", f)
		}
	}
	t.Fatal(b.String())
}

// reference runs mira-probe -r on the capture with the meter settings of
// cfg and returns the flows a collector stored.
func reference(t *testing.T, bins, capture, meter string) []flow {
	t.Helper()
	c := startCollector(t, bins)
	cfg := filepath.Join(t.TempDir(), "ref.yaml")
	if err := os.WriteFile(cfg, []byte(meter), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bins, "mira-probe"), "--config", cfg, "-r", capture,
		"--export", fmt.Sprintf("udp://127.0.0.1:%d", c.port)).CombinedOutput()
	if err != nil {
		t.Fatalf("mira-probe -r: %v\n%s", err, out)
	}
	return c.stop(t, bins)
}

// guest is one QEMU run of the image.
type guest struct {
	mu       sync.Mutex
	sent     []sent
	loggedFW bool
	cmd      *exec.Cmd
	console  *console
	start    time.Time
	done     chan error
	monitor  string
	snmpPort int
	feed     *net.UDPConn
}

func bootUpdatable(t *testing.T, img string, ovmf bool, updatePort int) *guest {
	return bootFwd(t, img, ovmf, tcpFwd{update: updatePort})
}

func bootFwd(t *testing.T, img string, ovmf bool, fwd tcpFwd) *guest {
	t.Helper()
	g := &guest{console: &console{}, done: make(chan error, 1), snmpPort: freeUDPPort(t)}
	feedPort, qemuPort := freeUDPPort(t), freeUDPPort(t)
	g.monitor = filepath.Join(t.TempDir(), "monitor.sock")
	var err error
	g.feed, err = net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: feedPort}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: qemuPort})
	if err != nil {
		t.Fatal(err)
	}
	// The guest's own frames on eth1 come back to the feed socket.
	t.Cleanup(func() { g.feed.Close() })
	go g.readFeed()
	g.cmd = exec.Command("qemu-system-x86_64", qemuArgs(img, ovmf, g.snmpPort, feedPort, qemuPort, g.monitor, fwd)...)
	g.cmd.Stdout, g.cmd.Stderr = g.console, g.console
	g.start = time.Now()
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("guest console:\n%s", g.console.String())
		}
	})
	return g
}

func (g *guest) snmp() *gosnmp.GoSNMP {
	return &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(g.snmpPort), Community: "public", Version: gosnmp.Version2c,
		Timeout: 2 * time.Second, Retries: 0}
}

// waitSNMP waits for sysDescr and returns it.
func (g *guest) waitSNMP(t *testing.T) string {
	t.Helper()
	var descr string
	poll(t, 180*time.Second, "an SNMP answer from the guest", func() (bool, string) {
		select {
		case err := <-g.done:
			t.Fatalf("QEMU exited: %v", err)
		default:
		}
		s := g.snmp()
		if err := s.Connect(); err != nil {
			return false, err.Error()
		}
		defer s.Conn.Close()
		r, err := s.Get([]string{"1.3.6.1.2.1.1.1.0"})
		if err != nil {
			return false, err.Error()
		}
		if len(r.Variables) != 1 {
			return false, "no variables"
		}
		b, _ := r.Variables[0].Value.([]byte)
		descr = string(b)
		return true, ""
	})
	return descr
}

// capPackets sums the miraCapPackets column.
func (g *guest) capPackets() (uint64, error) {
	s := g.snmp()
	if err := s.Connect(); err != nil {
		return 0, err
	}
	defer s.Conn.Close()
	var sum uint64
	err := s.Walk(mib.MiraCapPackets, func(v gosnmp.SnmpPDU) error {
		sum += gosnmp.ToBigInt(v.Value).Uint64()
		return nil
	})
	return sum, err
}

// engineBoots learns snmpEngineBoots from USM discovery with the test's v3 user.
func (g *guest) engineBoots(t *testing.T) uint32 {
	t.Helper()
	s := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(g.snmpPort), Version: gosnmp.Version3, Timeout: 3 * time.Second, Retries: 1,
		SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthNoPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: "mon", AuthenticationProtocol: gosnmp.SHA, AuthenticationPassphrase: "monitor-pass"}}
	if err := s.Connect(); err != nil {
		t.Fatal(err)
	}
	defer s.Conn.Close()
	if _, err := s.Get([]string{"1.3.6.1.2.1.1.1.0"}); err != nil {
		t.Fatalf("SNMPv3 get: %v", err)
	}
	return s.SecurityParameters.(*gosnmp.UsmSecurityParameters).AuthoritativeEngineBoots
}

// replay sends every frame of the capture as one datagram into eth1 and
// returns how many it sent.
func (g *guest) replay(t *testing.T, capture string) uint64 {
	t.Helper()
	r, err := pcapfile.Open(capture)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n uint64
	for {
		data, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.feed.Write(data); err != nil {
			t.Fatal(err)
		}
		n++
		time.Sleep(5 * time.Millisecond) // pacing, so a TCG guest keeps up; not a synchronisation
	}
	return n
}

func (g *guest) command(t *testing.T, cmd string) {
	t.Helper()
	c, err := net.Dial("unix", g.monitor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		t.Fatal(err)
	}
	// Wait for the monitor to echo the command before closing.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for !strings.Contains(buf.String(), cmd) {
		n, err := c.Read(b)
		buf.Write(b[:n])
		if err != nil {
			t.Fatalf("monitor %s: %v (%q)", cmd, err, buf.String())
		}
	}
}

func (g *guest) waitExit(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-g.done:
	case <-time.After(d):
		t.Fatalf("QEMU still running after %v", d)
	}
}

// sent is a frame the guest sent on its capture port, with when the host got it.
type sent struct {
	at   time.Time
	data []byte
}

// readFeed collects what the guest sends on its capture port.
func (g *guest) readFeed() {
	b := make([]byte, 65536)
	for {
		n, err := g.feed.Read(b)
		if err != nil {
			return
		}
		g.mu.Lock()
		g.sent = append(g.sent, sent{time.Now(), append([]byte(nil), b[:n]...)})
		g.mu.Unlock()
	}
}

// silent checks that the guest sent nothing on its capture port after
// mira-init brought it up. Frames before that come from the firmware:
// OVMF's own IPv6 stack sends an MLDv1 report and a DAD neighbour
// solicitation on every NIC it connects; they are logged.
func (g *guest) silent(t *testing.T) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // lets a frame in flight on loopback arrive; the check is on what arrived
	upAt := g.console.upAt()
	if upAt.IsZero() {
		t.Fatal("the console never showed mira-init bringing the capture port up")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	firmware := 0
	for _, f := range g.sent {
		if f.at.Before(upAt) {
			firmware++
			continue
		}
		t.Fatalf("the capture port sent a frame %.1f s after mira-init brought it up (%d bytes): % x",
			f.at.Sub(upAt).Seconds(), len(f.data), f.data[:min(len(f.data), 64)])
	}
	if firmware > 0 && !g.loggedFW {
		g.loggedFW = true
		t.Logf("%d frames on the capture port before the OS brought it up (firmware)", firmware)
	}
}

func requireTools(t *testing.T) {
	t.Helper()
	for _, p := range []string{"qemu-system-x86_64", "syslinux", "mcopy", "go"} {
		peertest.Program(t, p)
	}
	peertest.File(t, ovmfPath, "OVMF (Debian package ovmf)")
	peertest.File(t, image.DefaultGPTMBR, "gptmbr.bin (Debian package syslinux)")
	peertest.File(t, image.DefaultSDBootEFI, "systemd-boot (Debian package systemd-boot-efi)")
}

const meterYAML = "meter: {idle_timeout: 5s, tcp_end_timeout: 2s}\n"

// TestApplianceBoots boots one all-in-one (--collector) image, written to
// a 1 GiB disk, twice: with SeaBIOS (the data partition grows over the
// disk and becomes ext4; replays a real capture, compares the flows at a
// host collector and at the box's own collector, through its HTTP API,
// and SNMP counters), then, after a reset and an edit of mira/probe.yaml
// with mtools, with OVMF (new config in effect, snmpEngineBoots
// incremented, the box's store survived the reset, pending flows exported
// on the ACPI power button, the data file system clean for e2fsck).
func TestApplianceBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU twice under TCG (minutes)")
	}
	requireTools(t)
	capture1 := peertest.CorpusFile(t, "pcaps", "zeek", "ftp__retr.pcap")
	capture2 := peertest.CorpusFile(t, "pcaps", "ndpi", "exe_download.pcap")
	bins := hostBins(t)
	ctx := context.Background()
	tmp := t.TempDir()

	coll := startCollector(t, bins)
	probeYAML := fmt.Sprintf(`capture: {interfaces: [eth1]}
meter: {idle_timeout: 5s, tcp_end_timeout: 2s}
export: [{url: "udp://10.0.2.2:%d"}, {url: "udp://127.0.0.1:4739"}]
snmp_listen: 0.0.0.0:161
snmp:
  communities: [{name: public, sources: [10.0.2.0/24, 127.0.0.0/8]}]
  users: [{name: mon, auth: SHA, auth_password: monitor-pass}]
`, coll.port)
	img := filepath.Join(tmp, "mira.img")
	buildStart := time.Now()
	// Remote syslog to the host.
	syslogConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer syslogConn.Close()
	systemYAML := fmt.Sprintf("ntp: []\nsyslog: 10.0.2.2:%d\n", syslogConn.LocalAddr().(*net.UDPAddr).Port)
	collectorYAML := []byte("listen: [udp://:4739]\ndb: /data/collector/mira.db\nhttp: 0.0.0.0:8080\nweb: {user: mira, password: " + webPassword + "}\n")
	if err := image.Build(ctx, image.Options{Output: img, ProbeYAML: []byte(probeYAML), SystemYAML: []byte(systemYAML),
		Collector: true, CollectorYAML: collectorYAML, Log: testWriter{t}}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image: %d bytes (%.1f MiB), built in %s", fi.Size(), float64(fi.Size())/(1<<20), time.Since(buildStart).Round(time.Second))
	if fi.Size() > 128<<20 {
		t.Errorf("image is %d bytes, over 128 MiB", fi.Size())
	}
	// As if written to a 1 GiB disk: room after the data partition, the
	// backup GPT in the middle.
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}

	// Boot 1: SeaBIOS.
	web := freeTCPPort(t)
	g := bootFwd(t, img, false, tcpFwd{web: web})
	descr := g.waitSNMP(t)
	t.Logf("SeaBIOS: first SNMP answer %.1f s after QEMU started (sysDescr %q)", time.Since(g.start).Seconds(), descr)
	g.silent(t)
	syslogConn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := syslogConn.ReadFrom(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "mira-init") {
		t.Fatalf("remote syslog: %q %v", buf[:n], err)
	}
	t.Logf("remote syslog: %q", buf[:n])
	if !strings.Contains(string(buf[:n]), " mira-123456 ") {
		t.Errorf("syslog hostname: want mira- and the end of the management MAC (52:54:00:12:34:56)")
	}
	boots1 := g.engineBoots(t)
	sent := g.replay(t, capture1)
	poll(t, 60*time.Second, fmt.Sprintf("miraCapPackets = %d", sent), func() (bool, string) {
		n, err := g.capPackets()
		if n > sent {
			t.Fatalf("miraCapPackets = %d, more than the %d frames sent", n, sent)
		}
		return err == nil && n == sent, fmt.Sprint(n, err)
	})
	want := reference(t, bins, capture1, meterYAML)
	first := false
	poll(t, 60*time.Second, fmt.Sprintf("%d records at the host collector", len(want)), func() (bool, string) {
		n, err := coll.metric("mira_collector_stored_records_total")
		if n > 0 && !first {
			first = true
			t.Logf("SeaBIOS: first exported record at the host %.1f s after QEMU started (the replay began after the first SNMP answer; TCP end timeout 2 s)", time.Since(g.start).Seconds())
		}
		return n >= float64(len(want)), fmt.Sprint(n, err)
	})
	g.silent(t)
	if n, _ := g.capPackets(); n != sent {
		t.Fatalf("miraCapPackets = %d after the flows were exported, want %d", n, sent)
	}
	got := coll.stop(t, bins)
	sameFlows(t, got, want)
	for _, l := range []string{"data partition vda4 grown from 34 to 934 MiB", "ext4 of 896 MiB made"} {
		if !strings.Contains(g.console.String(), l) {
			t.Errorf("the console does not say %q", l)
		}
	}
	// The box's own collector stored the same flows; its HTTP API
	// (what mira report and the web UI read) lists them.
	var boxFlows []flow
	poll(t, 60*time.Second, fmt.Sprintf("%d flows at the box's collector", len(want)), func() (bool, string) {
		b, err := apiGet(web, "/api/flows?format=json")
		if err != nil {
			return false, err.Error()
		}
		boxFlows, err = parseFlows(b)
		return err == nil && len(boxFlows) >= len(want), fmt.Sprint(len(boxFlows), err)
	})
	sameFlows(t, boxFlows, want)
	rep, err := apiGet(web, "/api/report?format=json")
	var summary struct {
		Summary struct {
			Flows   int    `json:"flows"`
			Packets uint64 `json:"packets"`
		} `json:"summary"`
	}
	if err == nil {
		err = json.Unmarshal(rep, &summary)
	}
	var pkts uint64
	for _, f := range want {
		pkts += f.Packets
	}
	if err != nil || summary.Summary.Flows != len(want) || summary.Summary.Packets != pkts {
		t.Errorf("the box's /api/report: %+v (want %d flows, %d packets) %v\n%s", summary, len(want), pkts, err, rep)
	}
	t.Logf("the box's collector stored the %d flows; its /api/report counts %d flows, %d packets", len(boxFlows), summary.Summary.Flows, summary.Summary.Packets)
	if _, err := apiGetAuth(web, "/api/flows", "mira", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("the box's API with a wrong password: %v", err)
	}

	// Reset (with -no-reboot QEMU exits: a power cycle without shutdown).
	g.command(t, "system_reset")
	g.waitExit(t, 60*time.Second)

	// Edit mira/probe.yaml on the boot partition with mtools: long
	// timeouts (flows stay pending until the power button) and a new
	// sysDescr to see the configuration in effect.
	coll2 := startCollector(t, bins)
	edited := fmt.Sprintf(`capture: {interfaces: [eth1]}
meter: {idle_timeout: 10m, active_timeout: 10m, tcp_end_timeout: 10m}
export: [{url: "udp://10.0.2.2:%d"}, {url: "udp://127.0.0.1:4739"}]
snmp_listen: 0.0.0.0:161
snmp:
  sys_descr: edited with mtools
  communities: [{name: public, sources: [10.0.2.0/24, 127.0.0.0/8]}]
  users: [{name: mon, auth: SHA, auth_password: monitor-pass}]
`, coll2.port)
	ef := filepath.Join(tmp, "probe.yaml")
	if err := os.WriteFile(ef, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-o", "-i", img+"@@1M", ef, "::mira/probe.yaml").CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}

	// Boot 2: OVMF.
	g = bootFwd(t, img, true, tcpFwd{web: web})
	descr = g.waitSNMP(t)
	t.Logf("OVMF: first SNMP answer %.1f s after QEMU started", time.Since(g.start).Seconds())
	g.silent(t)
	if descr != "edited with mtools" {
		t.Errorf("sysDescr after editing mira/probe.yaml = %q", descr)
	}
	if boots2 := g.engineBoots(t); boots2 != boots1+1 {
		t.Errorf("snmpEngineBoots %d after a reboot, was %d", boots2, boots1)
	} else {
		t.Logf("snmpEngineBoots %d -> %d", boots1, boots2)
	}
	// The store on the ext4 data partition survived the reset.
	poll(t, 60*time.Second, "the box's flows of the first boot after the reset", func() (bool, string) {
		b, err := apiGet(web, "/api/flows?format=json")
		if err != nil {
			return false, err.Error()
		}
		fs, err := parseFlows(b)
		if err == nil && len(fs) > 0 {
			sameFlows(t, fs, boxFlows)
		}
		return err == nil && len(fs) > 0, fmt.Sprint(len(fs), err)
	})
	if strings.Contains(g.console.String(), "grown") || strings.Contains(g.console.String(), "made in") {
		t.Error("the data partition was grown or made again on the second boot")
	}
	sent = g.replay(t, capture2)
	poll(t, 60*time.Second, fmt.Sprintf("miraCapPackets = %d", sent), func() (bool, string) {
		n, err := g.capPackets()
		return err == nil && n == sent, fmt.Sprint(n, err)
	})
	if n, err := coll2.metric("mira_collector_stored_records_total"); err != nil || n != 0 {
		t.Fatalf("records before the power button: %v %v (the flows should be pending)", n, err)
	}
	g.command(t, "system_powerdown")
	g.waitExit(t, 120*time.Second)
	g.silent(t)
	if !strings.Contains(g.console.String(), "power button pressed") {
		t.Errorf("the guest did not see the power button")
	}
	want = reference(t, bins, capture2, meterYAML)
	poll(t, 10*time.Second, "the flows exported at power-off", func() (bool, string) {
		n, err := coll2.metric("mira_collector_stored_records_total")
		return n >= float64(len(want)), fmt.Sprint(n, err)
	})
	sameFlows(t, coll2.stop(t, bins), want)
	fsck(t, img)
}

const webPassword = "test-web-password"

func apiGet(port int, path string) ([]byte, error) {
	return apiGetAuth(port, path, "mira", webPassword)
}

func apiGetAuth(port int, path, user, password string) ([]byte, error) {
	req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(user, password)
	cl := http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return b, nil
}

// fsck copies the data partition out of the image (sparse) and runs
// e2fsck -fn on it.
func fsck(t *testing.T, img string) {
	t.Helper()
	e2fsck := peertest.Program(t, "e2fsck")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, start, end, err := image.PartitionEnd(f, image.DataLabel)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "data.img")
	out, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(end-start+1) * 512
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, int64(start)*512+off)
		if n == 0 {
			t.Fatalf("reading the data partition: %v", err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				t.Fatal(err)
			}
		}
	}
	out.Truncate(size)
	out.Close()
	b, err := exec.Command(e2fsck, "-fn", part).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn of the data partition after power-off: %v\n%s", err, b)
	}
	t.Logf("e2fsck -fn of the data partition: %s", strings.TrimSpace(string(b[bytes.LastIndexByte(bytes.TrimSpace(b), '\n')+1:])))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
