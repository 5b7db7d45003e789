package symptom

import (
	"fmt"
	"testing"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

// BenchmarkScan measures Scan on the benchmark workload (see
// tools/hsbench/run.sh for the side-by-side comparison with vectorscan):
// every chunk is scanned as a new flow direction, like vectorscan's block
// mode.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{100, 1000} {
		ps := workload.Patterns(n)
		db, err := Parse("bench.yaml", workload.YAML(ps))
		if err != nil {
			b.Fatal(err)
		}
		corpus := workload.Corpus(8<<20, ps)
		for _, chunk := range []int{1460, 200} {
			b.Run(fmt.Sprintf("patterns=%d/chunk=%d", n, chunk), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(corpus)))
				var c Counts
				for b.Loop() {
					c.Reset()
					for off := 0; off+chunk <= len(corpus); off += chunk {
						var st State
						db.Scan(&st, &c, corpus[off:off+chunk], 0)
					}
				}
				b.ReportMetric(float64(c.Total()), "matches")
			})
		}
	}
}

func BenchmarkCompile5000(b *testing.B) {
	y := workload.YAML(workload.Patterns(5000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.yaml", y); err != nil {
			b.Fatal(err)
		}
	}
}
