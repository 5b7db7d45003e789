package consolidate

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

// fed is one record of a probe, in feeding order.
type fed struct {
	probe Origin
	r     flow.Record
}

func tcp(src, dst string, sp, dp uint16, pk uint64, first, last time.Duration, flags uint8, end flow.EndReason) flow.Record {
	r := rec(src, dst, sp, dp, pk, 100*pk, first, last)
	r.TCPFlags, r.EndReason = flags, end
	return r
}

func biflowSummaries(bs []Biflow) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s:%d>%s:%d %d/%d merged %d", b.Src, b.Sport, b.Dst, b.Dport, b.Packets, b.RPackets, b.Merged))
	}
	slices.Sort(out)
	return out
}

// TestConnectionDefinition checks the package's biflow definition, fed
// both as the report feeds stored records (Batch, in start order) and as
// probes deliver them live (in the listed order, each probe's records
// in its export order).
func TestConnectionDefinition(t *testing.T) {
	const (
		fin = 0x01
		syn = 0x02
		rst = 0x04
		ack = 0x10
	)
	pa, pb := Origin{Probe: "192.0.2.250", Domain: 10}, Origin{Probe: "192.0.2.250", Domain: 11}
	c, s := "10.0.0.1", "10.0.0.2"
	tests := []struct {
		name string
		recs []fed
		want []string
	}{
		{
			name: "fin ends a connection: the reused port pair is a new one",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 5, 0, time.Second, syn|ack|fin, flow.EndDetected)},
				{pa, tcp(s, c, 80, 40000, 4, 10*time.Millisecond, time.Second, syn|ack|fin, flow.EndDetected)},
				{pa, tcp(c, s, 40000, 80, 3, 20*time.Second, 21*time.Second, syn|ack|rst, flow.EndDetected)},
				{pa, tcp(s, c, 80, 40000, 2, 20*time.Second, 21*time.Second, syn|ack, flow.EndIdle)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 3/2 merged 0", "10.0.0.1:40000>10.0.0.2:80 5/4 merged 0"},
		},
		{
			name: "active and idle timeouts continue within the window",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 5, 0, time.Minute, syn|ack, flow.EndActive)},
				{pa, tcp(c, s, 40000, 80, 6, time.Minute, 2*time.Minute, ack, flow.EndIdle)},
				{pa, tcp(c, s, 40000, 80, 7, 3*time.Minute, 3*time.Minute, ack|fin, flow.EndDetected)},
				{pa, tcp(s, c, 80, 40000, 4, 0, 3*time.Minute, syn|ack|fin, flow.EndDetected)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 18/4 merged 0"},
		},
		{
			name: "more than a window apart: two connections",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 5, 0, time.Second, syn|ack, flow.EndIdle)},
				{pa, tcp(c, s, 40000, 80, 6, 200*time.Second, 201*time.Second, ack, flow.EndIdle)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 5/0 merged 0", "10.0.0.1:40000>10.0.0.2:80 6/0 merged 0"},
		},
		{
			// Split by direction: probe a's records of both connections
			// arrive before probe b's; each reverse finds its own.
			name: "late reverse of an earlier connection from another probe",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 5, 0, time.Second, syn|ack|fin, flow.EndDetected)},
				{pa, tcp(c, s, 40000, 80, 3, 20*time.Second, 21*time.Second, syn|ack|fin, flow.EndDetected)},
				{pb, tcp(s, c, 80, 40000, 4, 10*time.Millisecond, time.Second, syn|ack|fin, flow.EndDetected)},
				{pb, tcp(s, c, 80, 40000, 2, 20*time.Second+10*time.Millisecond, 21*time.Second, syn|ack|fin, flow.EndDetected)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 3/2 merged 0", "10.0.0.1:40000>10.0.0.2:80 5/4 merged 0"},
		},
		{
			// Two probes behind one address, told apart by domain; a
			// single-packet RST seen by both at the same millisecond is
			// one observation each, not a new connection.
			name: "duplicates of probes sharing an address",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 1, time.Second, time.Second, rst, flow.EndDetected)},
				{pb, tcp(c, s, 40000, 80, 1, time.Second, time.Second, rst, flow.EndDetected)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 1/0 merged 1"},
		},
		{
			// Probe b's clock is 3 s ahead of a's: its records of the
			// same short connections start after a's ended by FIN. Within
			// Config.Skew they are duplicates, not new connections (two
			// probes over the same capture, one shifted 3 s, counted
			// +60 % packets); a record of b starting 10 s after the FIN
			// is the port pair reused.
			name: "clocks apart within the skew: duplicates",
			recs: []fed{
				{pa, tcp(c, s, 40000, 80, 5, 0, time.Second, syn|ack|fin, flow.EndDetected)},
				{pa, tcp(s, c, 80, 40000, 4, 10*time.Millisecond, time.Second, syn|ack|fin, flow.EndDetected)},
				{pb, tcp(c, s, 40000, 80, 5, 3*time.Second, 4*time.Second, syn|ack|fin, flow.EndDetected)},
				{pb, tcp(s, c, 80, 40000, 4, 3*time.Second+10*time.Millisecond, 4*time.Second, syn|ack|fin, flow.EndDetected)},
				{pb, tcp(c, s, 40000, 80, 2, 11*time.Second, 12*time.Second, syn|ack|fin, flow.EndDetected)},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 2/0 merged 0", "10.0.0.1:40000>10.0.0.2:80 5/4 merged 2"},
		},
		{
			name: "vlan is not part of the key",
			recs: []fed{
				{pa, func() flow.Record {
					r := tcp(c, s, 40000, 80, 5, 0, time.Second, syn|ack, flow.EndIdle)
					r.VLAN = 10
					return r
				}()},
				{pb, func() flow.Record {
					r := tcp(s, c, 80, 40000, 4, 0, time.Second, syn|ack, flow.EndIdle)
					r.VLAN = 20
					return r
				}()},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 5/4 merged 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := New(nil)
			for _, f := range tt.recs {
				live.Add(f.probe, []flow.Record{f.r})
			}
			live.Flush()
			sorted := slices.Clone(tt.recs)
			slices.SortStableFunc(sorted, func(a, b fed) int { return cmp.Compare(a.r.First, b.r.First) })
			batch := New(&Config{Batch: true})
			for _, f := range sorted {
				batch.AddRecord(f.probe, &f.r, false)
			}
			batch.Flush()
			for name, got := range map[string][]string{"live": biflowSummaries(live.Biflows()), "batch": biflowSummaries(batch.Biflows())} {
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s: got %q\nwant %q", name, got, tt.want)
				}
			}
			if live.Stats().Pending != 0 || batch.Stats().Pending != 0 {
				t.Errorf("pending after Flush: %d, %d", live.Stats().Pending, batch.Stats().Pending)
			}
		})
	}
}

