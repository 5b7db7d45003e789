package probe

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/agent"
	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/tools/peertest"
	"github.com/mira-project/mira/tools/vethtest"
)

// gather reads the probe's metrics as /metrics serves them: counter
// and gauge values summed over label sets, by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				out[mf.GetName()] += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				out[mf.GetName()] += g.GetValue()
			}
		}
	}
	return out
}

// liveCounters runs a probe on sources (opened in side 0 of pair) while
// send sends want packets, and checks that /metrics, the SNMP view and
// the pipeline agree with each other and with want while the probe runs,
// and that the records meter each packet once.
func liveCounters(t *testing.T, srcs []drivers.Source, send func(), want uint64) {
	t.Helper()
	cfg, err := config.LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Meter.IdleTimeout = time.Hour
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Pipeline.Workers = len(srcs)
	reg := prometheus.NewRegistry()
	sink := &recordSink{}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: srcs, Exporters: []Exporter{sink}, Registry: reg})
	p.live = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The sockets are open: what is sent now is captured.
	send()
	deadline := time.Now().Add(30 * time.Second)
	var m map[string]float64
	for {
		m = gather(t, reg)
		if uint64(m["mira_probe_packets_total"]) >= want && uint64(m["mira_probe_flows_created_total"]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s /metrics says %v packets, %v flows; want %d packets", m["mira_probe_packets_total"], m["mira_probe_flows_created_total"], want)
		}
		time.Sleep(20 * time.Millisecond) // polling published counters
	}
	// Wait one publication period more: a second copy of each packet
	// would have been counted by now.
	time.Sleep(300 * time.Millisecond)
	m = gather(t, reg)
	st := p.Pipeline().Stats()
	var snap agent.Snapshot
	p.snapshot(&snap)
	if snap.Name == "" {
		t.Error("miraProbeName is empty")
	}
	var snmpPkts uint64
	for _, ci := range snap.Interfaces {
		snmpPkts += ci.Packets
	}
	if len(snap.Interfaces) != 1 {
		t.Errorf("SNMP capture rows %+v, want one per interface", snap.Interfaces)
	}
	var srcPkts uint64
	for _, s := range st.Sources {
		srcPkts += s.Stats.Packets
	}
	for name, got := range map[string]uint64{
		"pipeline packets":                st.Packets,
		"pipeline metered":                st.Meter.Packets,
		"sources' packets":                srcPkts,
		"mira_probe_packets_total":        uint64(m["mira_probe_packets_total"]),
		"mira_probe_source_packets_total": uint64(m["mira_probe_source_packets_total"]),
		"SNMP miraCapPackets":             snmpPkts,
	} {
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if snap.Pipeline.RegulationState != agent.RegulationNormal || snap.Pipeline.SamplingRate != 1 {
		t.Errorf("SNMP regulation %d rate %d at a trickle", snap.Pipeline.RegulationState, snap.Pipeline.SamplingRate)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var recPkts uint64
	for _, r := range sink.recs {
		recPkts += r.Packets
	}
	if recPkts != want {
		t.Errorf("records hold %d packets, want %d (each packet metered once)", recPkts, want)
	}
}

func openLiveIn(t *testing.T, pair *vethtest.Pair, iface string, workers int) []drivers.Source {
	t.Helper()
	var srcs []drivers.Source
	err := pair.Do(0, func() (err error) {
		srcs, err = openLive(iface, 0, false, workers)
		return err
	})
	switch {
	case errors.Is(err, os.ErrPermission):
		peertest.Missing(t, "needs CAP_NET_RAW: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	return srcs
}

// TestLiveCountersLoopback: on lo each packet crosses the interface
// twice; the probe (two workers in a fanout group) counts and meters it
// once, and its counters are live.
func TestLiveCountersLoopback(t *testing.T) {
	pair := vethtest.New(t)
	srcs := openLiveIn(t, pair, "lo", 2)
	const n = 40
	liveCounters(t, srcs, func() {
		lo := netip.MustParseAddr("127.0.0.1")
		err := pair.Do(0, func() error {
			rx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 9300)))
			if err != nil {
				return err
			}
			defer rx.Close()
			rx.SetDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 64)
			for i := range n {
				tx, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, uint16(9400+i%8))), net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 9300)))
				if err != nil {
					return err
				}
				_, err = tx.Write([]byte("x"))
				tx.Close()
				if err != nil {
					return err
				}
				if _, err := rx.Read(buf); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}, n)
}

// TestLiveCountersVeth: the same across a veth pair.
func TestLiveCountersVeth(t *testing.T) {
	pair := vethtest.New(t)
	srcs := openLiveIn(t, pair, pair.Iface[0], 2)
	const n = 60
	liveCounters(t, srcs, func() {
		var rx *net.UDPConn
		if err := pair.Do(0, func() (err error) {
			rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[0], 9300)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		rx.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 64)
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[0], 9300))
		for i := range n {
			var tx *net.UDPConn
			if err := pair.Do(1, func() (err error) {
				tx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pair.Addr[1], uint16(9400+i%8))))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			_, err := tx.WriteToUDP([]byte("x"), to)
			tx.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rx.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}, n)
}
