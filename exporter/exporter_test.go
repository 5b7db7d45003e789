package exporter

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// recorder is a Transport that keeps the messages it is given.
type recorder struct {
	reliable bool
	session  uint64
	msgs     [][]byte
	fail     error
}

func (r *recorder) Begin() (uint64, error) { return r.session, nil }
func (r *recorder) Write(m []byte) error {
	if r.fail != nil {
		return r.fail
	}
	r.msgs = append(r.msgs, slices.Clone(m))
	return nil
}
func (r *recorder) Reliable() bool { return r.reliable }
func (r *recorder) Flush() error   { return nil }
func (r *recorder) Close() error   { return nil }

type setInfo struct{ templates, data int }

// sets lists a message's template and data sets, checking that set
// lengths tile the message exactly (no set split across messages).
func sets(t *testing.T, m []byte) setInfo {
	t.Helper()
	var si setInfo
	off := ipfix.HeaderLen
	for off < len(m) {
		id := int(m[off])<<8 | int(m[off+1])
		l := int(m[off+2])<<8 | int(m[off+3])
		if l < 4 || off+l > len(m) {
			t.Fatalf("set %d of length %d at %d overruns a %d-byte message", id, l, off, len(m))
		}
		if id == ipfix.TemplateSetID || id == ipfix.OptionsSetID {
			si.templates++
		} else {
			si.data++
		}
		off += l
	}
	return si
}

func decodeAll(t *testing.T, msgs [][]byte) ([]flow.Record, ipfix.SessionStats) {
	t.Helper()
	s := ipfix.NewSession("recorder")
	var out []flow.Record
	for i, m := range msgs {
		var err error
		n := len(out)
		out, _, err = s.Decode(m, out)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for j := n; j < len(out); j++ {
			out[j].Symptoms = slices.Clone(out[j].Symptoms)
		}
	}
	return out, s.Stats()
}

func byDomain(recs []flow.Record) []flow.Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b flow.Record) int { return int(a.ObservationDomain) - int(b.ObservationDomain) })
	return out
}

func TestUDPPackingAndSequence(t *testing.T) {
	tr := &recorder{session: 1}
	e := NewTransport(tr, &Config{MTU: 512, ExporterMetadata: true})
	recs := append(ipfixtest.Samples(), ipfixtest.Random(21, 400)...)
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	seq := map[uint32]uint32{}
	for i, m := range tr.msgs {
		if len(m) > 512 {
			t.Fatalf("message %d: %d bytes over the MTU", i, len(m))
		}
		sets(t, m)
		h, _ := ipfix.ParseHeader(m)
		if h.Sequence != seq[h.Domain] {
			t.Fatalf("message %d: domain %d sequence %d, want %d", i, h.Domain, h.Sequence, seq[h.Domain])
		}
		seq[h.Domain] = h.Sequence + uint32(dataRecords(t, tr.msgs[:i+1], i))
	}
	got, st := decodeAll(t, tr.msgs)
	if !reflect.DeepEqual(byDomain(got), byDomain(recs)) {
		t.Fatal("decoded records differ from the exported ones")
	}
	// One options record per domain, again with each template refresh.
	if st.LostRecords != 0 || st.OptionsRecords <= 3 {
		t.Fatalf("stats %+v", st)
	}
	es := e.Stats()
	if es.Records != uint64(len(recs)) || es.OptionsRecords != st.OptionsRecords || es.Messages != uint64(len(tr.msgs)) || es.Errors != 0 {
		t.Fatalf("exporter stats %+v", es)
	}
}

// dataRecords counts the data records of message i of msgs.
func dataRecords(t *testing.T, msgs [][]byte, i int) int {
	t.Helper()
	s := ipfix.NewSession("count")
	for j := 0; j < i; j++ {
		s.Decode(msgs[j], nil)
	}
	before := s.Stats().DataRecords
	if _, _, err := s.Decode(msgs[i], nil); err != nil {
		t.Fatal(err)
	}
	return int(s.Stats().DataRecords - before)
}

func TestTemplateRefresh(t *testing.T) {
	now := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	tr := &recorder{session: 1}
	e := NewTransport(tr, &Config{TemplateRefresh: time.Minute, TemplateRefreshMessages: 3, Now: func() time.Time { return now }})
	one := ipfixtest.Samples()[:1]
	var withT []int
	for i := 0; i < 8; i++ {
		if i == 5 {
			now = now.Add(61 * time.Second)
		}
		if err := e.Export(one); err != nil {
			t.Fatal(err)
		}
		if sets(t, tr.msgs[len(tr.msgs)-1]).templates > 0 {
			withT = append(withT, i)
		}
	}
	// After 3 messages (0 -> 3), and after a minute (5); 3 messages after
	// that would be message 8.
	if want := []int{0, 3, 5}; !reflect.DeepEqual(withT, want) {
		t.Fatalf("templates in messages %v, want %v", withT, want)
	}
	// Stream transports send templates once per session.
	st := &recorder{session: 1, reliable: true}
	e = NewTransport(st, &Config{TemplateRefreshMessages: 1})
	for i := 0; i < 4; i++ {
		if i == 2 {
			st.session++ // a new connection or file
		}
		e.Export(one)
	}
	withT = nil
	for i, m := range st.msgs {
		if sets(t, m).templates > 0 {
			withT = append(withT, i)
		}
	}
	if want := []int{0, 2}; !reflect.DeepEqual(withT, want) {
		t.Fatalf("stream: templates in messages %v, want %v", withT, want)
	}
}