func TestKeepDuplicatesAndUnknown(t *testing.T) {
	a := rec("192.0.2.1", "198.51.100.7", 40001, 80, 10, 1000, 0, time.Second)
	for _, keep := range []bool{false, true} {
		c := New(&Config{KeepDuplicates: keep})
		c.AddRecord(Origin{Probe: "p1"}, &a, false)
		c.AddRecord(Origin{Probe: "p2"}, &a, true)
		c.Flush()
		bs := c.Biflows()
		if len(bs) != 1 {
			t.Fatalf("keep %v: %d biflows", keep, len(bs))
		}
		b := bs[0]
		wantPk, wantMerged, wantUnknown := uint64(10), 1, false
		if keep {
			wantPk, wantMerged, wantUnknown = 20, 0, true
		}
		if b.Packets != wantPk || b.Merged != wantMerged || b.SamplingUnknown != wantUnknown || c.Stats().Unscaled != 1 {
			t.Errorf("keep %v: %+v, unscaled %d", keep, b, c.Stats().Unscaled)
		}
	}
	// An override names the sampling: the record is not unknown.
	c := New(&Config{Overrides: map[string]Override{"p1": {PacketInterval: 4}}})
	c.AddRecord(Origin{Probe: "p1"}, &a, true)
	c.Flush()
	if b := c.Biflows()[0]; b.SamplingUnknown || b.Est.Packets != 40 || c.Stats().Unscaled != 0 {
		t.Errorf("override: %+v", b)
	}
}
