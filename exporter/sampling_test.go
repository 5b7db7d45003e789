package exporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/flow"
	"github.com/mira-project/mira/exporter/ipfix"
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
			if st := e.Stats(); st.OptionsRecords != 4 {
				t.Fatalf("options records %d, want 4", st.OptionsRecords)
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
			if st := s.Stats(); st.LostRecords != 0 || st.OptionsRecords != 4 {
				t.Fatalf("session stats %+v", st)
			}
		})
	}
}

// TestNfdumpSampling sends 1-in-10 sampled records with the sampling
// options record to a real nfcapd and checks what nfdump makes of it:
// nfdump must scale packets and bytes by the interval. It also records
// how many sequence errors nfcapd counts for the options records.
func TestNfdumpSampling(t *testing.T) {
	n := startNfcapd(t)
	const interval = 10
	recs := sampledRecords(40, interval)
	smp := ipfix.Sampling{Interval: interval, SelectorAlgorithm: 1, LegacyAlgorithm: 1}
	e, err := New(fmt.Sprintf("udp://127.0.0.1:%d", n.port), &Config{Sampling: &smp, AggregateNames: map[uint32]string{1: "a", 2: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
	var got []nfFlow
	if err := json.Unmarshal([]byte(n.dump(t, "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("nfdump shows %d flows, want %d", len(got), len(recs))
	}
	want := map[flow.Key]flow.Record{}
	for _, r := range recs {
		want[r.Key] = r
	}
	for _, f := range got {
		r, ok := want[f.key(t)]
		if !ok {
			t.Fatalf("unexpected flow %+v", f)
		}
		if f.InPackets != r.Packets*interval || f.InBytes != r.Octets*interval {
			t.Fatalf("nfdump %d packets %d bytes, want %d and %d (scaled by %d)\n%s",
				f.InPackets, f.InBytes, r.Packets*interval, r.Octets*interval, interval, n.log.String())
		}
	}
	m := regexp.MustCompile(`Sequence Errors: (\d+)`).FindStringSubmatch(n.log.String())
	if m != nil {
		se, _ := strconv.Atoi(m[1])
		t.Logf("nfcapd sequence errors with options records: %d", se)
	}
}
