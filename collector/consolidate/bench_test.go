package consolidate

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

func benchRecords(n int) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		recs[i] = flow.Record{
			Key: flow.Key{Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
				Dst: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Sport: uint16(i), Dport: 443, Proto: 6},
			Packets: 10, Octets: 5000, First: t0 + int64(i)*1000, Last: t0 + int64(i)*1000 + 1e9,
			Aggregate: uint32(i % 8), Category: uint16(i % 5), SamplingPacketInterval: 10,
		}
	}
	return recs
}

// BenchmarkConsolidate measures records per second through pairing,
// duplicate checks, sampling correction and usage statistics, with one
// million concurrent connections: each connection's forward records are
// added first (1M pending unpaired flows), then the reverse records pair
// them, then Flush completes them.
func BenchmarkConsolidate(b *testing.B) {
	const conns = 1 << 20
	fwd := benchRecords(conns)
	rev := make([]flow.Record, conns)
	for i := range fwd {
		r := fwd[i]
		r.Src, r.Dst, r.Sport, r.Dport = r.Dst, r.Src, r.Dport, r.Sport
		rev[i] = r
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := New(&Config{Window: time.Hour, Sink: func(*Biflow) {}})
		for j := 0; j < conns; j += 256 {
			c.Add(Origin{Probe: "a"}, fwd[j:j+256])
		}
		for j := 0; j < conns; j += 256 {
			c.Add(Origin{Probe: "b"}, rev[j:j+256])
		}
		c.Flush()
	}
	b.ReportMetric(float64(2*conns*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPendingMemory measures the heap held per pending unpaired
// flow with one million of them.
func BenchmarkPendingMemory(b *testing.B) {
	benchPending(b, false, false, false)
}

// BenchmarkPendingBiflowMemory measures the heap held per pending
// connection with both directions seen (a biflow waiting for its
// completion), one million of them.
func BenchmarkPendingBiflowMemory(b *testing.B) {
	benchPending(b, true, false, false)
}

// BenchmarkPendingSymptomMemory is BenchmarkPendingBiflowMemory with a
// symptom in every record (as the default symptom database names most
// flows with payload: WEB, TLS, DNS, ...).
func BenchmarkPendingSymptomMemory(b *testing.B) {
	benchPending(b, true, true, false)
}

// BenchmarkPendingAppMemory is BenchmarkPendingSymptomMemory with
// application metadata: a TLS server name (one of 5000) in every
// forward record, each record its own copy as decoding makes them. The
// records are held throughout, so the figure is what the pending state
// adds to them, not the names' bytes.
func BenchmarkPendingAppMemory(b *testing.B) {
	benchPending(b, true, true, true)
}

func benchPending(b *testing.B, paired, symptoms, app bool) {
	const conns = 1 << 20
	fwd := benchRecords(conns)
	for i := range fwd {
		if symptoms {
			fwd[i].Symptoms = []flow.SymptomCount{{ID: uint16(i % 21), Count: 1}}
		}
		if app {
			fwd[i].App.ServerName = fmt.Sprintf("www.site-%d.example.com", i%5000)
		}
	}
	var rev []flow.Record
	if paired {
		rev = make([]flow.Record, conns)
		for i := range fwd {
			r := fwd[i]
			r.Src, r.Dst, r.Sport, r.Dport = r.Dst, r.Src, r.Dport, r.Sport
			r.App = flow.App{}
			rev[i] = r
		}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		c := New(&Config{Window: time.Hour, Sink: func(*Biflow) {}})
		for j := 0; j < conns; j += 256 {
			c.Add(Origin{Probe: "a"}, fwd[j:j+256])
		}
		for j := 0; j < len(rev); j += 256 {
			c.Add(Origin{Probe: "b"}, rev[j:j+256])
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if c.Stats().Pending != conns {
			b.Fatalf("pending %d", c.Stats().Pending)
		}
		unit := "B/pending-flow"
		if paired {
			unit = "B/pending-biflow"
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/conns, unit)
		runtime.KeepAlive(c)
	}
}
