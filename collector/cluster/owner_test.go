package cluster

import (
	"testing"
)

// TestAssign: every worker of a set holds an even share of the
// partitions (floor(32/n) or one more), whatever the names (those that
// differ only in their last character too); a worker joining moves few
// partitions (at most twice its share), and the assignment does not
// depend on the order of the membership list.
func TestAssign(t *testing.T) {
	sets := [][]string{
		{"wa", "wb"}, {"wa", "wb", "wc"}, {"wa", "wb", "wc", "wd"}, {"wa", "wb", "wc", "wd", "we"},
		{"w1", "w2"}, {"w1", "w2", "w3"}, {"w1", "w2", "w3", "w4"},
		{"worker-0", "worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6", "worker-7"},
		{"collector-a.example", "collector-b.example", "collector-c.example"},
	}
	for _, live := range sets {
		a := Assign(live)
		share := map[string]int{}
		for _, o := range a {
			share[o]++
		}
		lo, hi := Partitions/len(live), (Partitions+len(live)-1)/len(live)
		for _, n := range live {
			if share[n] < lo || share[n] > hi {
				t.Errorf("%v: partitions per worker %v", live, share)
				break
			}
		}
		rev := make([]string, len(live))
		for i, n := range live {
			rev[len(live)-1-i] = n
		}
		for p, o := range Assign(rev) {
			if o != a[p] {
				t.Errorf("%v: partition %d owned by %s, by %s with the list reversed", live, p, a[p], o)
			}
		}
		if len(live) < 2 {
			continue
		}
		before := Assign(live[:len(live)-1])
		moved := 0
		for p := range a {
			if a[p] != before[p] {
				moved++
			}
		}
		if moved > 2*hi {
			t.Errorf("%v: %s joining moved %d partitions (its share is %d)", live, live[len(live)-1], moved, share[live[len(live)-1]])
		}
		t.Logf("%v: shares %v, %d moved when the last joined", live, share, moved)
	}
	if a := Assign(nil); a != nil {
		t.Errorf("assignment among no workers: %v", a)
	}
	for p, o := range Assign([]string{"only"}) {
		if o != "only" {
			t.Fatalf("partition %d: owner %q of one worker", p, o)
		}
	}
}
