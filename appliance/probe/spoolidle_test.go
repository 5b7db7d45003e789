package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// quietSource is a live capture port that carries nothing: poll
// timeouts until it is closed.
type quietSource struct{ closed atomic.Bool }

func (s *quietSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if s.closed.Load() {
		return nil, drivers.CaptureInfo{}, drivers.ErrClosed
	}
	time.Sleep(10 * time.Millisecond)
	return nil, drivers.CaptureInfo{}, drivers.ErrTimeout
}
func (s *quietSource) Interfaces() []drivers.Interface {
	return []drivers.Interface{{Name: "quiet0", LinkType: drivers.LinkEthernet}}
}
func (s *quietSource) Stats() drivers.Stats { return drivers.Stats{} }
func (s *quietSource) Close() error         { s.closed.Store(true); return nil }

// TestSpoolReplayedOnQuietPort: records spooled before a restart (the
// appliance rebooted while its collector was away) reach the collector
// once it is back, while the capture port carries no traffic. The probe
// called its exporters only with new flow records, so a quiet port kept
// them spooled until the next flow ended (seen on the QEMU appliance: 13
// records spooled at power-off arrived only after new traffic).
func TestSpoolReplayedOnQuietPort(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	// A port nobody listens on yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	// The previous run: 40 records spooled, the collector away.
	const n = 40
	x, err := exporter.New("tcp://"+addr, &exporter.Config{Spool: &exporter.SpoolConfig{Dir: spool, DrainTimeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Export(ipfixtest.Random(7, n)); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); !errors.Is(err, exporter.ErrUndelivered) {
		t.Fatalf("closing with the collector away: %v, want undelivered records", err)
	}

	// The collector is back: it counts the data records it decodes (it
	// never confirms their storage as mira-collector does: the probe's
	// spool keeps them, and the probe ends with them undelivered).
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := ipfix.NewSession("test")
				var recs []flow.Record
				hdr := make([]byte, ipfix.HeaderLen)
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					msg := make([]byte, binary.BigEndian.Uint16(hdr[2:]))
					copy(msg, hdr)
					if _, err := io.ReadFull(c, msg[len(hdr):]); err != nil {
						return
					}
					recs, _, _ = s.Decode(msg, recs[:0])
					got.Add(int64(len(recs)))
				}
			}()
		}
	}()

	cfg, err := config.ParseProbe("test.yaml", []byte(fmt.Sprintf("drain_timeout: 100ms\nexport: [{url: \"tcp://%s\", spool: {dir: %q}}]\n", addr, spool)))
	if err != nil {
		t.Fatal(err)
	}
	src := &quietSource{}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{src}})
	p.live = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		src.Close()
		if err := <-done; err != nil && !errors.Is(err, exporter.ErrUndelivered) {
			t.Errorf("probe: %v", err)
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for got.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the collector received %d of the %d spooled records while the capture port was quiet", got.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Load() != n {
		t.Fatalf("the collector received %d records, want %d", got.Load(), n)
	}
}
