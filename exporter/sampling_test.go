package exporter

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
)

func sampledRecords(n int, interval uint32) []flow.Record {
	recs := make([]flow.Record, n)
	base := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC).UnixNano()
	for i := range recs {
		recs[i] = flow.Record{
			Key: flow.Key{
				Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("192.0.2.1"),
				Sport: uint16(10000 + i), Dport: 80, Proto: 6,
			},
			Packets: uint64(1 + i%5), Octets: uint64(100 * (1 + i%5)),
			First: base + int64(i)*1e6, Last: base + int64(i)*1e6 + 5e8,
			IPVersion: 4, Direction: 255, ObservationDomain: 7, Aggregate: uint32(1 + i%2),
			SamplingPacketInterval: interval, EndReason: flow.EndIdle,
		}
	}
	return recs
}

// TestSamplingOptionsRoundTrip exports sampled records with the sampling
// and aggregate-name options over a byte stream and checks that the
// decoder reports the domain's options before the records and that the
// records carry the interval.
func TestSamplingOptionsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		smp  ipfix.Sampling
	}{
		{"count", ipfix.Sampling{Interval: 10, SelectorAlgorithm: 1}},
		{"flow", ipfix.Sampling{Interval: 4, Flow: true, SelectorAlgorithm: 6}},
		{"flow hash", hashSampling(4, 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			smp := tc.smp
			names := map[uint32]string{1: "campus-in", 2: "campus-out"}
			e := NewWriter(&buf, &Config{Sampling: &smp, AggregateNames: names})
			recs := sampledRecords(50, 0)
			for i := range recs {
				if smp.Flow {
					recs[i].SamplingFlowInterval = smp.Interval
				} else {
					recs[i].SamplingPacketInterval = smp.Interval
				}
			}
			if err := e.Export(recs); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			// Sampling, PSAMP, the records' one selector, two names.
			if st := e.Stats(); st.OptionsRecords != 5 {
				t.Fatalf("options records %d, want 5", st.OptionsRecords)
			}
			s := ipfix.NewSession("stream")
			var got []ipfix.DomainOptions
			s.OnOptions = func(d uint32, o ipfix.DomainOptions) {
				if d != 7 {
					t.Errorf("options for domain %d", d)
				}
				got = append(got, o)
			}
			b := buf.Bytes()
			var out []flow.Record
			for len(b) > 0 {
				h, ok := ipfix.ParseHeader(b)
				if !ok {
					t.Fatal("bad header")
				}
				var err error
				out, _, err = s.Decode(b[:h.Length], out)
				if err != nil {
					t.Fatal(err)
				}
				b = b[h.Length:]
			}
			if len(out) != 50 {
				t.Fatalf("%d records", len(out))
			}
			if len(got) == 0 {
				t.Fatal("no options reported")
			}
			last := got[len(got)-1]
			if !last.HaveSampling || last.Sampling != smp {
				t.Fatalf("sampling %+v, want %+v", last.Sampling, smp)
			}
			if last.Aggregates[1] != "campus-in" || last.Aggregates[2] != "campus-out" {
				t.Fatalf("aggregates %v", last.Aggregates)
			}
			for _, r := range out {
				if smp.Flow && (r.SamplingFlowInterval != 4 || r.SamplingPacketInterval != 0) ||
					!smp.Flow && (r.SamplingPacketInterval != 10 || r.SamplingFlowInterval != 0) {
					t.Fatalf("record sampling %d/%d", r.SamplingPacketInterval, r.SamplingFlowInterval)
				}
			}
			if st := s.Stats(); st.LostRecords != 0 || st.OptionsRecords != 5 || st.SelectorReports != 1 {
				t.Fatalf("session stats %+v", st)
			}
		})
	}
}

// hashSampling is 1-in-n hash-based flow selection as the probe
// announces it (appliance/selection): BOB's 32-bit output range and the
// selected range [0, round(2^32/n)-1].
func hashSampling(n uint32, init uint64) ipfix.Sampling {
	sel := (uint64(1)<<32 + uint64(n)/2) / uint64(n)
	return ipfix.Sampling{Interval: n, Flow: true, SelectorAlgorithm: 6,
		Hash: ipfix.HashSelection{Initialiser: init, OutputMax: 1<<32 - 1, SelectedMax: sel - 1}}
}

