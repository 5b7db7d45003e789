package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/server"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// BenchmarkCollectorIngest measures mira-collector's whole ingest path
// in process: a TCP IPFIX session, the collecting process, the batching
// writer and the bbolt store. One op is one connection carrying
// 100000 records; it ends when /metrics counts them all as stored.
func BenchmarkCollectorIngest(b *testing.B) {
	const n = 100000
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	if err := e.Export(ipfixtest.Random(11, n)); err != nil {
		b.Fatal(err)
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	stream := buf.Bytes()

	cfg, err := config.LoadCollector("")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Listen = []string{"tcp://127.0.0.1:0"}
	cfg.DB = filepath.Join(b.TempDir(), "bench.db")
	coll := &collectorProc{metrics: fmt.Sprintf("127.0.0.1:%d", freePort(b, "tcp"))}
	cfg.Metrics.Listen = coll.metrics
	srv := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv.Addrs = make(chan []net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	var addr string
	select {
	case a := <-srv.Addrs:
		addr = a[0].String()
	case err := <-done:
		b.Fatal(err)
	}
	stored := func() uint64 {
		m, err := coll.scrape()
		if err != nil {
			b.Fatal(err)
		}
		return uint64(m["mira_collector_stored_records_total"])
	}
	// Wait for /metrics to serve before timing.
	poll(b, 10*time.Second, "collector metrics", func() (bool, string) {
		_, err := coll.scrape()
		return err == nil, fmt.Sprint(err)
	})

	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(stream); err != nil {
			b.Fatal(err)
		}
		c.Close()
		want := uint64(i+1) * n
		for {
			if s := stored(); s >= want {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
}
