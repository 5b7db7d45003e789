package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/ipfix"
)

// legacyRecord is a flow as a non-MIRA exporter sends it: IANA elements
// only, no per-record sampling interval.
type legacyRecord struct {
	src, dst     string
	sport, dport uint16
	proto        uint8
	pkts, octets uint64
	first, last  time.Duration // after legacyT0
}

var legacyT0 = time.Date(2019, 3, 14, 19, 3, 54, 0, time.UTC)

var legacyTemplate = &ipfix.Template{ID: 256, Fields: []ipfix.Field{
	{ID: ipfix.IESourceIPv4Address, Length: 4},
	{ID: ipfix.IEDestinationIPv4Address, Length: 4},
	{ID: ipfix.IESourceTransportPort, Length: 2},
	{ID: ipfix.IEDestinationTransportPort, Length: 2},
	{ID: ipfix.IEProtocolIdentifier, Length: 1},
	{ID: ipfix.IEPacketDeltaCount, Length: 8},
	{ID: ipfix.IEOctetDeltaCount, Length: 8},
	{ID: ipfix.IEFlowStartMilliseconds, Length: 8},
	{ID: ipfix.IEFlowEndMilliseconds, Length: 8},
	{ID: ipfix.IEFlowEndReason, Length: 1},
}}

// legacyStream builds IPFIX messages by hand (the ipfix package's encoder).
type legacyStream struct {
	b   []byte
	seq map[uint32]uint32
}

func (s *legacyStream) message(domain uint32, sets func(b []byte) ([]byte, int)) {
	start := len(s.b)
	s.b = ipfix.AppendHeader(s.b, ipfix.Header{ExportTime: uint32(legacyT0.Unix()), Sequence: s.seq[domain], Domain: domain})
	var n int
	s.b, n = sets(s.b)
	s.seq[domain] += uint32(n)
	if err := ipfix.FinishMessage(s.b[start:]); err != nil {
		panic(err)
	}
}

func (s *legacyStream) template(domain uint32) {
	s.message(domain, func(b []byte) ([]byte, int) {
		b, at := ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
		b = ipfix.AppendTemplate(b, legacyTemplate)
		return ipfix.FinishSet(b, at, 0), 0
	})
}

func (s *legacyStream) data(domain uint32, recs ...legacyRecord) {
	s.message(domain, func(b []byte) ([]byte, int) {
		b, at := ipfix.AppendSetHeader(b, legacyTemplate.ID)
		be := binary.BigEndian
		for _, r := range recs {
			src, dst := netip.MustParseAddr(r.src).As4(), netip.MustParseAddr(r.dst).As4()
			b = append(b, src[:]...)
			b = append(b, dst[:]...)
			b = be.AppendUint16(b, r.sport)
			b = be.AppendUint16(b, r.dport)
			b = append(b, r.proto)
			b = be.AppendUint64(b, r.pkts)
			b = be.AppendUint64(b, r.octets)
			b = be.AppendUint64(b, uint64(legacyT0.Add(r.first).UnixMilli()))
			b = be.AppendUint64(b, uint64(legacyT0.Add(r.last).UnixMilli()))
			b = append(b, 1) // idle timeout
		}
		return ipfix.FinishSet(b, at, 0), len(recs)
	})
}

// sampling sends the domain's sampling options as nfdump-style
// exporters do (samplingInterval, IE 34).
func (s *legacyStream) sampling(domain, interval uint32) {
	s.message(domain, func(b []byte) ([]byte, int) {
		t := ipfix.SamplingOptionsTemplate()
		b, at := ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
		b = ipfix.AppendTemplate(b, t)
		b = ipfix.FinishSet(b, at, 0)
		b, at = ipfix.AppendSetHeader(b, t.ID)
		b = ipfix.AppendSamplingRecord(b, domain, ipfix.Sampling{Interval: interval})
		return ipfix.FinishSet(b, at, 0), 0
	})
}

