package exporter

import (
	"testing"

	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// BenchmarkExportRegulated is BenchmarkExport for a probe under
// self-regulation: it announces its sampling, and its records carry two
// flow-selection rates (the old and the new one).
func BenchmarkExportRegulated(b *testing.B) {
	e := NewTransport(discard{}, &Config{Sampling: &ipfix.Sampling{Interval: 16, Flow: true, SelectorAlgorithm: 6}})
	recs := ipfixtest.Random(23, 1000)
	for i := range recs {
		recs[i].SamplingPacketInterval = 0
		recs[i].SamplingFlowInterval = uint32(4 << (2 * (i % 2)))
	}
	e.Export(recs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Export(recs)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}