// TestNfdumpSampling sends 1-in-10 sampled records with the sampling
// options records to a real nfcapd and checks what nfdump makes of it:
// nfdump must scale packets and bytes by the interval, for packet
// sampling and for hash-based flow selection (whose PSAMP template
// carries the RFC 5477 hash parameters).
//
// It also checks nfcapd's sequence errors. nfcapd 1.7.1 advances its
// expected sequence number for flow records only (ipfix.c
// Process_ipfix_data: exporter->PacketSequence++), never for options
// records (ProcessOptionFlowset), while RFC 7011, libfixbuf and MIRA count
// both; it counts a failure at the first mismatch after it has seen a
// data set (Process_IPFIX: "if (exporter->DataRecords != 0)"). The
// exporter sends options in a message of their own before the flow
// records, so the first announcement costs nothing and every resend over
// UDP costs exactly one error.
func TestNfdumpSampling(t *testing.T) {
	const interval = 10
	for _, tc := range []struct {
		name    string
		smp     ipfix.Sampling
		refresh int  // TemplateRefreshMessages (1000: never during the test)
		types   bool // ElementTypes, as mira-probe sends them
	}{
		{"count once", ipfix.Sampling{Interval: interval, SelectorAlgorithm: 1, LegacyAlgorithm: 1}, 1000, false},
		{"hash once", hashSampling(interval, 77), 1000, false},
		{"count refreshed", ipfix.Sampling{Interval: interval, SelectorAlgorithm: 1, LegacyAlgorithm: 1}, 3, false},
		// Type records before the sampling options left nfdump's counts
		// unscaled: they go after them.
		{"count with element types", ipfix.Sampling{Interval: interval, SelectorAlgorithm: 1, LegacyAlgorithm: 1}, 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := peertest.StartNfcapd(t)
			recs := sampledRecords(200, 0)
			for i := range recs {
				if tc.smp.Flow {
					recs[i].SamplingFlowInterval = interval
				} else {
					recs[i].SamplingPacketInterval = interval
				}
			}
			smp := tc.smp
			names := map[uint32]string{1: "a", 2: "b"}
			e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.Port), &Config{Sampling: &smp, AggregateNames: names,
				MTU: 1000, TemplateRefreshMessages: tc.refresh, ElementTypes: tc.types})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Export(recs); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			st := e.Stats()
			// Sampling, PSAMP, the records' one selector, the names.
			perAnnouncement := uint64(3 + len(names))
			if tc.types {
				_, nt := ipfix.AppendElementTypeRecords(nil, ipfix.DefaultPEN)
				perAnnouncement += uint64(nt)
			}
			announcements := st.OptionsRecords / perAnnouncement
			if st.OptionsRecords%perAnnouncement != 0 || announcements == 0 || (tc.refresh == 1000) != (announcements == 1) {
				t.Fatalf("%d options records in %d messages", st.OptionsRecords, st.Messages)
			}
			got := n.Records(t)
			if len(got) != len(recs) {
				t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
			}
			want := map[flow.Key]flow.Record{}
			for _, r := range recs {
				want[r.Key] = r
			}
			for _, f := range got {
				r, ok := want[nfKey(t, &f)]
				if !ok {
					t.Fatalf("unexpected flow %+v", f)
				}
				if f.InPackets != r.Packets*interval || f.InBytes != r.Octets*interval {
					t.Fatalf("nfdump %d packets %d bytes, want %d and %d (scaled by %d)\n%s",
						f.InPackets, f.InBytes, r.Packets*interval, r.Octets*interval, interval, n.Log())
				}
			}
			m := regexp.MustCompile(`Sequence Errors: (\d+)`).FindStringSubmatch(n.Log())
			if m == nil {
				t.Fatalf("no nfcapd summary in its log:\n%s", n.Log())
			}
			se, _ := strconv.Atoi(m[1])
			if uint64(se) != announcements-1 {
				t.Fatalf("nfcapd counted %d sequence errors for %d options announcements, want %d", se, announcements, announcements-1)
			}
			t.Logf("%d messages, %d options announcements, nfcapd sequence errors %d", st.Messages, announcements, se)
		})
	}
}