// TestSamplingOptionsAfterRecords: a non-MIRA exporter (no sampling
// interval in its records) sends records of domain 7 before that
// domain's sampling options (1 in 10), more records after them, and
// records of domain 8, which never announces its sampling. The report
// over the collector's store scales the early records by the options
// that came later, and counts and marks domain 8's records as of
// unknown sampling instead of reporting them as exact.
func TestSamplingOptionsAfterRecords(t *testing.T) {
	ls := startServer(t)
	s := &legacyStream{seq: map[uint32]uint32{}}
	s.template(7)
	s.data(7,
		legacyRecord{"10.0.0.1", "10.0.0.2", 40000, 80, 6, 10, 1000, 0, time.Second},
		legacyRecord{"10.0.0.2", "10.0.0.1", 80, 40000, 6, 8, 4000, 10 * time.Millisecond, time.Second})
	s.sampling(7, 10)
	s.data(7, legacyRecord{"10.0.0.3", "10.0.0.4", 1234, 53, 17, 2, 200, 4 * time.Second, 5 * time.Second})
	s.template(8)
	s.data(8, legacyRecord{"10.0.0.5", "10.0.0.6", 5, 6, 17, 3, 300, 0, time.Second})
	c, err := net.Dial("tcp", ls.tcp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(s.b); err != nil {
		t.Fatal(err)
	}
	c.Close()
	until(t, "4 records stored", func() bool { n, _ := ls.counts(); return n == 4 })
	ls.stop(t)

	st, err := store.Open(ls.db, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	anns, err := st.Announcements()
	if err != nil {
		t.Fatal(err)
	}
	a7 := anns[store.Origin{Exporter: "127.0.0.1", Domain: 7}]
	if len(a7) != 1 || a7[0].Interval != 10 || a7[0].Flow || a7[0].Since != legacyT0.Add(time.Second).UnixNano() || len(anns) != 1 {
		t.Fatalf("stored announcements %+v", anns)
	}
	rep, err := report.FromStore(st, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type est struct {
		packets, octets uint64
		unknown         bool
	}
	want := map[string]est{
		"10.0.0.1": {180, 50000, false}, // before the options: scaled retroactively
		"10.0.0.3": {20, 2000, false},   // after them: stamped by the collecting process
		"10.0.0.5": {3, 300, true},      // domain 8: never announced
	}
	if len(rep.Biflows) != len(want) {
		t.Fatalf("%d biflows: %+v", len(rep.Biflows), rep.Biflows)
	}
	for _, b := range rep.Biflows {
		w := want[b.Src.String()]
		if b.SamplingUnknown != w.unknown {
			t.Errorf("%s: sampling_unknown %v, want %v", b.Src, b.SamplingUnknown, w.unknown)
		}
		wantSampling := 0.1
		if w.unknown {
			wantSampling = 1
		}
		if b.Sampling != wantSampling {
			t.Errorf("%s: sampling %v, want %v", b.Src, b.Sampling, wantSampling)
		}
	}
	if rep.Summary.SamplingUnknown != 1 {
		t.Errorf("summary sampling_unknown %d, want 1", rep.Summary.SamplingUnknown)
	}
	e := rep.Summary.Estimate
	if e == nil || e.Packets != 203 || e.Octets != 52300 {
		t.Fatalf("estimate %+v, want 203 packets, 52300 bytes", e)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"sampling_unknown": true`) || !strings.Contains(js.String(), `"sampling_unknown": 1`) {
		t.Errorf("JSON lacks the sampling_unknown fields:\n%s", js.String())
	}

	// Without the stored announcements the early records would be
	// reported unscaled: the check above is not vacuous.
	bare, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{Announcements: map[store.Origin][]store.Announcement{}})
	if err != nil {
		t.Fatal(err)
	}
	if e := bare.Summary.Estimate; e == nil || e.Packets == 203 {
		t.Fatalf("without announcements: estimate %+v", e)
	}
}
