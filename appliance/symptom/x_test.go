package symptom

import (
	"math/rand/v2"
	"testing"
	"github.com/mira-project/mira/appliance/symptom/workload"
)

func BenchmarkRaw(b *testing.B) {
	ps := workload.Patterns(100)
	var lits []workload.Pattern
	for _, p := range ps { if len(p.Bytes) >= 4 { lits = append(lits, p) } }
	db, _ := Parse("x", workload.YAML(lits))
	buf := make([]byte, 1460*1000)
	r := rand.New(rand.NewPCG(1,1))
	for i := range buf { buf[i] = byte(r.Uint32()) }
	b.SetBytes(int64(len(buf)))
	var c Counts
	for b.Loop() {
		for off := 0; off+1460 <= len(buf); off += 1460 {
			db.m.scan4(&c, buf[off:off+1460], 0, false)
		}
	}
}
