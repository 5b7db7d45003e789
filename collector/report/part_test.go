package report

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// partFlows is a synthetic capture of many connections between few
// hosts, seen by two probes (one sampled, announcing its sampling after
// its first records), with symptoms (pair context), FTP control
// connections announcing data ports, and both directions of most
// connections.
func partFlows() ([]store.StoredFlow, map[store.Origin][]store.Announcement) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := store.Origin{Exporter: "192.0.2.250", Domain: 1}
	b := store.Origin{Exporter: "192.0.2.251", Domain: 7}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixNano()
	host := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i / 200), byte(i%200 + 1)}) }
	var flows []store.StoredFlow
	for c := 0; c < 3000; c++ {
		src, dst := host(rng.IntN(40)), host(40+rng.IntN(30))
		proto := uint8(6)
		if rng.IntN(3) == 0 {
			proto = 17
		}
		sport, dport := uint16(1024+rng.IntN(2000)), uint16([]int{21, 80, 443, 53, 5000}[rng.IntN(5)])
		first := t0 + rng.Int64N(int64(10*time.Minute))
		// A few ports reused: the same 5-tuple again later.
		if rng.IntN(20) == 0 {
			sport = 1024
		}
		dur := rng.Int64N(int64(30 * time.Second))
		fwd := flow.Record{Key: flow.Key{Src: src, Dst: dst, Sport: sport, Dport: dport, Proto: proto},
			Packets: 1 + uint64(rng.IntN(50)), First: first, Last: first + dur, TCPFlags: 0x02 | 0x10, EndReason: flow.EndIdle}
		fwd.Octets = fwd.Packets * uint64(40+rng.IntN(1400))
		fwd.ScannedOctets = fwd.Octets / 2 // parts carry them through their encoding
		switch rng.IntN(6) {
		case 0:
			fwd.Symptoms = []flow.SymptomCount{{ID: uint16(1 + rng.IntN(3)), Count: uint32(1 + rng.IntN(3))}}
		case 1:
			if dport == 21 {
				fwd.App.FTPData = strconv.Itoa(20000 + rng.IntN(3))
			}
		case 2:
			fwd.App.ServerName = "www.example" + strconv.Itoa(rng.IntN(4)) + ".com"
		}
		if dport == 443 && rng.IntN(2) == 0 {
			fwd.Dport = uint16(20000 + rng.IntN(3)) // an FTP data connection, maybe
		}
		rev := fwd
		rev.Src, rev.Dst, rev.Sport, rev.Dport = fwd.Dst, fwd.Src, fwd.Dport, fwd.Sport
		rev.First += int64(rng.IntN(3)) * int64(time.Millisecond)
		rev.Packets, rev.Octets, rev.TCPFlags = 1+uint64(rng.IntN(80)), 0, 0x12
		rev.Octets = rev.Packets * 700
		rev.ScannedOctets = rev.Octets / 4
		rev.Symptoms, rev.App = nil, flow.App{}
		o := a
		if rng.IntN(4) == 0 {
			o = b
		}
		flows = append(flows, store.StoredFlow{Origin: o, Record: fwd})
		if rng.IntN(5) != 0 {
			flows = append(flows, store.StoredFlow{Origin: o, Record: rev})
		}
		if rng.IntN(8) == 0 { // the other probe saw it too
			dup := fwd
			if rng.IntN(2) == 0 {
				dup.Packets++ // a slightly different observation
			}
			flows = append(flows, store.StoredFlow{Origin: a, Record: dup}, store.StoredFlow{Origin: b, Record: dup})
		}
	}
	anns := map[store.Origin][]store.Announcement{
		b: {{Since: t0 + int64(time.Minute), Interval: 10}, {Since: t0 + int64(5*time.Minute), Interval: 100},
			// Flow sampling at 1 in 49: estimates float64 does not
			// hold exactly (1/q is not 49), visible in biflows_low.
			{Since: t0 + int64(8*time.Minute), Interval: 49, Flow: true}},
	}
	return flows, anns
}

// split divides flows into n parts by address pair, keeping their order.
func split(flows []store.StoredFlow, n int) [][]store.StoredFlow {
	parts := make([][]store.StoredFlow, n)
	for _, f := range flows {
		x, y := f.Record.Src, f.Record.Dst
		if y.Less(x) {
			x, y = y, x
		}
		h := int(x.As4()[3])*31 + int(y.As4()[3])
		parts[h%n] = append(parts[h%n], f)
	}
	return parts
}

