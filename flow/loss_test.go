package flow

import "testing"

func TestLossStagesAndCounters(t *testing.T) {
	var l Loss
	for i := range LossStages {
		*l.Counter(i) = uint64(i + 1)
	}
	want := Loss{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if l != want {
		t.Fatalf("Counter order: got %+v, want %+v", l, want)
	}
	m := l.Map()
	if len(m) != len(LossStages) || m["ring"] != 1 || m["store"] != 10 || m["spool"] != 6 {
		t.Fatalf("Map = %v", m)
	}
	l.Add(want)
	if l.Total() != 2*55 {
		t.Fatalf("Total after Add = %d, want 110", l.Total())
	}
}
