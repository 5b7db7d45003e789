package report

import (
	"testing"
	"time"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// heldRoom returns the held records' room: the slots of h's slab.
func heldRoom(h *recHeap) int { return h.slab.Size() }

// TestRecHeapDrainShrinks: after a burst of 200,000 held records drains
// to a steady 500, the slab's room comes back to the steady state's
// order (it kept the burst's 200,000 slots), and a clone (Roller.Pending)
// holds room for the 500 live records only.
func TestRecHeapDrainShrinks(t *testing.T) {
	enc := store.AppendRecord(nil, &flow.Record{First: 1, Last: 2})
	o := store.Origin{Exporter: "x"}
	var h recHeap
	seq := uint64(0)
	add := func(first int64) {
		seq++
		h.addEncoded(o, first, enc, seq)
	}
	const burst, steady = 200000, 500
	for i := 0; i < burst; i++ {
		add(int64(i) * int64(time.Microsecond))
	}
	if got := heldRoom(&h); got < burst {
		t.Fatalf("room %d for %d held", got, burst)
	}
	// Steady state: one in, one out, the held count falling to 500.
	next := int64(burst) * int64(time.Microsecond)
	for h.Len() > steady {
		h.take()
		h.take()
		add(next)
		next += int64(time.Microsecond)
	}
	for i := 0; i < 3*burst; i++ {
		add(next)
		next += int64(time.Microsecond)
		h.take()
	}
	if h.Len() != steady {
		t.Fatalf("%d held, want %d", h.Len(), steady)
	}
	if got := heldRoom(&h); got > 4096 {
		t.Errorf("room %d slots after draining to %d held (burst %d)", got, steady, burst)
	}
	c := h.clone()
	if got := heldRoom(&c); got > 2048 {
		t.Errorf("clone has room %d for %d held", got, c.Len())
	}
	// The clone takes the same records in the same order.
	for h.Len() > 0 {
		_, r1, f1 := h.take()
		if r1 == nil {
			t.Fatal("held record did not decode")
		}
		_, r2, f2 := c.take()
		if r2 == nil || f1 != f2 {
			t.Fatalf("clone took %d, original %d", f2, f1)
		}
	}
	if c.Len() != 0 {
		t.Fatalf("clone holds %d more", c.Len())
	}
	if got := heldRoom(&h); got > 2048 {
		t.Errorf("room %d slots when empty", got)
	}
}

// BenchmarkRecHeapSteady measures a Roller's steady state: records
// held for a window of starts (a minute of 20,000 records a second at
// 50 µs apart), one taken for each one added.
func BenchmarkRecHeapSteady(b *testing.B) {
	enc := store.AppendRecord(nil, &flow.Record{First: 1, Last: 2, Packets: 3})
	o := store.Origin{Exporter: "x"}
	const step = int64(50 * time.Microsecond)
	const held = int64(time.Minute) / step
	var h recHeap
	seq := uint64(0)
	for i := int64(0); i < held; i++ {
		seq++
		h.addEncoded(o, i*step, enc, seq)
	}
	next := held * step
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq++
		h.addEncoded(o, next, enc, seq)
		next += step
		h.take()
	}
}