// TestAssembleParts: the report over parts that share no address pair,
// each built alone and sent through its encoding, is the report over all
// the records, byte for byte, in every grouping, with filters, without
// deduplication and under sampling (estimates summed in one order).
func TestAssembleParts(t *testing.T) {
	flows, anns := partFlows()
	rules := classify.Default()
	if !rules.UsesPair() {
		t.Fatal("the default rules do not read the pair context: this test would not check it")
	}
	names := &store.NameIndex{Origins: map[store.Origin][]store.NameAnnouncement{}, Fallback: store.Names{
		Symptoms: map[uint16]string{1: "FTP", 2: "VOIP", 3: "MAIL"}}}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"default", func(*Options) {}},
		{"by host, bytes, page", func(o *Options) { o.By, o.Order, o.Limit, o.Offset = ByHost, OrderBytes, 100, 50 }},
		{"by app, buckets", func(o *Options) { o.By, o.Bucket = ByApp, time.Minute }},
		{"by symptom", func(o *Options) { o.By = BySymptom }},
		{"no dedup", func(o *Options) { o.NoDedup = true }},
		{"keep", func(o *Options) { o.Keep = func(b *Biflow) bool { return b.Proto == 6 } }},
		{"match", func(o *Options) {
			o.Match = func(r *flow.Record) bool {
				return r.Sport == 21 || r.Dport == 21 || r.Dport >= 20000 || r.Sport >= 20000
			}
		}},
		{"top 20 by bytes", func(o *Options) { o.Order, o.Limit = OrderBytes, 20 }},
		{"by symptom, top 10", func(o *Options) { o.By, o.Limit = BySymptom, 10 }},
		{"by app, buckets, page", func(o *Options) { o.By, o.Bucket, o.Limit, o.Offset = ByApp, time.Minute, 5, 3 }},
		{"keep, top 30, past the end", func(o *Options) {
			o.Keep, o.Limit, o.Offset = func(b *Biflow) bool { return b.Proto == 17 }, 30, 100000
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Rules: rules, Names: names, Announcements: anns}
			tc.mod(&opts)
			in := flows
			if opts.Match != nil {
				in = nil
				for _, f := range flows {
					if opts.Match(&f.Record) {
						in = append(in, f)
					}
				}
			}
			var want bytes.Buffer
			if err := Build(in, opts).WriteJSON(&want); err != nil {
				t.Fatal(err)
			}
			var parts []*Part
			for _, l := range split(in, 3) {
				enc, err := BuildPart(l, opts).MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				var p Part
				if err := p.UnmarshalBinary(enc); err != nil {
					t.Fatal(err)
				}
				parts = append(parts, &p)
			}
			var got, merged bytes.Buffer
			if err := Assemble(parts, opts).WriteJSON(&got); err != nil {
				t.Fatal(err)
			}
			if err := Assemble([]*Part{MergeParts(parts)}, opts).WriteJSON(&merged); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(merged.Bytes(), got.Bytes()) {
				t.Error("assembled from the merged parts differs from assembled from the parts")
			}
			// Parts carrying their usage and first biflows (Aggregate):
			// the same report, byte for byte, sampled too (the estimates
			// add exactly).
			if keep := opts.Offset + opts.Limit; opts.Limit > 0 {
				for _, withAnns := range []bool{false, true} {
					o := opts
					if !withAnns {
						o.Announcements = nil
					}
					var w bytes.Buffer
					if err := Build(in, o).WriteJSON(&w); err != nil {
						t.Fatal(err)
					}
					var aparts []*Part
					aggregated := 0
					for _, l := range split(in, 3) {
						p := BuildPart(l, o)
						if p.Aggregate(o, keep) {
							aggregated++
						}
						enc, err := p.MarshalBinary()
						if err != nil {
							t.Fatal(err)
						}
						var q Part
						if err := q.UnmarshalBinary(enc); err != nil {
							t.Fatal(err)
						}
						aparts = append(aparts, &q)
					}
					var g bytes.Buffer
					if err := Assemble(aparts, o).WriteJSON(&g); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(g.Bytes(), w.Bytes()) {
						t.Errorf("sampled %v: assembled from %d aggregated parts differs from the report over all records", withAnns, aggregated)
					}
					if aggregated != 3 {
						t.Errorf("sampled %v: %d of 3 parts aggregated", withAnns, aggregated)
					}
				}
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("assembled from parts (%d bytes) differs from the report over all records (%d bytes)", got.Len(), want.Len())
				g, w := got.String(), want.String()
				for i := range min(len(g), len(w)) {
					if g[i] != w[i] {
						t.Fatalf("first difference at %d:\n got %s\nwant %s", i, g[max(0, i-200):min(len(g), i+200)], w[max(0, i-200):min(len(w), i+200)])
					}
				}
			}
		})
	}
}

// TestPartKeepsRates: a worker's part carries its sampled biflows'
// counters by direction and sampling to the reporter, so that a cluster
// report's --export states them as a single collector's does.
func TestPartKeepsRates(t *testing.T) {
	rates := []consolidate.Rate{{PacketInterval: 4, FlowInterval: 1, Packets: 10, Octets: 1500},
		{Reverse: true, PacketInterval: 10, FlowInterval: 1, Packets: 3, Octets: 180}}
	enc, err := (&Part{Biflows: []Biflow{{Rates: rates}, {}}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var p Part
	if err := p.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if len(p.Biflows) != 2 || !slices.Equal(p.Biflows[0].Rates, rates) || p.Biflows[1].Rates != nil {
		t.Errorf("biflows' rates after the part's round trip: %+v", p.Biflows)
	}
}
