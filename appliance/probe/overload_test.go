package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/mib"
	"github.com/mira-project/mira/synth"
	"github.com/mira-project/mira/tools/peertest"
)

// TestOverloadNotification replays a synthetic trace far faster than one
// worker can meter it (mira-probe -r FILE --speed N) and checks that a
// real snmptrapd receives the probe's miraOverloadEntered notification
// with the regulation state and rate, and that the pipeline counted the
// overload it announced.
//
// The replay goes on (the trace again, later by its span each pass)
// until the notification has arrived: one pass of the trace lasts some
// milliseconds, and on a loaded machine (a busy loop on the test's core)
// it ended, 3 times in 20, before the regulator, which steps at most
// once per 20 ms, had gone past shedding (no overload, no notification),
// or the agent's watcher had polled the new state before the probe
// stopped it.
func TestOverloadNotification(t *testing.T) {
	peertest.Program(t, "snmptrapd")
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	f, err := os.Create(trace)
	if err != nil {
		t.Fatal(err)
	}
	sc := synth.Large()
	sc.Flows = 30000
	sc.Duration = 30 * time.Second
	sc.LongDuration = 28 * time.Second
	if _, err := synth.WritePcap(sc, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	trapAddr, waitLine := startTrapd(t, dir)

	cfg, err := config.ParseProbe("test.yaml", []byte(fmt.Sprintf(`probe: {name: overload-test}
snmp_listen: "127.0.0.1:0"
snmp:
  communities: [{name: public, sources: [127.0.0.0/8]}]
  notification_targets: [{address: "%s", version: v2c, community: public}]
  poll_interval: 10ms
pipeline: {speed: 100000}
`, trapAddr)))
	if err != nil {
		t.Fatal(err)
	}
	src, err := newLoopSource(trace)
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{src}, Exporters: []Exporter{nopExporter{}}})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	var once sync.Once
	end := func() error {
		var err error
		once.Do(func() { close(src.stop); err = <-done })
		return err
	}
	t.Cleanup(func() { end() })
	l := waitLine("."+mib.MiraOverloadEntered, "."+mib.MiraRegulationState+".0 = INTEGER: 2")
	t.Logf("snmptrapd: %s (after %d passes of the trace)", l, src.passes.Load()+1)
	if err := end(); err != nil {
		t.Fatal(err)
	}
	st := p.Pipeline().Stats()
	if st.Regulation.OverloadEvents == 0 || st.Regulation.Changes == 0 {
		t.Fatalf("notified, but the pipeline counted no overload: %+v", st.Regulation)
	}
}

// loopSource replays a capture file again and again, each pass later by
// the capture's span (plus a second), until stop is closed: a load that
// lasts until the test has seen what it waits for, however slow the
// machine.
type loopSource struct {
	path               string
	stop               chan struct{}
	cur                *pcapfile.Reader
	shift, first, last int64
	passes             atomic.Int64
}

func newLoopSource(path string) (*loopSource, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	return &loopSource{path: path, stop: make(chan struct{}), cur: r}, nil
}

func (l *loopSource) Next() ([]byte, drivers.CaptureInfo, error) {
	for {
		data, ci, err := l.cur.Next()
		if err == nil {
			if l.first == 0 {
				l.first = ci.Timestamp
			}
			l.last = max(l.last, ci.Timestamp)
			ci.Timestamp += l.shift
			return data, ci, nil
		}
		if !errors.Is(err, io.EOF) {
			return nil, ci, err
		}
		select {
		case <-l.stop:
			return nil, ci, io.EOF
		default:
		}
		l.cur.Close()
		if l.cur, err = pcapfile.Open(l.path); err != nil {
			return nil, ci, err
		}
		l.shift += l.last - l.first + int64(time.Second)
		l.passes.Add(1)
	}
}

func (l *loopSource) Interfaces() []drivers.Interface { return l.cur.Interfaces() }
func (l *loopSource) Stats() drivers.Stats            { return l.cur.Stats() }
func (l *loopSource) Close() error                    { return l.cur.Close() }

// startTrapd starts snmptrapd on a free loopback port, logging
// notifications numerically, and returns its address and a function
// that waits for a line holding every string given.
func startTrapd(t *testing.T, dir string) (string, func(want ...string) string) {
	t.Helper()
	bin := peertest.Program(t, "snmptrapd")
	// snmptrapd on a free port, logging notifications numerically.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trapAddr := pc.LocalAddr().String()
	pc.Close()
	conf := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(conf, []byte("authCommunity log public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-f", "-Lo", "-C", "-c", conf, "--persistentDir="+dir, "-m", "", "-On",
		"-F", "NOTIFY %v\n", "udp:"+trapAddr)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "HOME="+dir, "MIBS=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	waitLine := func(want ...string) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("snmptrapd exited before a line with %q", want)
				}
				match := true
				for _, w := range want {
					match = match && strings.Contains(l, w)
				}
				if match {
					return l
				}
			case <-deadline:
				t.Fatalf("no snmptrapd line with %q within 30 s", want)
			}
		}
	}
	waitLine("NET-SNMP version")
	return trapAddr, waitLine
}

// TestCollectorLostNotification exports into a spool whose collector is
// down: while the probe tries to deliver, a real snmptrapd receives
// miraCollectorLost with the target in state spooling, its last error
// and a spool depth of at most the records the probe spooled (the
// notification goes as the first are spooled).
func TestCollectorLostNotification(t *testing.T) {
	peertest.Program(t, "snmptrapd")
	dir := t.TempDir()
	trapAddr, waitLine := startTrapd(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nobody listens: the collector is down
	trace := filepath.Join(dir, "trace.pcap")
	f, err := os.Create(trace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.WritePcap(synth.Default(), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, err := config.ParseProbe("test.yaml", []byte(fmt.Sprintf(`probe: {name: lost-test}
snmp_listen: "127.0.0.1:0"
snmp:
  communities: [{name: public, sources: [127.0.0.0/8]}]
  notification_targets: [{address: "%s", version: v2c, community: public}]
  poll_interval: 10ms
capture: {files: [%q]}
export: [{url: "tcp://%s", spool: {dir: %q}}]
drain_timeout: 2s
`, trapAddr, trace, target, filepath.Join(dir, "spool"))))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	l := waitLine("."+mib.MiraCollectorLost, "."+mib.MiraExpState+".1 = INTEGER: 3")
	t.Logf("snmptrapd: %s", l)
	m := regexp.MustCompile(`\.` + regexp.QuoteMeta(mib.MiraExpSpoolDepth) + `\.1 = Gauge32: (\d+)`).FindStringSubmatch(l)
	recs, _ := p.ExportStats()
	if m == nil || m[1] == "0" || !strings.Contains(l, "connection refused") {
		t.Errorf("notification without a spool depth or the last error: %s", l)
	} else if d, _ := strconv.Atoi(m[1]); uint64(d) > recs {
		t.Errorf("spool depth %d, but the probe exported %d records", d, recs)
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("the probe stopped with its records undelivered and said nothing")
	}
}
