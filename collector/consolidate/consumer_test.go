package consolidate

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
)

// probeStream encodes records as one probe's IPFIX byte stream, with
// its sampling options when smp is set.
func probeStream(t *testing.T, recs []flow.Record, smp *ipfix.Sampling) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, &exporter.Config{Sampling: smp})
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestCollectorToNfdump: two probes' IPFIX streams (each one direction,
// one of them flow-sampled) go through the collecting process into the
// streaming Consolidator, whose biflows are forwarded as RFC 5103 IPFIX
// to a real nfcapd; nfdump shows each connection's initiator's counters
// in and the responder's out, scaled by their sampling: as the
// directions were sampled at different rates, in two records.
func TestCollectorToNfdump(t *testing.T) {
	nf := peertest.StartNfcapd(t)
	e, err := exporter.New(nf.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fw := NewForwarder(e)
	cons := New(&Config{Sink: fw.Sink})
	coll := collector.New(NewConsumer(cons), nil)
	var fwd, rev []flow.Record
	for i := 0; i < 30; i++ {
		a := rec(fmt.Sprintf("192.0.2.%d", i+1), "198.51.100.7", uint16(40000+i), 80, uint64(5+i), uint64(500+i), 0, time.Second)
		a.TCPFlags = 0x02
		b := rec("198.51.100.7", fmt.Sprintf("192.0.2.%d", i+1), 80, uint16(40000+i), uint64(4+i), uint64(9000+i), 0, time.Second)
		b.TCPFlags = 0x12
		fwd, rev = append(fwd, a), append(rev, b)
	}
	ctx := context.Background()
	pa := collector.Origin{Exporter: netip.MustParseAddrPort("10.0.0.1:4739"), Transport: "file"}
	pb := collector.Origin{Exporter: netip.MustParseAddrPort("10.0.0.2:4739"), Transport: "file"}
	if err := coll.ServeStream(ctx, probeStream(t, fwd, nil), pa); err != nil {
		t.Fatal(err)
	}
	// The reverse direction's probe samples 1 in 4 packets; its records
	// carry no interval of their own here, only the domain's options.
	if err := coll.ServeStream(ctx, probeStream(t, rev, &ipfix.Sampling{Interval: 4, SelectorAlgorithm: 4}), pb); err != nil {
		t.Fatal(err)
	}
	cons.Flush()
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	st := cons.Stats()
	if st.Biflows != 30 || st.CrossProbe != 30 || fw.Sent() != 30 {
		t.Fatalf("stats %+v, forwarded %d", st, fw.Sent())
	}
	var est float64
	for _, u := range cons.Usage() {
		est += u.Est.Octets
	}
	var wantEst float64
	for i := range fwd {
		wantEst += float64(fwd[i].Octets) + 4*float64(rev[i].Octets)
	}
	if est != wantEst {
		t.Fatalf("estimated octets %v, want %v", est, wantEst)
	}
	// The directions were sampled at different rates: each connection
	// goes as two records, the initiator's counters unsampled, the
	// responder's naming 1 in 4, which nfdump scales (SplitRates).
	got := nf.Records(t)
	if len(got) != 60 {
		t.Fatalf("nfdump shows %d records, want 2 for each of 30 connections", len(got))
	}
	type sums struct{ inP, inB, outP, outB uint64 }
	per := map[int]*sums{}
	var nfOctets float64
	for _, g := range got {
		i := int(g.SrcPort) - 40000
		if i < 0 || i >= 30 || g.Src4 != fwd[i].Src.String() {
			t.Fatalf("nfdump record %+v", g)
		}
		if per[i] == nil {
			per[i] = &sums{}
		}
		s := per[i]
		s.inP, s.inB, s.outP, s.outB = s.inP+g.InPackets, s.inB+g.InBytes, s.outP+g.OutPackets, s.outB+g.OutBytes
		nfOctets += float64(g.InBytes + g.OutBytes)
	}
	for i, s := range per {
		if s.inB != fwd[i].Octets || s.inP != fwd[i].Packets || s.outB != 4*rev[i].Octets || s.outP != 4*rev[i].Packets {
			t.Fatalf("connection %d: nfdump %+v, want in %d/%d, out 4 x %d/%d", i, *s, fwd[i].Packets, fwd[i].Octets, rev[i].Packets, rev[i].Octets)
		}
	}
	if nfOctets != wantEst {
		t.Fatalf("nfdump octets %v, the estimate %v", nfOctets, wantEst)
	}
}
