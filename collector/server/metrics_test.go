package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/collector/config"
)

// TestMetricsOnHTTPPort: the --http address serves /metrics beside the
// API, with the collector's measured counters.
func TestMetricsOnHTTPPort(t *testing.T) {
	cfg, err := config.LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = []string{"tcp://127.0.0.1:0"}
	cfg.HTTP = "127.0.0.1:0"
	cfg.DB = filepath.Join(t.TempDir(), "metrics.db")
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Addrs = make(chan []net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var tcp string
	select {
	case a := <-s.Addrs:
		tcp = a[0].String()
	case err := <-done:
		t.Fatal(err)
	}
	sendTCP(t, tcp, 7, 700)
	until(t, "700 records stored", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.stored == 700 })

	get := func(path string) string {
		resp, err := http.Get("http://" + s.HTTPAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
		}
		return string(b)
	}
	m := get("/metrics")
	for _, want := range []string{"mira_collector_records_total 700\n", "mira_collector_stored_records_total 700\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics on the HTTP port lacks %q:\n%s", want, m)
		}
	}
}
