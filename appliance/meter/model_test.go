package meter

import (
	"cmp"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/flow"
)

// model is the documented flow-table semantics written the obvious way:
// a map of flows, every flow looked at on every expiry check. The table
// must export the same records.
type model struct {
	idle, active, tcpEnd int64
	max                  int
	flows                map[flow.Key]*mflow
	now, nextExpire      int64
	created              int
	out                  []flow.Record
}

type mflow struct {
	rec   flow.Record
	ended bool
	seq   int // creation order
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
				if v == nil || m.deadline(g) < m.deadline(v) || (m.deadline(g) == m.deadline(v) && g.seq < v.seq) {
					v = g
				}
			}
			if v.ended {
				m.end(v, flow.EndDetected)
			} else {
				m.end(v, flow.EndResource)
			}
		}
		f = &mflow{rec: flow.Record{Key: k, First: ts, Last: ts, IPVersion: p.IPVersion, Ingress: ifx, Direction: 255}, seq: m.created}
		m.created++
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

// sameRecords requires got and want to hold the same records, in any
// order, and returns want sorted.
func sameRecords(t *testing.T, got, want []flow.Record) []flow.Record {
	t.Helper()
	sortRecords(got)
	sortRecords(want)
	if len(got) != len(want) {
		t.Fatalf("%d records, model %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	return want
}

// sortRecords puts records in a total order (of their printed form), so
// that two multisets of records compare element by element.
func sortRecords(rs []flow.Record) {
	keys := make(map[*flow.Record]string, len(rs))
	ps := make([]*flow.Record, len(rs))
	for i := range rs {
		ps[i] = &rs[i]
		keys[ps[i]] = fmt.Sprintf("%+v", rs[i])
	}
	slices.SortFunc(ps, func(a, b *flow.Record) int { return cmp.Compare(keys[a], keys[b]) })
	out := make([]flow.Record, len(rs))
	for i, p := range ps {
		out[i] = *p
	}
	copy(rs, out)
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
			want := sameRecords(t, c.recs, m.out)
			reasons := map[flow.EndReason]int{}
			for i := range want {
				reasons[want[i].EndReason]++
			}
			t.Logf("%d records, by reason %v", len(want), reasons)
		})
	}
}

// FuzzAgainstModel meters packet sequences made from the fuzzer's bytes
// (5 bytes a packet: flow, time step, flags, size, lateness) through a
// small table and the model, and requires the same records.
func FuzzAgainstModel(f *testing.F) {
	f.Add([]byte("\x01\x10\x02\x40\x00\x02\x20\x10\x40\x00\x01\x30\x11\x40\x00\x03\xff\x04\x20\x01"))
	f.Add(make([]byte, 200))
	f.Fuzz(runModelCase)
}

func runModelCase(t *testing.T, b []byte) {
	cfg := Config{MaxFlows: 8, IdleTimeout: 2 * time.Second, ActiveTimeout: 5 * time.Second, TCPEndTimeout: time.Second, ExportBatch: 3}
	m := newModel(cfg)
	var c collect
	tab := New(&cfg, c.sink)
	now := int64(1552590234892000000)
	for ; len(b) >= 5; b = b[5:] {
		f := b[0] % 24
		p := pkt(uint16(f), 80, 0, 40+int(b[3]))
		switch b[2] % 4 {
		case 1:
			p.TCPFlags = tcpFIN | 0x10
		case 2:
			p.TCPFlags = tcpRST
		case 3:
			p.Proto = 17
		}
		if f%5 == 0 {
			p.Src = netip.MustParseAddr("2001:db8::1")
			p.IPVersion = 6
		}
		// Steps from 0 to ~16 s, so every timeout and the wheel's
		// slots and laps are crossed; now and then a late packet.
		now += int64(b[1]) * int64(b[1]) * int64(250*time.Microsecond)
		ts := now
		if b[4]&0x80 != 0 {
			ts -= int64(b[4]&0x7f) * int64(50*time.Millisecond)
		}
		m.add(&p, ts, 0)
		tab.Add(&p, ts, 0)
	}
	m.flush()
	tab.Flush()
	sameRecords(t, c.recs, m.out)
}
