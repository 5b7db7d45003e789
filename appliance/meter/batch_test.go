package meter

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
)

// randomTrace is n packets over nflows flows (some IPv6, some ending with
// FIN or RST), in capture order with occasional out-of-order timestamps,
// spread so that idle, active and end timeouts and evictions all happen.
func randomTrace(seed uint64, n, nflows int) ([]decode.Packet, []int64) {
	r := rand.New(rand.NewPCG(seed, 7))
	pk := make([]decode.Packet, n)
	ts := make([]int64, n)
	now := int64(1552590234892000000)
	for i := range pk {
		f := r.IntN(nflows)
		p := pkt(uint16(f), uint16(80+f%3), 0x10, 40+r.IntN(1400))
		if f%5 == 0 {
			p.Src = netip.MustParseAddr("2001:db8::1")
			p.IPVersion = 6
		}
		if f%7 == 0 {
			p.Proto, p.TCPFlags = 17, 0
		} else if r.IntN(40) == 0 {
			p.TCPFlags |= tcpFIN
		} else if r.IntN(200) == 0 {
			p.TCPFlags |= tcpRST
		}
		p.VLAN = uint16(f % 2)
		now += int64(r.IntN(int(50 * time.Millisecond)))
		ts[i] = now
		if r.IntN(50) == 0 {
			ts[i] -= int64(time.Second) // late packet
		}
		pk[i] = p
	}
	return pk, ts
}

// TestAddBatchMatchesAdd meters the same packets one at a time and in
// batches of every size up to beyond BatchMax, and requires the same
// records in the same order and the same counters.
func TestAddBatchMatchesAdd(t *testing.T) {
	var seen [6]uint64
	for _, maxFlows := range []int{16, 300, 5000} {
		pk, ts := randomTrace(uint64(maxFlows), 60000, 300)
		ifx := make([]uint32, len(pk))
		for i := range ifx {
			ifx[i] = uint32(i % 3)
		}
		cfg := &Config{MaxFlows: maxFlows, IdleTimeout: 10 * time.Second, ActiveTimeout: 20 * time.Second, ExportBatch: 7}
		var want collect
		one := New(cfg, want.sink)
		for i := range pk {
			one.Add(&pk[i], ts[i], ifx[i])
		}
		one.Flush()
		for _, size := range []int{1, 3, BatchMax, BatchMax + 5, 100} {
			var got collect
			tab := New(cfg, got.sink)
			r := rand.New(rand.NewPCG(uint64(size), 1))
			for i := 0; i < len(pk); {
				n := min(1+r.IntN(size), len(pk)-i)
				tab.AddBatch(pk[i:i+n], ts[i:i+n], ifx[i:i+n])
				i += n
			}
			tab.Flush()
			if len(got.recs) != len(want.recs) {
				t.Fatalf("max %d batch %d: %d records, want %d", maxFlows, size, len(got.recs), len(want.recs))
			}
			for i := range want.recs {
				if !reflect.DeepEqual(got.recs[i], want.recs[i]) {
					t.Fatalf("max %d batch %d: record %d\n got %+v\nwant %+v", maxFlows, size, i, got.recs[i], want.recs[i])
				}
			}
			if g, w := tab.Stats(), one.Stats(); !reflect.DeepEqual(g, w) {
				t.Fatalf("max %d batch %d: stats\n got %+v\nwant %+v", maxFlows, size, g, w)
			}
		}
		s := one.Stats()
		for r := range s.Expired {
			seen[r] += s.Expired[r]
		}
	}
	for _, r := range []flow.EndReason{flow.EndIdle, flow.EndActive, flow.EndDetected, flow.EndForced, flow.EndResource} {
		if seen[r] == 0 {
			t.Errorf("the traces end no flow by %v: %v", r, seen)
		}
	}
}

func TestAddBatchDoesNotAllocate(t *testing.T) {
	tab := New(&Config{MaxFlows: 1024}, func([]flow.Record) {})
	pk, ts := randomTrace(1, 2000, 3000)
	ifx := make([]uint32, len(pk))
	var base int64
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < len(pk); i += BatchMax {
			n := min(BatchMax, len(pk)-i)
			for j := i; j < i+n; j++ {
				ts[j] += base
			}
			tab.AddBatch(pk[i:i+n], ts[i:i+n], ifx[i:i+n])
		}
		base = int64(time.Minute)
	})
	if allocs > 0 {
		t.Errorf("AddBatch allocates: %.1f allocs per 2000 packets", allocs)
	}
}

func BenchmarkAddBatch(b *testing.B) {
	tab := New(nil, func([]flow.Record) {})
	const nflows = 20000
	pk := make([]decode.Packet, nflows)
	ts := make([]int64, nflows)
	ifx := make([]uint32, nflows)
	for i := range pk {
		pk[i] = pkt(uint16(i), 443, 0x10, 1500)
		pk[i].Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var now int64
	for i := 0; i < b.N; i += BatchMax {
		o := i % nflows
		n := min(BatchMax, nflows-o)
		for j := o; j < o+n; j++ {
			now += 300
			ts[j] = now
		}
		tab.AddBatch(pk[o:o+n], ts[o:o+n], ifx[o:o+n])
	}
}

// BenchmarkChurn meters a stream in which most packets start a flow and
// about 100,000 flows are live, so creation and idle expiry (each a few
// cache misses) dominate: the shape of a large trace's DNS share.
func BenchmarkChurn(b *testing.B) {
	const live = 100000
	r := rand.New(rand.NewPCG(3, 4))
	pk := make([]decode.Packet, 1<<20)
	for i := range pk {
		f := r.Uint32()
		pk[i] = pkt(uint16(f), 53, 0, 80)
		pk[i].Proto = 17
		pk[i].Src = netip.AddrFrom4([4]byte{10, byte(f >> 16), byte(f >> 8), byte(f)})
	}
	// One packet every 10 µs and an idle timeout of live*10 µs.
	tab := New(&Config{IdleTimeout: live * 10 * time.Microsecond}, func([]flow.Record) {})
	ts := make([]int64, BatchMax)
	ifx := make([]uint32, BatchMax)
	b.ReportAllocs()
	b.ResetTimer()
	now := int64(0)
	for i := 0; i < b.N; i += BatchMax {
		for j := range ts {
			now += int64(10 * time.Microsecond)
			ts[j] = now
		}
		o := i & (len(pk) - 1)
		tab.AddBatch(pk[o:o+BatchMax], ts, ifx)
	}
}
