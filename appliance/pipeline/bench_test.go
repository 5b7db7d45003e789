package pipeline

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/synth"
)

var (
	benchOnce sync.Once
	benchPcap []byte
	benchPkts int
)

// benchTrace is a synthetic capture of the large trace's shape, 20,000
// sessions, held in memory.
func benchTrace(b *testing.B) ([]byte, int) {
	benchOnce.Do(func() {
		cfg := synth.Large()
		cfg.Flows = 20000
		var buf bytes.Buffer
		if _, err := synth.WritePcap(cfg, &buf); err != nil {
			b.Fatal(err)
		}
		benchPcap = buf.Bytes()
		r, err := pcapfile.NewReader(bytes.NewReader(benchPcap), "bench")
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			benchPkts++
		}
	})
	return benchPcap, benchPkts
}

// benchmarkPipeline reports ns per packet of read + decode + meter (+
// scan when db is set) over the whole trace, records discarded.
func benchmarkPipeline(b *testing.B, db *symptom.DB, workers int) {
	data, n := benchTrace(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var recs int
	for i := 0; i < b.N; i++ {
		r, err := pcapfile.NewReader(bytes.NewReader(data), "bench")
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Workers: workers}
		cfg.Meter.Symptoms = db
		var mu sync.Mutex
		p := New(cfg, func(r []flow.Record) { mu.Lock(); recs += len(r); mu.Unlock() })
		if err := p.Run(context.Background(), []drivers.Source{r}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pkt")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds()/1e6, "Mpps")
}

func BenchmarkPipelineNoScan(b *testing.B)   { benchmarkPipeline(b, nil, 1) }
func BenchmarkPipelineScan(b *testing.B)     { benchmarkPipeline(b, symptom.Default(), 1) }
func BenchmarkPipeline2Workers(b *testing.B) { benchmarkPipeline(b, nil, 2) }
