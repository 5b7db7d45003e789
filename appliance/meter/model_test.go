package meter

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/flow"
)

// model is the documented flow-table semantics written the obvious way:
// a map of flows, every flow looked at on every expiry check. The table
// must export the same records.
type model struct {
	idle, active, tcpEnd int64
	max                  int
	flows                map[flow.Key]*mflow
	now, nextExpire      int64
	out                  []flow.Record
}

type mflow struct {
	rec   flow.Record
	ended bool
}

func newModel(c Config) *model {
	d := c.withDefaults()
	return &model{idle: int64(d.IdleTimeout), active: int64(d.ActiveTimeout), tcpEnd: int64(d.TCPEndTimeout), max: d.MaxFlows, flows: map[flow.Key]*mflow{}}
}

func (m *model) deadline(f *mflow) int64 {
	to := m.idle
	if f.ended {
		to = m.tcpEnd
	}
	return min(f.rec.First+m.active, f.rec.Last+to)
}

func (m *model) end(f *mflow, r flow.EndReason) {
	f.rec.EndReason = r
	m.out = append(m.out, f.rec)
	delete(m.flows, f.rec.Key)
}

func (m *model) expire() {
	for _, f := range m.flows {
		if m.deadline(f) > m.now {
			continue
		}
		to := m.idle
		if f.ended {
			to = m.tcpEnd
		}
		switch {
		case f.rec.First+m.active <= f.rec.Last+to:
			m.end(f, flow.EndActive)
		case f.ended:
			m.end(f, flow.EndDetected)
		default:
			m.end(f, flow.EndIdle)
		}
	}
}

func (m *model) add(p *decode.Packet, ts int64, ifx uint32) {
	if ts > m.now {
		m.now = ts
		if ts >= m.nextExpire {
			m.nextExpire = ts + expireStep
			m.expire()
		}
	}
	k := flow.Key{Src: p.Src, Dst: p.Dst, Sport: p.Sport, Dport: p.Dport, Proto: p.Proto, VLAN: p.VLAN}
	f := m.flows[k]
	if f != nil && ts-f.rec.First >= m.active {
		m.end(f, flow.EndActive)
		f = nil
	}
	if f == nil {
		if len(m.flows) == m.max {
			var v *mflow
			for _, g := range m.flows {
				if v == nil || m.deadline(g) < m.deadline(v) {
					v = g
				}
			}
			if v.ended {
				m.end(v, flow.EndDetected)
			} else {
				m.end(v, flow.EndResource)
			}
		}
		f = &mflow{rec: flow.Record{Key: k, First: ts, Last: ts, IPVersion: p.IPVersion, Ingress: ifx, Direction: 255}}
		m.flows[k] = f
	}
	f.rec.Packets++
	f.rec.Octets += uint64(p.OuterLen)
	f.rec.InnerOctets += uint64(p.InnerLen)
	f.rec.Last = max(f.rec.Last, ts)
	f.rec.First = min(f.rec.First, ts)
	f.rec.TCPFlags |= p.TCPFlags
	if p.Proto == 6 && p.TCPFlags&(tcpFIN|tcpRST) != 0 {
		f.ended = true
	}
}

func (m *model) flush() {
	for _, f := range m.flows {
		if f.ended {
			m.end(f, flow.EndDetected)
		} else {
			m.end(f, flow.EndForced)
		}
	}
}

func sortRecords(rs []flow.Record) {
	slices.SortFunc(rs, func(a, b flow.Record) int {
		return cmp.Or(cmp.Compare(fmt.Sprint(a.Key), fmt.Sprint(b.Key)), cmp.Compare(a.First, b.First), cmp.Compare(a.Last, b.Last))
	})
}

// TestAgainstModel meters random traces (late packets, FIN/RST, IPv6,
// VLANs) through tables with timeouts short enough that every end reason
// happens, including evictions from a full table, and requires exactly
// the model's records.
func TestAgainstModel(t *testing.T) {
	for _, tc := range []struct {
		nflows, maxFlows int
		idle, active     time.Duration
		jumps            bool // capture time jumps 10 minutes now and then
	}{
		{300, 16, 10 * time.Second, 20 * time.Second, false},
		{300, 5000, 3 * time.Second, 8 * time.Second, false},
		{2000, 700, 30 * time.Second, 120 * time.Second, false},
		{50, 64, time.Hour, 5 * time.Second, false},
		{300, 5000, 10 * time.Second, 20 * time.Second, true},
	} {
		name := fmt.Sprintf("flows%d-max%d-idle%v-active%v-jumps%v", tc.nflows, tc.maxFlows, tc.idle, tc.active, tc.jumps)
		t.Run(name, func(t *testing.T) {
			pk, ts := randomTrace(uint64(tc.nflows+tc.maxFlows), 40000, tc.nflows)
			if tc.jumps {
				for i := range ts {
					ts[i] += int64(i/5000) * int64(10*time.Minute)
				}
			}
			cfg := Config{MaxFlows: tc.maxFlows, IdleTimeout: tc.idle, ActiveTimeout: tc.active, ExportBatch: 5}
			m := newModel(cfg)
			var c collect
			tab := New(&cfg, c.sink)
			for i := range pk {
				m.add(&pk[i], ts[i], 0)
				tab.Add(&pk[i], ts[i], 0)
			}
			m.flush()
			tab.Flush()
			got, want := c.recs, m.out
			sortRecords(got)
			sortRecords(want)
			if len(got) != len(want) {
				t.Fatalf("%d records, model %d", len(got), len(want))
			}
			reasons := map[flow.EndReason]int{}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("record %d\n got %+v\nwant %+v", i, got[i], want[i])
				}
				reasons[want[i].EndReason]++
			}
			t.Logf("%d records, by reason %v", len(want), reasons)
		})
	}
}
