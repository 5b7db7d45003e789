package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// BenchmarkIngest measures the collector's work per record without the
// sockets: the collecting process decodes an IPFIX byte stream, the
// server encodes and batches the records, and commits write them to the
// store (synced) at the server's batch size. The stream is
// $MIRA_BENCH_IPFIX (an RFC 5655 file, as tools/bench/collector.sh
// makes) or 200000 random records.
func BenchmarkIngest(b *testing.B) {
	stream := benchStream(b)
	cfg, err := config.LoadCollector("")
	if err != nil {
		b.Fatal(err)
	}
	cfg.DB = filepath.Join(b.TempDir(), "ingest.db")
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st, err := store.Open(cfg.DB, &store.Options{Release: true, Timeout: storeLockWait, InitialMmapSize: storeMmapSize})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s.st = st
	s.coll = collector.New(s, nil)
	// Commit whenever a batch is full, as Run's loop does.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range s.kick {
			if err := s.commit(); err != nil {
				b.Error(err)
			}
		}
	}()
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Transport: "file"}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each pass is a new session (a new connection): the same
		// records again, as a long-running collector sees more traffic.
		if err := s.coll.ServeStream(context.Background(), bytes.NewReader(stream), o); err != nil {
			b.Fatal(err)
		}
	}
	close(s.kick)
	<-done
	if err := s.commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if s.stored == 0 || s.stored != s.coll.Stats().Records {
		b.Fatalf("stored %d of %d records", s.stored, s.coll.Stats().Records)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(s.stored), "ns/record")
	// CPU time (the commits' goroutine's too): on a shared machine the
	// wall time also counts the time other processes held the core, and
	// the waits for the disk.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(s.stored), "cpu-ns/record")
	b.ReportMetric(float64(s.stored)/float64(b.N), "records/op")
}

// cpuTime returns the process's user and system CPU time in ns.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func benchStream(b *testing.B) []byte {
	if name := os.Getenv("MIRA_BENCH_IPFIX"); name != "" {
		s, err := os.ReadFile(name)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	return exportStream(b, nil, ipfixtest.Random(11, 200000))
}