func TestSendFailureAccounting(t *testing.T) {
	tr := &recorder{session: 1}
	e := NewTransport(tr, nil)
	recs := ipfixtest.Samples()
	tr.fail = errors.New("connection refused")
	if err := e.Export(recs); err == nil {
		t.Fatal("no error from a failing transport")
	}
	st := e.Stats()
	if st.Dropped != uint64(len(recs)) || st.Errors == 0 || st.LastError != "connection refused" || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The collector never saw those records: sequence numbers start at 0.
	tr.fail = nil
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if h, _ := ipfix.ParseHeader(tr.msgs[0]); h.Sequence != 0 {
		t.Fatalf("sequence %d after failed sends", h.Sequence)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Export(recs); !errors.Is(err, ErrClosed) {
		t.Fatalf("export after close: %v", err)
	}
}

func TestOversizeRecord(t *testing.T) {
	tr := &recorder{session: 1}
	e := NewTransport(tr, &Config{MTU: 200})
	r := ipfixtest.Samples()[0]
	for i := 0; i < 100; i++ { // 600 bytes of symptoms: over the MTU, sent alone
		r.Symptoms = append(r.Symptoms, flow.SymptomCount{ID: uint16(i), Count: 1})
	}
	if err := e.Export([]flow.Record{r}); err != nil {
		t.Fatal(err)
	}
	got, _ := decodeAll(t, tr.msgs)
	if len(got) != 1 || len(got[0].Symptoms) != 100 {
		t.Fatalf("got %d records", len(got))
	}
	for i := 0; i < 11000; i++ { // over 65535 bytes: cannot be sent
		r.Symptoms = append(r.Symptoms, flow.SymptomCount{ID: uint16(i), Count: 1})
	}
	if err := e.Export([]flow.Record{r}); err == nil || e.Stats().Dropped != 1 {
		t.Fatalf("oversize record: %v, stats %+v", err, e.Stats())
	}
}

func TestNoAllocsExport(t *testing.T) {
	tr := &discard{}
	e := NewTransport(tr, nil)
	recs := ipfixtest.Random(22, 200)
	e.Export(recs) // build templates, grow buffers
	if n := testing.AllocsPerRun(50, func() { e.Export(recs) }); n != 0 {
		t.Fatalf("Export: %v allocs per run", n)
	}
}

type discard struct{}

func (discard) Begin() (uint64, error) { return 1, nil }
func (discard) Write([]byte) error     { return nil }
func (discard) Reliable() bool         { return false }
func (discard) Flush() error           { return nil }
func (discard) Close() error           { return nil }

func BenchmarkExport(b *testing.B) {
	e := NewTransport(discard{}, nil)
	recs := ipfixtest.Random(23, 1000)
	e.Export(recs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Export(recs)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// TestMinMessageLen: ipfix.MinMessageLen (the least export[].mtu a probe
// configuration takes) is exactly the message that carries the largest
// flow template, the symptom template and one record of it with one
// symptom and its names empty but for one byte: with the MTU at that
// (plus the byte), the record and its templates go in one message
// within it; one byte less and the record goes alone in a message over
// the MTU.
func TestMinMessageLen(t *testing.T) {
	r := ipfixtest.Samples()[0]
	r.Src, r.Dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	r.Proto = 6
	r.Tunnel, r.TunnelSrc, r.TunnelDst = flow.TunnelGRE, netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	r.Symptoms = []flow.SymptomCount{{ID: 1, Count: 1}}
	r.Direction, r.VPI, r.VCI = 1, 1, 1
	r.App = flow.App{HTTPHost: "h", DNSResponse: true, FTPData: "p"}
	r.ScannedOctets = 1
	least := ipfix.MinMessageLen() + 2 // the host's and the ports' byte
	for _, mtu := range []int{least, least - 1} {
		tr := &recorder{session: 1}
		e := NewTransport(tr, &Config{MTU: mtu})
		if err := e.Export([]flow.Record{r}); err != nil {
			t.Fatal(err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		longest := 0
		for _, m := range tr.msgs {
			longest = max(longest, len(m))
		}
		got, _ := decodeAll(t, tr.msgs)
		if len(got) != 1 {
			t.Fatalf("mtu %d: %d records decoded", mtu, len(got))
		}
		if mtu == least && longest != mtu {
			t.Errorf("mtu %d (MinMessageLen + 2): longest message %d bytes, want exactly the MTU", mtu, longest)
		}
		if mtu < least && longest <= mtu {
			t.Errorf("mtu %d: longest message %d bytes: MinMessageLen is not the least", mtu, longest)
		}
	}
}
