//go:build unix

package cluster

import (
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// BenchmarkPrune measures retention by age over pruneRecords records of
// 400 connections each a second (the older half pruned): a worker's
// PruneBefore (records stored through an embedded NATS server, as
// BenchmarkPipeline stores them) against the single collector's
// store.Store.PruneBefore over the same records, the reference. Each
// iteration stores the records again (not timed) and prunes them;
// cpu-ms/op is the process's CPU time while pruning (the wall time of
// one commit's fsync varies with the disk).
func BenchmarkPrune(b *testing.B) {
	var cpu time.Duration
	cpuNow := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	report := func(b *testing.B) { b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op") }
	const pruneRecords = 200_000
	recs := make([]flow.Record, pruneRecords)
	for i := range recs {
		x := uint32(i)
		t := int64(i/400) * 1e9
		recs[i] = flow.Record{Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}),
			Dst: netip.MustParseAddr("198.51.100.7"), Sport: uint16(x), Dport: 443, Proto: 6},
			Packets: 10, Octets: 4000, First: t, Last: t + 5e8}
	}
	cutoff := time.Unix(0, recs[pruneRecords/2].Last)
	o := collector.Origin{Exporter: netip.MustParseAddrPort("192.0.2.1:4739"), Domain: 1}
	b.Run("worker", func(b *testing.B) {
		_, nc, js := embeddedJS(b)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			w, stop := runWorkerAt(b, "bench", filepath.Join(b.TempDir(), "w.db"), nc, js, Retention{})
			g := NewIngest(js, nil)
			for j := 0; j < len(recs); j += 30 {
				for g.Pending() >= maxInFlight-Partitions {
					time.Sleep(50 * time.Microsecond)
				}
				o.Sequence = uint32(j)
				g.Consume(o, recs[j:min(j+30, len(recs))])
			}
			g.FlushAll()
			peertest.WaitUntil(b, 5*time.Minute, "records stored", func() bool { return w.Stored.Load() >= pruneRecords })
			b.StartTimer()
			c0 := cpuNow()
			n, err := w.PruneBefore(cutoff)
			cpu += cpuNow() - c0
			b.StopTimer()
			if err != nil || n != pruneRecords/2 {
				b.Fatalf("pruned %d: %v", n, err)
			}
			stop()
			b.StartTimer()
		}
		report(b)
		cpu = 0
	})
	b.Run("store", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			st, err := store.Open(filepath.Join(b.TempDir(), "s.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			for j := 0; j < len(recs); j += 30 {
				if err := st.Put(store.Origin{Exporter: o.Exporter.Addr().String(), Domain: 1}, recs[j:min(j+30, len(recs))]); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			c0 := cpuNow()
			if _, err := st.PruneBefore(cutoff); err != nil {
				b.Fatal(err)
			}
			cpu += cpuNow() - c0
			b.StopTimer()
			st.Close()
			b.StartTimer()
		}
		report(b)
		cpu = 0
	})
}
