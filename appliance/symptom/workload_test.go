package symptom

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

func mapsEqual(a, b map[uint16]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestWorkloadStreamedEqualsNaive runs the benchmark workload through Scan
// in packets of several sizes and compares with the naive oracle on the
// whole stream.
func TestWorkloadStreamedEqualsNaive(t *testing.T) {
	for _, n := range []int{100, 1000} {
		ps := workload.Patterns(n)
		db, err := Parse("bench.yaml", workload.YAML(ps))
		if err != nil {
			t.Fatal(err)
		}
		corpus := workload.Corpus(1<<18, ps)
		want := naiveCounts(db, corpus)
		var total uint64
		for _, v := range want {
			total += v
		}
		t.Logf("%d patterns: %d matches, stats %+v", n, total, db.Stats())
		if total < 100 {
			t.Fatalf("%d patterns: oracle found only %d matches; workload broken", n, total)
		}
		r := rand.New(rand.NewPCG(5, 6))
		rnd := make([]int, 97)
		for i := range rnd {
			rnd[i] = 1 + r.IntN(40)
		}
		for _, sizes := range [][]int{{1 << 20}, {1460}, {200}, {1}, {3, 7, 1, 16}, rnd} {
			t.Run(fmt.Sprintf("%d/%v", n, sizes[:min(4, len(sizes))]), func(t *testing.T) {
				got := scanChunks(db, corpus, sizes)
				if !mapsEqual(got, want) {
					t.Errorf("streamed %v != whole %v (total %d)", got, want, total)
				}
			})
		}
	}
}

// TestWideTables repeats the streamed-versus-whole check with the 32-bit
// automaton tables that large databases use.
func TestWideTables(t *testing.T) {
	defer func(v int) { maxT16States = v }(maxT16States)
	maxT16States = 0
	ps := workload.Patterns(300)
	db, err := Parse("bench.yaml", workload.YAML(ps))
	if err != nil {
		t.Fatal(err)
	}
	if db.m.cs.t32 == nil || db.m.ci.t32 == nil {
		t.Fatal("32-bit tables not used")
	}
	corpus := workload.Corpus(1<<17, ps)
	want := naiveCounts(db, corpus)
	for _, sizes := range [][]int{{1460}, {5, 1, 17}} {
		if got := scanChunks(db, corpus, sizes); !mapsEqual(got, want) {
			t.Errorf("sizes %v: streamed %v != whole %v", sizes, got, want)
		}
	}
}
