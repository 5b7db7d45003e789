package report

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report/reporttest"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

var t0 = reporttest.T0

// uf describes a uniflow compactly: "10.0.0.1:40000>10.0.0.2:80" plus
// times in seconds after t0.
type uf struct {
	ends        string
	start, stop float64
	pkts        uint64
	flags       uint8
	end         flow.EndReason
}

func (u uf) record(proto uint8, vlan uint16) flow.Record {
	src, dst, _ := strings.Cut(u.ends, ">")
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return flow.Record{
		Key:     flow.Key{Src: s.Addr(), Dst: d.Addr(), Sport: s.Port(), Dport: d.Port(), Proto: proto, VLAN: vlan},
		Packets: u.pkts, Octets: u.pkts * 100,
		First:    t0.Add(time.Duration(math.Round(u.start * 1e9))).UnixNano(),
		Last:     t0.Add(time.Duration(math.Round(u.stop * 1e9))).UnixNano(),
		TCPFlags: u.flags, EndReason: u.end,
	}
}

// summary renders a biflow as "src>dst pkts/rpkts flows".
func summary(b *Biflow) string {
	src := netip.AddrPortFrom(b.Src, b.Sport)
	dst := netip.AddrPortFrom(b.Dst, b.Dport)
	return fmt.Sprintf("%s>%s %d/%d %d", src, dst, b.Packets, b.RPackets, b.Flows)
}

// TCP flag bits in flow.Record.TCPFlags.
const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	psh = 0x08
	ack = 0x10
)

