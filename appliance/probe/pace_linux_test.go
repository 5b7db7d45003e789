package probe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
	"github.com/prometheus/client_golang/prometheus"
)

// slowReceiver is a collector on this host with a small socket buffer
// that reads one datagram every 2 ms.
type slowReceiver struct {
	c    *net.UDPConn
	port int
	mu   sync.Mutex
	msgs [][]byte
	done chan struct{}
}

func newSlowReceiver(t *testing.T) *slowReceiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	r := &slowReceiver{c: c, port: c.LocalAddr().(*net.UDPAddr).Port, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, append([]byte(nil), buf[:n]...))
			r.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

// records waits until the receiver has read its queue and returns the
// flow records it got, the datagrams its kernel dropped and the first
// message that did not decode (unpaced, the one with the templates may
// have been dropped).
func (r *slowReceiver) records(t *testing.T) (recs uint64, drops int, bad error) {
	t.Helper()
	peertest.WaitUntil(t, 20*time.Second, "the receiver to read its socket", func() bool {
		q, ok := peertest.UDPQueue(r.port)
		return ok && q == 0
	})
	drops, _ = peertest.UDPDrops(r.port)
	s := ipfix.NewSession("slow receiver")
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if _, err := s.DecodeEach(m, func(*flow.Record) { recs++ }); err != nil && bad == nil {
			bad = err
		}
	}
	return recs, drops, bad
}

// TestReplayPacedBySlowReceiver replays a capture over UDP into a
// collector on this host that drains slowly through a small buffer: the
// exporter waits on its receive queue, so every record arrives and
// /metrics counts the wait (mira_probe_export_pace_wait_seconds_total),
// no message unpaced. Unpaced (rate: -1) the same replay overflows it.
func TestReplayPacedBySlowReceiver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		paced bool
	}{{"paced", "", true}, {"unpaced", ", rate: -1", false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSlowReceiver(t)
			cfg, err := config.ParseProbe("test.yaml", []byte("metrics: {listen: \"127.0.0.1:0\"}\nexport:\n  - {url: \"udp://"+r.c.LocalAddr().String()+"\""+tc.extra+"}\n"))
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{synthSource(t)}, Registry: reg})
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			exported, _ := p.ExportStats()
			m := gather(t, reg)
			got, drops, bad := r.records(t)
			t.Logf("%d of %d records arrived, %d datagrams dropped; paced %.3f s, %v unpaced", got, exported, drops, m["mira_probe_export_pace_wait_seconds_total"], m["mira_probe_export_unpaced_messages_total"])
			if !tc.paced {
				if drops == 0 || got == exported {
					t.Fatalf("unpaced, the slow receiver lost nothing (%d of %d records): the test shows nothing", got, exported)
				}
				return
			}
			if drops != 0 || got != exported || bad != nil {
				t.Fatalf("%d of %d records arrived, the receiver's kernel dropped %d datagrams; decoding: %v", got, exported, drops, bad)
			}
			if m["mira_probe_export_pace_wait_seconds_total"] <= 0 || m["mira_probe_export_unpaced_messages_total"] != 0 {
				t.Fatalf("metrics: pace wait %v s, %v unpaced messages; want a wait and none unpaced", m["mira_probe_export_pace_wait_seconds_total"], m["mira_probe_export_unpaced_messages_total"])
			}
		})
	}
}
