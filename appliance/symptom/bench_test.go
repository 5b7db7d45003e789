package symptom

import (
	"fmt"
	"testing"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

// BenchmarkScan measures Scan on the benchmark workload (tools/hsbench/run.sh
// compares the same workload with vectorscan): every chunk is scanned as a
// new flow direction, like vectorscan's block mode. "default" is the
// embedded default database on the same corpus.
func BenchmarkScan(b *testing.B) {
	corpus := workload.Corpus(8<<20, workload.Patterns(1000))
	for _, n := range []int{0, 100, 1000} {
		db := Default()
		name := "default"
		if n > 0 {
			var err error
			db, err = Parse("bench.yaml", workload.YAML(workload.Patterns(n)))
			if err != nil {
				b.Fatal(err)
			}
			name = fmt.Sprint(n)
		}
		for _, chunk := range []int{1460, 200} {
			b.Run(fmt.Sprintf("patterns=%s/chunk=%d", name, chunk), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(corpus) / chunk * chunk))
				var c Counts
				for b.Loop() {
					c.Reset()
					for off := 0; off+chunk <= len(corpus); off += chunk {
						var st State
						db.Scan(&st, &c, corpus[off:off+chunk], 0)
					}
				}
				b.ReportMetric(float64(c.Total()), "matches")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(corpus)/chunk), "ns/packet")
			})
		}
	}
}

// BenchmarkCompile5000 compiles 5,000 patterns (target: under 2 s).
func BenchmarkCompile5000(b *testing.B) {
	y := workload.YAML(workload.Patterns(5000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.yaml", y); err != nil {
			b.Fatal(err)
		}
	}
}
