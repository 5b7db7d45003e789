package consolidate

import (
	"bytes"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

// TestSlabLowestFirst allocates and releases at random and checks that
// alloc hands out the lowest free index, never one in use, and that
// the chunks beyond the one holding the highest index in use but one
// are given back.
func TestSlabLowestFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s slab[uint64]
	used := make([]bool, 1<<14) // by index
	var keys []uint32           // in use, any order
	for step := 0; step < 60000; step++ {
		// Bursts up (about 3000 indices, three chunks), then drains.
		grow := (step/5000)%2 == 0
		if len(keys) == 0 || (grow && rng.IntN(10) < 8) || (!grow && rng.IntN(10) < 2) {
			i := s.alloc()
			low := uint32(1)
			for used[low] {
				low++
			}
			if i != low {
				t.Fatalf("step %d: alloc gave %d, the lowest free is %d", step, i, low)
			}
			if *s.at(i) != 0 && *s.at(i) != uint64(i) {
				t.Fatalf("step %d: index %d holds %d", step, i, *s.at(i))
			}
			*s.at(i) = uint64(i)
			used[i] = true
			keys = append(keys, i)
		} else {
			j := rng.IntN(len(keys))
			k := keys[j]
			keys[j] = keys[len(keys)-1]
			keys = keys[:len(keys)-1]
			used[k] = false
			s.release(k)
		}
		if s.inUse() != len(keys) {
			t.Fatalf("step %d: %d in use, want %d", step, s.inUse(), len(keys))
		}
		top := len(used) - 1
		for top > 0 && !used[top] {
			top--
		}
		if want := top>>slabShift + 2; len(s.chunks) > want {
			t.Fatalf("step %d: %d chunks for a highest index %d (want at most %d)", step, len(s.chunks), top, want)
		}
	}
}

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
	high, highSlots := len(c.conns.chunks), len(c.pending.slots)
	if high < burst/slabChunk || highSlots < burst {
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
	need := (pending+slabChunk-1)/slabChunk + 1
	for name, n := range map[string]int{"conns": len(c.conns.chunks), "obs": len(c.obs.chunks)} {
		if n > need {
			t.Errorf("%s: %d chunks after the drain (%d at the burst), %d pending need %d", name, n, high, pending, need)
		}
	}
	if len(c.pending.slots) > 4*pending || len(c.pending.slots) < pending {
		t.Errorf("the key index has %d slots for %d keys after the drain (%d at the burst)", len(c.pending.slots), pending, highSlots)
	}
	cl := c.Clone(func(*Biflow) {})
	if len(cl.conns.chunks) > need || len(cl.pending.slots) != len(c.pending.slots) {
		t.Errorf("the clone copies %d chunks, %d slots", len(cl.conns.chunks), len(cl.pending.slots))
	}
	c.Flush()
	checkEmpty(t, c)
	if len(c.conns.chunks) > 2 || len(c.pending.slots) > minIndex {
		t.Errorf("flushed: %d chunks, %d slots", len(c.conns.chunks), len(c.pending.slots))
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
