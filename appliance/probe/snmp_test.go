package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/agent"
	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// gatedSource delivers packets from a pcap and, after the first `pause`
// packets, blocks until released, so a test can poll the agent while the
// probe is mid-capture.
type gatedSource struct {
	drivers.Source
	n, pause int
	paused   chan struct{}
	release  chan struct{}
	once     sync.Once
}

func (g *gatedSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if g.n == g.pause {
		g.once.Do(func() { close(g.paused) })
		<-g.release
	}
	g.n++
	return g.Source.Next()
}

type nopExporter struct{}

func (nopExporter) Export([]flow.Record) error { return nil }
func (nopExporter) Close() error               { return nil }

func freeUDP(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestSNMPServesPipelineCounters polls the probe's agent with net-snmp's
// snmpget while the probe is in the middle of a capture, and checks the
// values equal the pipeline's own counters at that moment.
func TestSNMPServesPipelineCounters(t *testing.T) {
	snmpget := peertest.Program(t, "snmpget")
	mibs, err := filepath.Abs("../../mib") // MIRA-PROBE-MIB and the IETF MIBs it imports
	if err != nil {
		t.Fatal(err)
	}

	r := synthSource(t)
	g := &gatedSource{Source: r, pause: 6000, paused: make(chan struct{}), release: make(chan struct{})}
	// max_flows 0 is the meter's default: miraFlowsCapacity said 0.
	cfg, err := config.ParseProbe("test.yaml", []byte("probe: {name: probe-t}\nmeter: {max_flows: 0}\nsnmp:\n  communities: [{name: public, sources: [127.0.0.0/8]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	addr := freeUDP(t)
	cfg.SNMPListen = addr
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{g}, Exporters: []Exporter{nopExporter{}}})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	<-g.paused

	// The pipeline publishes its counters every 16384 packets and at the
	// end of a source; mid-capture the agent serves that published view.
	st := p.Pipeline().Stats()
	if st.Sources[0].Stats.Packets < 4096 || st.Meter.Created == 0 {
		t.Fatalf("pipeline published nothing mid-capture: %+v", st)
	}
	get := func(obj string) uint64 {
		t.Helper()
		cmd := exec.Command(snmpget, "-v2c", "-c", "public", "-t", "2", "-r", "2", "-Oqv", "-M", mibs, "-m", "MIRA-PROBE-MIB", addr, obj)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("snmpget %s: %v: %s", obj, err, out)
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			t.Fatalf("snmpget %s: empty answer", obj)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("snmpget %s: %q", obj, out)
		}
		return n
	}
	for _, c := range []struct {
		obj  string
		want uint64
	}{
		{"MIRA-PROBE-MIB::miraCapPackets.1", st.Sources[0].Stats.Packets},
		{"MIRA-PROBE-MIB::miraFlowsCreated.0", st.Meter.Created},
		{"MIRA-PROBE-MIB::miraFlowsActive.0", st.Meter.Active},
		{"MIRA-PROBE-MIB::miraFlowsCapacity.0", meter.DefaultMaxFlows},
	} {
		if got := get(c.obj); got != c.want {
			t.Errorf("%s = %d, pipeline says %d", c.obj, got, c.want)
		}
	}

	// Reloads: none yet, then one refused (the file does not load) and
	// one applied (the same configuration: nothing reaches the pipeline,
	// so it does not wait for the paused reader).
	getText := func(obj string) string {
		t.Helper()
		out, err := exec.Command(snmpget, "-v2c", "-c", "public", "-t", "2", "-r", "2", "-Oqv", "-M", mibs, "-m", "MIRA-PROBE-MIB", addr, obj).CombinedOutput()
		if err != nil {
			t.Fatalf("snmpget %s: %v: %s", obj, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if a, r, l := get("MIRA-PROBE-MIB::miraProbeReloads.0"), get("MIRA-PROBE-MIB::miraProbeReloadsRefused.0"), getText("MIRA-PROBE-MIB::miraProbeLastReload.0"); a != 0 || r != 0 || l != "0-1-1,0:0:0.0" {
		t.Fatalf("before any reload: applied %d, refused %d, last %q", a, r, l)
	}
	if err := p.ReloadFrom(func() (*config.Probe, error) { return nil, errors.New("test.yaml:1: unknown key") }); err == nil {
		t.Fatal("a configuration that does not load was applied")
	}
	before := time.Now().UTC().Truncate(100 * time.Millisecond)
	if err := p.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	if a, r := get("MIRA-PROBE-MIB::miraProbeReloads.0"), get("MIRA-PROBE-MIB::miraProbeReloadsRefused.0"); a != 1 || r != 1 {
		t.Fatalf("after a refused and an applied reload: miraProbeReloads %d, miraProbeReloadsRefused %d; want 1 and 1", a, r)
	}
	// DateAndTime as net-snmp prints it: 2026-12-7,18:3:4.5,+0:0.
	l := getText("MIRA-PROBE-MIB::miraProbeLastReload.0")
	var y, mo, d, h, mi, sec, ds, oh, om int
	var sign rune
	if _, err := fmt.Sscanf(l, "%d-%d-%d,%d:%d:%d.%d,%c%d:%d", &y, &mo, &d, &h, &mi, &sec, &ds, &sign, &oh, &om); err != nil {
		t.Fatalf("miraProbeLastReload %q: %v", l, err)
	}
	off := oh*3600 + om*60
	if sign == '-' {
		off = -off
	}
	if lt := time.Date(y, time.Month(mo), d, h, mi, sec, ds*1e8, time.FixedZone("", off)); lt.Before(before) || lt.After(after) {
		t.Fatalf("miraProbeLastReload %q (%v) not between %v and %v", l, lt, before, after)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFlowCapacity: miraFlowsCapacity is max_flows per worker (the
// meter's default for 0), saturated at the Gauge32 maximum instead of
// wrapping (2^31 flows in 2 workers read 0).
func TestFlowCapacity(t *testing.T) {
	for _, tc := range []struct {
		maxFlows, workers int
		want              uint32
	}{
		{0, 0, meter.DefaultMaxFlows}, {1000, 4, 4000}, {1 << 31, 2, math.MaxUint32}, {meter.MaxFlowsLimit, 1024, math.MaxUint32},
	} {
		if got := flowCapacity(tc.maxFlows, tc.workers); got != tc.want {
			t.Errorf("flowCapacity(%d, %d) = %d, want %d", tc.maxFlows, tc.workers, got, tc.want)
		}
	}
}

// TestSNMPAddressInUse: a probe whose SNMP address cannot be had (in
// use) fails at start, as one with a bad metrics address does. It
// logged "snmp agent listening", then "snmp agent stopped", and ran the
// whole capture without its agent, exiting 0.
func TestSNMPAddressInUse(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := synthSource(t)
	cfg, err := config.ParseProbe("test.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SNMPListen = busy.LocalAddr().String()
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{r}, Exporters: []Exporter{nopExporter{}}})
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "snmp") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run with the SNMP address in use: %v, want the listen error", err)
	}
	if st := p.Pipeline(); st != nil && st.Stats().Packets > 0 {
		t.Errorf("the capture ran (%d packets) although the agent could not start", st.Stats().Packets)
	}
}

// TestSNMPSpoolDropped: records a full spool drops (its collector away)
// show in the exporter's row (miraExpSpoolDropped), as in the loss
// ledger; before, the MIB had no place for them and showed no loss.
func TestSNMPSpoolDropped(t *testing.T) {
	r := synthSource(t)
	// A collector that is not there: a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	x, err := exporter.New("tcp://"+addr, &exporter.Config{Spool: &exporter.SpoolConfig{
		Dir: t.TempDir(), MaxBytes: 4000, DrainTimeout: time.Millisecond, RetryMin: time.Millisecond, RetryMax: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{r}, Exporters: []Exporter{x}})
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("Run: no error with records dropped from the spool")
	}
	dropped := x.Stats().SpoolDropped
	if dropped == 0 {
		t.Fatal("the spool dropped nothing; the test needs it to overflow")
	}
	var snap agent.Snapshot
	p.snapshot(&snap)
	if len(snap.Exporters) != 1 || snap.Exporters[0].SpoolDropped != dropped {
		t.Fatalf("SNMP exporter rows %+v, want one with SpoolDropped %d", snap.Exporters, dropped)
	}
}

// drainingExporter's Close blocks, as a spool draining to a collector
// that never confirms, until StopDraining.
type drainingExporter struct {
	closing chan struct{}
	stop    chan struct{}
	once    sync.Once
}

func (*drainingExporter) Export([]flow.Record) error { return nil }
func (d *drainingExporter) Close() error {
	close(d.closing)
	<-d.stop
	return errors.New("records remain spooled")
}
func (d *drainingExporter) StopDraining() { d.once.Do(func() { close(d.stop) }) }

// TestStopWhileDraining: a probe that read its files and drains its
// spools until delivered stops when told to (its context ends), instead
// of draining for ever.
func TestStopWhileDraining(t *testing.T) {
	r := synthSource(t)
	cfg, err := config.LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	d := &drainingExporter{closing: make(chan struct{}), stop: make(chan struct{})}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{r}, Exporters: []Exporter{d}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-d.closing
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned no error with its spool undelivered")
		}
	case <-time.After(10 * time.Second):
		d.StopDraining()
		t.Fatal("Run still draining 10 s after its context ended")
	}
}
