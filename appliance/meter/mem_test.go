package meter

import (
	"net/netip"
	"runtime"
	"testing"
	"unsafe"

	"github.com/mira-project/mira/flow"
)

// BenchmarkTableMemory measures the heap a table holds per active flow
// with one million of them (issue 13, goal 5): the entry (key, counters,
// per-direction symptom state and counts) plus its share of the index and
// of the timer wheel. Each flow has seen one packet; none has ended.
func BenchmarkTableMemory(b *testing.B) {
	const flows = 1 << 20
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		tab := New(&Config{MaxFlows: flows}, func([]flow.Record) {})
		p := pkt(0, 443, 0x02, 60)
		for f := 0; f < flows; f++ {
			p.Src = netip.AddrFrom4([4]byte{10, byte(f >> 16), byte(f >> 8), byte(f)})
			p.Sport = uint16(f)
			tab.Add(&p, 1552590234892000000+int64(f), 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if st := tab.Stats(); st.Active != flows {
			b.Fatalf("active %d, want %d", st.Active, flows)
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/flows, "B/flow")
		b.ReportMetric(float64(unsafe.Sizeof(entry{})), "B/entry")
		runtime.KeepAlive(tab)
	}
}