func TestPairing(t *testing.T) {
	const (
		c  = "10.0.0.1:40000"
		s  = "10.0.0.2:80"
		cs = c + ">" + s
		sc = s + ">" + c
	)
	tests := []struct {
		name   string
		proto  uint8
		window time.Duration
		flows  []uf
		want   []string
	}{
		{
			name: "tcp bare syn opens though the reset was seen first", proto: 6,
			flows: []uf{
				{ends: sc, start: 0.9, stop: 0.9, pkts: 1, flags: rst | ack, end: flow.EndDetected},
				{ends: cs, start: 1.0, stop: 1.0, pkts: 1, flags: syn, end: flow.EndIdle},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 1/1 2"},
		},
		{
			name: "tcp syn on one side only opens", proto: 6,
			flows: []uf{
				{ends: sc, start: 0, stop: 5, pkts: 7, flags: ack | psh | fin, end: flow.EndDetected},
				{ends: cs, start: 0.5, stop: 5, pkts: 9, flags: syn | ack | psh | fin, end: flow.EndDetected},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 9/7 2"},
		},
		{
			name: "tcp both syn: the earlier opens", proto: 6,
			flows: []uf{
				{ends: sc, start: 0.2, stop: 5, pkts: 7, flags: syn | ack | fin},
				{ends: cs, start: 0.1, stop: 5, pkts: 9, flags: syn | ack | fin},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 9/7 2"},
		},
		{
			name: "tcp same start: the client port side opens", proto: 6,
			flows: []uf{
				{ends: "172.16.114.207:25>194.7.248.153:2127", start: 0, stop: 0.233, pkts: 44, flags: syn | ack | psh | fin},
				{ends: "194.7.248.153:2127>172.16.114.207:25", start: 0, stop: 0.233, pkts: 51, flags: syn | ack | psh | fin},
			},
			want: []string{"194.7.248.153:2127>172.16.114.207:25 51/44 2"},
		},
		{
			name: "udp first seen opens", proto: 17,
			flows: []uf{
				{ends: "10.0.0.2:53>10.0.0.1:5353", start: 0.01, stop: 0.01, pkts: 1},
				{ends: "10.0.0.1:5353>10.0.0.2:53", start: 0, stop: 0, pkts: 1},
			},
			want: []string{"10.0.0.1:5353>10.0.0.2:53 1/1 2"},
		},
		{
			name: "reverse after the window stays separate", proto: 17,
			flows: []uf{
				{ends: cs, start: 0, stop: 10, pkts: 3, end: flow.EndIdle},
				{ends: sc, start: 200, stop: 210, pkts: 4, end: flow.EndIdle},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 3/0 1", "10.0.0.2:80>10.0.0.1:40000 4/0 1"},
		},
		{
			name: "reverse inside a wider window pairs", proto: 17, window: 300 * time.Second,
			flows: []uf{
				{ends: cs, start: 0, stop: 10, pkts: 3, end: flow.EndIdle},
				{ends: sc, start: 200, stop: 210, pkts: 4, end: flow.EndIdle},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 3/4 2"},
		},
		{
			name: "active timeout splits are summed", proto: 6,
			flows: []uf{
				{ends: cs, start: 0, stop: 60, pkts: 10, flags: syn | ack, end: flow.EndActive},
				{ends: sc, start: 0.01, stop: 60, pkts: 20, flags: syn | ack, end: flow.EndActive},
				{ends: cs, start: 60.5, stop: 120, pkts: 11, flags: ack, end: flow.EndActive},
				{ends: sc, start: 60.6, stop: 120, pkts: 21, flags: ack, end: flow.EndActive},
				{ends: cs, start: 120.5, stop: 130, pkts: 12, flags: ack | fin, end: flow.EndDetected},
				{ends: sc, start: 120.6, stop: 130, pkts: 22, flags: ack | fin, end: flow.EndDetected},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 33/63 6"},
		},
		{
			name: "idle-ended records within the window continue", proto: 17,
			flows: []uf{
				{ends: cs, start: 0, stop: 1, pkts: 1, end: flow.EndIdle},
				{ends: sc, start: 0.01, stop: 0.02, pkts: 2, end: flow.EndIdle},
				{ends: cs, start: 50, stop: 51, pkts: 3, end: flow.EndIdle},
				{ends: sc, start: 50.01, stop: 50.02, pkts: 4, end: flow.EndIdle},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 4/6 4"},
		},
		{
			name: "reused tuple after fin pairs each connection", proto: 6,
			flows: []uf{
				{ends: cs, start: 0, stop: 1, pkts: 5, flags: syn | ack | fin, end: flow.EndDetected},
				{ends: sc, start: 0.01, stop: 1.01, pkts: 4, flags: syn | ack | fin, end: flow.EndDetected},
				// The last ACK, after the meter closed the flow, starts a
				// new connection; idle-ended, it is continued by the
				// next record within the window.
				{ends: cs, start: 1.02, stop: 1.02, pkts: 1, flags: ack, end: flow.EndIdle},
				{ends: cs, start: 50, stop: 51, pkts: 3, flags: syn | ack | rst, end: flow.EndDetected},
				{ends: sc, start: 50.01, stop: 50.02, pkts: 2, flags: syn | ack, end: flow.EndIdle},
				// After the RST: a new connection again.
				{ends: cs, start: 60, stop: 61, pkts: 7, flags: syn | ack, end: flow.EndIdle},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 4/2 3", "10.0.0.1:40000>10.0.0.2:80 5/4 2", "10.0.0.1:40000>10.0.0.2:80 7/0 1"},
		},
		{
			name: "reverse of the first connection reported after the next one started", proto: 6,
			flows: []uf{
				{ends: cs, start: 0, stop: 1, pkts: 5, flags: syn | ack | fin, end: flow.EndDetected},
				{ends: cs, start: 20, stop: 21, pkts: 3, flags: syn | ack | fin, end: flow.EndDetected},
				{ends: sc, start: 0.5, stop: 1, pkts: 4, flags: syn | ack | fin, end: flow.EndDetected},
				{ends: sc, start: 20.5, stop: 21, pkts: 2, flags: syn | ack | fin, end: flow.EndDetected},
			},
			want: []string{"10.0.0.1:40000>10.0.0.2:80 3/2 2", "10.0.0.1:40000>10.0.0.2:80 5/4 2"},
		},
		{
			name: "unpaired flow keeps its direction", proto: 17,
			flows: []uf{{ends: sc, start: 0, stop: 1, pkts: 5}},
			want:  []string{"10.0.0.2:80>10.0.0.1:40000 5/0 1"},
		},
		{
			name: "icmp echo request opens though the reply came first", proto: 1,
			flows: []uf{
				{ends: "10.0.0.2:0>10.0.0.1:0", start: 0.4, stop: 3, pkts: 3},    // reply: type 0
				{ends: "10.0.0.1:0>10.0.0.2:2048", start: 0.5, stop: 3, pkts: 3}, // request: 8<<8
			},
			want: []string{"10.0.0.1:0>10.0.0.2:2048 3/3 2"},
		},
		{
			name: "icmpv6 echo pairs", proto: 58,
			flows: []uf{
				{ends: "[2001:db8::1]:0>[2001:db8::2]:32768", start: 0, stop: 1, pkts: 2}, // 128<<8
				{ends: "[2001:db8::2]:0>[2001:db8::1]:33024", start: 0, stop: 1, pkts: 2}, // 129<<8
			},
			want: []string{"[2001:db8::1]:0>[2001:db8::2]:32768 2/2 2"},
		},
		{
			name: "icmp unreachable does not pair with echo", proto: 1,
			flows: []uf{
				{ends: "10.0.0.1:0>10.0.0.2:2048", start: 0, stop: 1, pkts: 1},
				{ends: "10.0.0.2:0>10.0.0.1:769", start: 0, stop: 1, pkts: 1}, // 3/1
			},
			want: []string{"10.0.0.1:0>10.0.0.2:2048 1/0 1", "10.0.0.2:0>10.0.0.1:769 1/0 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var flows []store.StoredFlow
			for _, u := range tt.flows {
				flows = append(flows, store.StoredFlow{Origin: store.Origin{Exporter: "p"}, Record: u.record(tt.proto, 0)})
			}
			rep := Build(flows, Options{Window: tt.window})
			var got []string
			for i := range rep.Biflows {
				got = append(got, summary(&rep.Biflows[i]))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// VLAN is not part of the connection: two probes may see the two
// directions on links tagged differently.
func TestPairingIgnoresVLAN(t *testing.T) {
	a := uf{ends: "10.0.0.1:40000>10.0.0.2:53", start: 0, stop: 1, pkts: 1}.record(17, 10)
	b := uf{ends: "10.0.0.2:53>10.0.0.1:40000", start: 0, stop: 1, pkts: 1}.record(17, 11)
	rep := Build([]store.StoredFlow{{Origin: store.Origin{Exporter: "p", Domain: 1}, Record: a},
		{Origin: store.Origin{Exporter: "q", Domain: 1}, Record: b}}, Options{})
	if len(rep.Biflows) != 1 || rep.Biflows[0].VLAN != 10 || rep.Biflows[0].RPackets != 1 {
		t.Fatalf("got %+v, want one biflow with the initiator's VLAN 10", rep.Biflows)
	}
}

func TestBiflowTimesSpanBothDirections(t *testing.T) {
	a := uf{ends: "10.0.0.1:1>10.0.0.2:2", start: 1, stop: 2, pkts: 1}.record(17, 0)
	b := uf{ends: "10.0.0.2:2>10.0.0.1:1", start: 1.5, stop: 4, pkts: 1}.record(17, 0)
	rep := Build([]store.StoredFlow{{Record: a}, {Record: b}}, Options{})
	if len(rep.Biflows) != 1 {
		t.Fatalf("got %d biflows", len(rep.Biflows))
	}
	bf := rep.Biflows[0]
	if int64(bf.First) != a.First || int64(bf.Last) != b.Last {
		t.Errorf("span %s - %s, want %s - %s", Timestamp(bf.First), Timestamp(bf.Last), Timestamp(a.First), Timestamp(b.Last))
	}
}
