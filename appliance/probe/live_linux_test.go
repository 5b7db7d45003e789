package probe

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/afpacket"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
	"github.com/mira-project/mira/tools/vethtest"
)

type recordSink struct {
	mu   sync.Mutex
	recs []flow.Record
}

func (s *recordSink) Export(r []flow.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, r...)
	s.mu.Unlock()
	return nil
}
func (s *recordSink) Close() error { return nil }

type counts struct{ packets, octets uint64 }

func byKey(recs []flow.Record) map[flow.Key]counts {
	m := map[flow.Key]counts{}
	for _, r := range recs {
		c := m[r.Key]
		c.packets += r.Packets
		c.octets += r.Octets
		m[r.Key] = c
	}
	return m
}

func runProbe(t *testing.T, src drivers.Source, live bool, stopWhen func(p *Probe) bool) []flow.Record {
	t.Helper()
	cfg, err := config.LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Meter.IdleTimeout = time.Hour
	cfg.Meter.ActiveTimeout = 24 * time.Hour
	sink := &recordSink{}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{src}, Exporters: []Exporter{sink}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.live = live
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if stopWhen != nil {
		deadline := time.Now().Add(60 * time.Second)
		for !stopWhen(p) {
			if time.Now().After(deadline) {
				t.Fatal("live capture did not see the replayed packets within 60 s")
			}
			time.Sleep(20 * time.Millisecond) // polling observable state, not a guess
		}
		cancel()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return sink.recs
}

// TestLiveEqualsReplay sends corpus captures across a veth pair between two
// namespaces with tcpreplay and checks the live probe meters exactly the
// flows, packets and octets that reading the same file gives.
func TestLiveEqualsReplay(t *testing.T) {
	tcpreplay := peertest.Program(t, "tcpreplay")
	for _, name := range []string{"gopacket/test_ethernet.pcap", "libtrace/vlan.pcap", "ndpi/6in4tunnel.pcap"} {
		t.Run(name, func(t *testing.T) {
			path := peertest.CorpusFile(t, "pcaps", name)
			f, err := pcapfile.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			want := byKey(runProbe(t, f, false, nil))
			var wantPkts uint64
			for _, c := range want {
				wantPkts += c.packets
			}
			if len(want) == 0 || wantPkts == 0 {
				t.Fatalf("%s metered nothing from the file", name)
			}

			p := vethtest.New(t)
			if err := p.SetMTU(9000); err != nil {
				t.Fatal(err)
			}
			var src *afpacket.Source
			if err := p.Do(0, func() error {
				var err error
				src, err = afpacket.Open(p.Iface[0], &afpacket.Config{PollTimeout: 50 * time.Millisecond})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			replayed := make(chan error, 1)
			go func() {
				out, err := p.Command(1, tcpreplay, "-q", "-t", "-i", p.Iface[1], path).CombinedOutput()
				if err != nil {
					t.Logf("tcpreplay: %s", out)
				}
				replayed <- err
			}()
			var replayErr error
			gotRecs := runProbe(t, src, true, func(pr *Probe) bool {
				select {
				case replayErr = <-replayed:
					replayed <- replayErr
				default:
					return false
				}
				pl := pr.Pipeline()
				return pl != nil && pl.Stats().Meter.Packets >= wantPkts
			})
			if replayErr != nil {
				t.Fatal(replayErr)
			}
			got := byKey(gotRecs)
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%v:%d > %v:%d proto %d vlan %d: live %+v, file %+v", k.Src, k.Sport, k.Dst, k.Dport, k.Proto, k.VLAN, got[k], w)
				}
			}
			for k, g := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%v:%d > %v:%d: only live (%+v)", k.Src, k.Sport, k.Dst, k.Dport, g)
				}
			}
		})
	}
}
