// Package reporttest holds the fixture that the report package's tests
// and the commands built on it (cmd/mira's report and flows) share: a
// small mixed set of stored flows with their names and collector
// counters, and a store holding them.
package reporttest

import (
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// T0 is the fixture's time origin: the flows' times are offsets from it.
var T0 = time.Date(2019, 3, 14, 19, 3, 54, 892e6, time.UTC)

// The two probes of the fixture.
var (
	ProbeA = store.Origin{Exporter: "probe-a", Domain: 1}
	ProbeB = store.Origin{Exporter: "probe-b", Domain: 2}
)

// TCP flag bits in flow.Record.TCPFlags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
)

// Uniflow describes a unidirectional flow compactly: Ends is
// "10.0.0.1:40000>10.0.0.2:80", Start and Stop are seconds after T0.
type Uniflow struct {
	Ends        string
	Start, Stop float64
	Packets     uint64
	Flags       uint8
	End         flow.EndReason
}

// Record returns u as a flow record of protocol proto on vlan, with 100
// octets per packet.
func (u Uniflow) Record(proto uint8, vlan uint16) flow.Record {
	src, dst, _ := strings.Cut(u.Ends, ">")
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return flow.Record{
		Key:     flow.Key{Src: s.Addr(), Dst: d.Addr(), Sport: s.Port(), Dport: d.Port(), Proto: proto, VLAN: vlan},
		Packets: u.Packets, Octets: u.Packets * 100,
		First:    T0.Add(time.Duration(math.Round(u.Start * 1e9))).UnixNano(),
		Last:     T0.Add(time.Duration(math.Round(u.Stop * 1e9))).UnixNano(),
		TCPFlags: u.Flags, EndReason: u.End,
	}
}

// Names are the fixture's symptom, category and aggregate names.
func Names() store.Names {
	return store.Names{
		Symptoms:   map[uint16]string{1: "MAIL", 2: "HTTP-GET", 3: "EXE"},
		Categories: map[uint16]string{1: "Mail", 2: "Web"},
		Aggregates: map[uint32]string{1: "campus-out", 2: "campus-in"},
	}
}

// Flows is a small mixed capture: an SMTP session seen by two probes, a
// sampled web download with symptoms (HTTP Host www.YouTube.com:80), a DNS
// exchange over IPv6 (api.example.net, NXDOMAIN), a ping and an
// unanswered SYN.
func Flows() []store.StoredFlow {
	mk := func(o store.Origin, u Uniflow, proto uint8, f func(*flow.Record)) store.StoredFlow {
		r := u.Record(proto, 0)
		if f != nil {
			f(&r)
		}
		return store.StoredFlow{Origin: o, Record: r}
	}
	return []store.StoredFlow{
		mk(ProbeA, Uniflow{Ends: "192.0.2.1:40001>198.51.100.7:25", Start: 0, Stop: 8.479, Packets: 12, Flags: SYN | ACK | PSH | FIN, End: flow.EndDetected}, 6,
			func(r *flow.Record) {
				r.Octets = 2301
				r.ScannedOctets = 1653 // payload, less what the scan limit left
				r.Aggregate, r.Category = 1, 1
				r.Symptoms = []flow.SymptomCount{{ID: 1, Count: 3}}
			}),
		mk(ProbeB, Uniflow{Ends: "198.51.100.7:25>192.0.2.1:40001", Start: 0.012, Stop: 8.47, Packets: 9, Flags: SYN | ACK | PSH | FIN, End: flow.EndDetected}, 6,
			func(r *flow.Record) { r.Octets = 811; r.ScannedOctets = 343; r.Aggregate = 1 }),
		mk(ProbeA, Uniflow{Ends: "192.0.2.5:51000>203.0.113.80:80", Start: 2, Stop: 62, Packets: 40, Flags: SYN | ACK | PSH, End: flow.EndActive}, 6,
			func(r *flow.Record) {
				r.SamplingPacketInterval = 10
				r.ScannedOctets = 1200
				r.Aggregate, r.Category = 1, 2
				r.Symptoms = []flow.SymptomCount{{ID: 2, Count: 1}}
				r.App = flow.App{HTTPHost: "www.YouTube.com:80"}
			}),
		mk(ProbeA, Uniflow{Ends: "192.0.2.5:51000>203.0.113.80:80", Start: 62.1, Stop: 70, Packets: 10, Flags: ACK | FIN, End: flow.EndDetected}, 6,
			func(r *flow.Record) {
				r.SamplingPacketInterval = 10
				r.ScannedOctets = 150
				r.Aggregate, r.Category = 1, 2
			}),
		mk(ProbeA, Uniflow{Ends: "203.0.113.80:80>192.0.2.5:51000", Start: 2.05, Stop: 70, Packets: 90, Flags: SYN | ACK | PSH | FIN, End: flow.EndDetected}, 6,
			func(r *flow.Record) {
				r.SamplingPacketInterval = 10
				r.Aggregate = 2
				r.Symptoms = []flow.SymptomCount{{ID: 3, Count: 2}, {ID: 9, Count: 1}}
			}),
		mk(ProbeA, Uniflow{Ends: "[2001:db8::53]:53>[2001:db8::10]:33333", Start: 5.002, Stop: 5.002, Packets: 1, End: flow.EndIdle}, 17,
			func(r *flow.Record) { r.App = flow.App{DNSName: "api.example.net", DNSResponse: true, DNSRcode: 3} }),
		mk(ProbeA, Uniflow{Ends: "[2001:db8::10]:33333>[2001:db8::53]:53", Start: 5, Stop: 5, Packets: 1, End: flow.EndIdle}, 17,
			func(r *flow.Record) { r.App = flow.App{DNSName: "api.example.net"} }),
		mk(ProbeA, Uniflow{Ends: "192.0.2.1:0>192.0.2.254:2048", Start: 10, Stop: 13, Packets: 4, End: flow.EndIdle}, 1, nil),
		mk(ProbeA, Uniflow{Ends: "192.0.2.254:0>192.0.2.1:0", Start: 10.001, Stop: 13.001, Packets: 4, End: flow.EndIdle}, 1, nil),
		mk(ProbeA, Uniflow{Ends: "192.0.2.9:45000>198.51.100.99:22", Start: 20, Stop: 20, Packets: 1, Flags: SYN, End: flow.EndIdle}, 6, nil),
	}
}

// Stats are the fixture's collector counters.
func Stats() *store.Stats {
	return &store.Stats{
		Messages: 7, Records: 10, Lost: 2,
		Malformed:    map[string]uint64{"unknown template": 1},
		DecodeErrors: map[string]uint64{"ipv4 header": 3},
		Updated:      T0,
	}
}

// DB writes the fixture's flows, names and counters into a new store in
// a temporary directory and returns its path.
func DB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flows.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	by := map[store.Origin][]flow.Record{}
	for _, f := range Flows() {
		by[f.Origin] = append(by[f.Origin], f.Record)
	}
	for o, recs := range by {
		if err := s.Put(o, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutNames(Names()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStats(*Stats()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
