package consolidate

import (
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/slab"
)

// burstRecords returns n records of distinct connections starting at
// t0+at, one direction each (pending unpaired flows).
func burstRecords(n int, at int64, seed uint64) []flow.Record {
	recs := benchRecords(n)
	for i := range recs {
		recs[i].First += at
		recs[i].Last += at
		recs[i].Dport = uint16(seed)
	}
	return recs
}

// TestPendingShrinks: after a burst of pending flows drains (completed
// by CompleteBefore), the pending state's slabs and key index shrink
// to what the steady traffic after it needs, and a Clone copies only
// that.
func TestPendingShrinks(t *testing.T) {
	c := New(&Config{Window: time.Second, Sink: func(*Biflow) {}})
	const burst = 200000
	recs := burstRecords(burst, 0, 1)
	for j := 0; j < len(recs); j += 256 {
		c.Add(Origin{Probe: "a"}, recs[j:min(j+256, len(recs))])
	}
	high, highSlots := c.conns.Size()/slab.Chunk, len(c.pending.slots)
	if high < burst/slab.Chunk || highSlots < burst {
		t.Fatalf("the burst holds %d chunks, %d slots: not a burst", high, highSlots)
	}
	// Steady traffic after it; the burst completes meanwhile.
	later := int64(time.Hour)
	for round := 0; round < 20; round++ {
		at := later + int64(round)*int64(10*time.Second)
		c.Add(Origin{Probe: "a"}, burstRecords(1000, at, uint64(round+2)))
		c.CompleteBefore(t0 + at)
	}
	pending := c.Stats().Pending
	if pending == 0 || pending > 2000 {
		t.Fatalf("%d pending after the drain, want the last rounds' (at most 2000)", pending)
	}
	// Each slab: the chunks its values need, and one spare.
	need := (pending+slab.Chunk-1)/slab.Chunk + 1
	for name, n := range map[string]int{"conns": c.conns.Size() / slab.Chunk, "obs": c.obs.Size() / slab.Chunk} {
		if n > need {
			t.Errorf("%s: %d chunks after the drain (%d at the burst), %d pending need %d", name, n, high, pending, need)
		}
	}
	if len(c.pending.slots) > 4*pending || len(c.pending.slots) < pending {
		t.Errorf("the key index has %d slots for %d keys after the drain (%d at the burst)", len(c.pending.slots), pending, highSlots)
	}
	cl := c.Clone(func(*Biflow) {})
	if cl.conns.Size()/slab.Chunk > need || len(cl.pending.slots) != len(c.pending.slots) {
		t.Errorf("the clone copies %d chunks, %d slots", cl.conns.Size()/slab.Chunk, len(cl.pending.slots))
	}
	c.Flush()
	checkEmpty(t, c)
	if c.conns.Size()/slab.Chunk > 2 || len(c.pending.slots) > minIndex {
		t.Errorf("flushed: %d chunks, %d slots", c.conns.Size()/slab.Chunk, len(c.pending.slots))
	}
}

// BenchmarkPendingDrainMemory reports the heap the pending state holds
// at a burst of one million pending flows and after it drained to the
// thousand flows of the steady traffic that follows (B/op is the
// allocation of the whole run).
func BenchmarkPendingDrainMemory(b *testing.B) {
	const burst = 1 << 20
	recs := burstRecords(burst, 0, 1)
	steady := make([][]flow.Record, 20)
	later := int64(time.Hour)
	for i := range steady {
		steady[i] = burstRecords(1000, later+int64(i)*int64(10*time.Second), uint64(i+2))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var m0, m1, m2 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		c := New(&Config{Window: time.Second, Sink: func(*Biflow) {}})
		for j := 0; j < len(recs); j += 256 {
			c.Add(Origin{Probe: "a"}, recs[j:j+256])
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		for r, s := range steady {
			c.Add(Origin{Probe: "a"}, s)
			c.CompleteBefore(t0 + later + int64(r)*int64(10*time.Second))
		}
		runtime.GC()
		runtime.ReadMemStats(&m2)
		debug.FreeOSMemory()
		b.ReportMetric(rssMiB(b), "MiB-RSS-drained")
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB-burst")
		b.ReportMetric(float64(m2.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB-drained")
		b.ReportMetric(float64(c.Stats().Pending), "pending-drained")
		runtime.KeepAlive(c)
	}
}

// rssMiB returns the process's resident set (VmRSS) in MiB.
func rssMiB(b *testing.B) float64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no resident set to read: %v", err)
	}
	for _, l := range bytes.Split(st, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseFloat(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb / 1024
		}
	}
	b.Skip("no VmRSS in /proc/self/status")
	return 0
}
