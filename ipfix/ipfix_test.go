package ipfix

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// encodeMessage builds one message holding the templates of recs and recs
// themselves, one data set per run of records sharing a template.
// testExportTime is the export time of test messages: a month after
// ipfixtest.Base, after every record the tests make.
const testExportTime = uint32(ipfixtest.Base/1e9) + 30*86400

func encodeMessage(e *FlowEncoder, domain, seq uint32, recs []flow.Record) []byte {
	for i := range recs {
		e.Template(&recs[i])
	}
	b := AppendHeader(nil, Header{ExportTime: testExportTime, Sequence: seq, Domain: domain})
	b, s := AppendSetHeader(b, TemplateSetID)
	b = AppendTemplate(b, e.SymptomTemplate())
	for _, t := range e.Templates() {
		b = AppendTemplate(b, t)
	}
	b = FinishSet(b, s, 0)
	cur := uint16(0)
	s = -1
	for i := range recs {
		t, _ := e.Template(&recs[i])
		if t.ID != cur {
			if s >= 0 {
				b = FinishSet(b, s, 4)
			}
			b, s = AppendSetHeader(b, t.ID)
			cur = t.ID
		}
		b = e.AppendRecord(b, &recs[i])
	}
	if s >= 0 {
		b = FinishSet(b, s, 4)
	}
	if err := FinishMessage(b); err != nil {
		panic(err)
	}
	return b
}

func sameDomain(recs []flow.Record, d uint32) []flow.Record {
	out := make([]flow.Record, len(recs))
	copy(out, recs)
	for i := range out {
		out[i].ObservationDomain = d
	}
	return out
}

func checkEqual(t *testing.T, got, want []flow.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
}

func TestRoundTripSamples(t *testing.T) {
	want := sameDomain(ipfixtest.Samples(), 1)
	e := NewFlowEncoder(0)
	msg := encodeMessage(e, 1, 0, want)
	s := NewSession("test")
	got, h, err := s.Decode(msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Domain != 1 || int(h.Length) != len(msg) {
		t.Fatalf("header %+v, message of %d bytes", h, len(msg))
	}
	checkEqual(t, got, want)
	st := s.Stats()
	if st.FlowRecords != uint64(len(want)) || st.LostRecords != 0 || st.Malformed != [NumReasons]uint64{} {
		t.Fatalf("stats %+v", st)
	}
}

// TestRoundTripRandom is the encode->decode property over random records,
// with a non-default enterprise number.
func TestRoundTripRandom(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		want := sameDomain(ipfixtest.Random(seed, 40), 7)
		e := NewFlowEncoder(4242)
		s := NewSession("test")
		s.PEN = 4242
		got, _, err := s.Decode(encodeMessage(e, 7, 0, want), nil)
		if err != nil {
			t.Fatal(err)
		}
		checkEqual(t, got, want)
	}
}

// A decoder with another PEN must not take MIRA's elements for its own.
func TestForeignPENSkipped(t *testing.T) {
	want := sameDomain(ipfixtest.Samples()[:1], 0)
	s := NewSession("test")
	s.PEN = 99
	got, _, err := s.Decode(encodeMessage(NewFlowEncoder(0), 0, 0, want), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Aggregate != 0 || got[0].Category != 0 || got[0].Packets != want[0].Packets {
		t.Fatalf("got %+v", got[0])
	}
}

func TestVarLen(t *testing.T) {
	for _, n := range []int{0, 1, 254, 255, 256, 65535} {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(i)
		}
		b := AppendVarLen(nil, v)
		got, used, ok := ReadVarLen(b)
		if !ok || used != len(b) || !reflect.DeepEqual(got, v) {
			t.Fatalf("n=%d: ok=%v used=%d/%d", n, ok, used, len(b))
		}
		if n > 0 {
			if _, _, ok := ReadVarLen(b[:len(b)-1]); ok {
				t.Fatalf("n=%d: truncated value accepted", n)
			}
		}
	}
	if _, _, ok := ReadVarLen([]byte{255, 1}); ok {
		t.Fatal("truncated long prefix accepted")
	}
}

// msgb builds hand-made messages for the malformed-input table.
type msgb struct{ b []byte }

func newMsg(domain, seq uint32) *msgb {
	return &msgb{b: AppendHeader(nil, Header{Sequence: seq, Domain: domain})}
}
func (m *msgb) raw(v ...byte) *msgb { m.b = append(m.b, v...); return m }
func (m *msgb) u16(v ...uint16) *msgb {
	for _, x := range v {
		m.b = binary.BigEndian.AppendUint16(m.b, x)
	}
	return m
}
func (m *msgb) set(id uint16, body func(*msgb)) *msgb {
	var s int
	m.b, s = AppendSetHeader(m.b, id)
	body(m)
	m.b = FinishSet(m.b, s, 0)
	return m
}
func (m *msgb) done() []byte { FinishMessage(m.b); return m.b }

// tmpl256 is a template of two fields: protocolIdentifier(1), packetDeltaCount(4).
func tmpl256(m *msgb) { m.u16(256, 2, IEProtocolIdentifier, 1, IEPacketDeltaCount, 4) }

func data256(recs ...[5]byte) func(*msgb) {
	return func(m *msgb) {
		for _, r := range recs {
			m.raw(r[:]...)
		}
	}
}

func TestMalformed(t *testing.T) {
	rec := [5]byte{6, 0, 0, 0, 9}
	tests := []struct {
		name    string
		udp     bool
		msgs    [][]byte
		reason  Reason
		offset  int
		records int
	}{
		{name: "bad version", msgs: [][]byte{func() []byte { b := newMsg(0, 0).done(); b[1] = 9; return b }()},
			reason: ReasonBadVersion},
		{name: "short message", msgs: [][]byte{{0, 10, 0, 16}}, reason: ReasonBadMessageLength},
		{name: "length past input", msgs: [][]byte{func() []byte { b := newMsg(0, 0).done(); b[3] = 40; return b }()},
			reason: ReasonBadMessageLength, offset: 2},
		{name: "length below header", msgs: [][]byte{func() []byte { b := newMsg(0, 0).raw(0, 0, 0, 0).done(); b[3] = 8; return b }()},
			reason: ReasonBadMessageLength, offset: 2},
		{name: "set shorter than header", msgs: [][]byte{newMsg(0, 0).u16(256, 2).done()},
			reason: ReasonShortSet, offset: 16},
		{name: "set past message", msgs: [][]byte{newMsg(0, 0).u16(256, 40, 0).done()},
			reason: ReasonBadSetLength, offset: 16},
		{name: "trailing bytes", msgs: [][]byte{newMsg(0, 0).raw(1, 2).done()},
			reason: ReasonShortSet, offset: 16},
		{name: "template id below 256", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(12, 1, 4, 1) }).done()},
			reason: ReasonBadTemplateID, offset: 20},
		{name: "field count enormous", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 60000, 4, 1) }).done()},
			reason: ReasonFieldCount, offset: 20},
		{name: "enterprise number cut", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 1, 0x8001, 4, 0) }).done()},
			reason: ReasonFieldCount, offset: 20},
		{name: "options scope zero", msgs: [][]byte{newMsg(0, 0).set(3, func(m *msgb) { m.u16(256, 1, 0, 149, 4) }).done()},
			reason: ReasonBadScopeCount, offset: 20},
		{name: "options scope above count", msgs: [][]byte{newMsg(0, 0).set(3, func(m *msgb) { m.u16(256, 1, 2, 149, 4) }).done()},
			reason: ReasonBadScopeCount, offset: 20},
		{name: "zero-length records", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 1, 4, 0) }).set(256, func(m *msgb) { m.raw(0, 0, 0, 0) }).done()},
			reason: ReasonZeroLengthRecord, offset: 20},
		{name: "reserved set id", msgs: [][]byte{newMsg(0, 0).set(1, func(m *msgb) { m.raw(0, 0, 0, 0) }).done()},
			reason: ReasonReservedSetID, offset: 16},
		{name: "data before template", msgs: [][]byte{newMsg(0, 0).set(256, data256(rec)).done()},
			reason: ReasonDataWithoutTemplate, offset: 16},
		// goflow2's endless loop: a zero-field template, then data for it.
		{name: "withdrawal then data (tcp)", msgs: [][]byte{
			newMsg(0, 0).set(2, tmpl256).done(),
			newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 0) }).set(256, data256(rec)).done()},
			reason: ReasonDataWithoutTemplate, offset: 24},
		{name: "withdrawal over udp", udp: true, msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 0) }).set(256, data256(rec)).done()},
			reason: ReasonZeroFieldTemplate, offset: 20, records: 0},
		{name: "truncated fixed record", msgs: [][]byte{newMsg(0, 0).set(2, tmpl256).set(256, func(m *msgb) { m.raw(rec[:]...).raw(6, 1) }).done()},
			reason: ReasonTruncatedRecord, offset: 41, records: 1},
		{name: "bad varlen", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(300, 2, 4, 1, 82, VarLen) }).set(300, func(m *msgb) { m.raw(6, 3, 'a', 'b', 6, 200, 'x') }).done()},
			reason: ReasonBadVarLen, offset: 41, records: 1},
		{name: "bad long varlen", msgs: [][]byte{newMsg(0, 0).set(2, func(m *msgb) { m.u16(300, 2, 4, 1, 82, VarLen) }).set(300, func(m *msgb) { m.raw(6, 255, 0) }).done()},
			reason: ReasonBadVarLen, offset: 36},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession("test input")
			s.UDP = tc.udp
			var recs []flow.Record
			var last error
			for _, m := range tc.msgs {
				var err error
				recs, _, err = s.Decode(m, recs)
				if err != nil {
					last = err
				}
			}
			st := s.Stats()
			if st.Malformed[tc.reason] != 1 {
				t.Fatalf("malformed counters %v, want one %s (last error %v)", st.Malformed, tc.reason, last)
			}
			if len(recs) != tc.records {
				t.Fatalf("got %d records, want %d", len(recs), tc.records)
			}
			var de *DecodeError
			if !errors.As(last, &de) || de.Reason != tc.reason || de.Offset != tc.offset {
				t.Fatalf("error %v (%+v), want %s at offset %d", last, de, tc.reason, tc.offset)
			}
			if de.Input != "test input" || de.Error() == "" {
				t.Fatalf("error does not name the input: %v", de)
			}
		})
	}
}

func TestTemplateLifecycle(t *testing.T) {
	rec := [5]byte{17, 0, 0, 1, 0}
	s := NewSession("t")
	decode := func(b []byte) []flow.Record {
		t.Helper()
		recs, _, _ := s.Decode(b, nil)
		return recs
	}
	// Data before its template is dropped and counted, then decodes once
	// the template has come.
	if n := len(decode(newMsg(5, 0).set(256, data256(rec)).done())); n != 0 {
		t.Fatalf("data without template gave %d records", n)
	}
	got := decode(newMsg(5, 0).set(2, tmpl256).set(256, data256(rec, rec)).done())
	if len(got) != 2 || got[0].Proto != 17 || got[0].Packets != 256 || got[0].ObservationDomain != 5 {
		t.Fatalf("got %+v", got)
	}
	// Same template id in another domain is a different template.
	if n := len(decode(newMsg(6, 0).set(256, data256(rec)).done())); n != 0 {
		t.Fatal("template leaked across domains")
	}
	// Redefinition: packetDeltaCount first now.
	got = decode(newMsg(5, 2).set(2, func(m *msgb) { m.u16(256, 2, IEPacketDeltaCount, 4, IEProtocolIdentifier, 1) }).
		set(256, data256([5]byte{0, 0, 0, 3, 6})).done())
	if len(got) != 1 || got[0].Packets != 3 || got[0].Proto != 6 {
		t.Fatalf("after redefinition got %+v", got)
	}
	if st := s.Stats(); st.TemplatesRedefined != 1 || st.TemplatesLearned != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Options template and all-templates withdrawal (set 2, id 2) keeps
	// the options template; set 3 id 3 removes it.
	decode(newMsg(5, 3).set(3, func(m *msgb) { m.u16(257, 2, 1, IEObservationDomainID, 4, IESamplingPacketInterval, 4) }).done())
	if s.Templates() != 2 {
		t.Fatalf("%d templates, want 2", s.Templates())
	}
	decode(newMsg(5, 3).set(2, func(m *msgb) { m.b = AppendWithdrawal(m.b, TemplateSetID) }).done())
	if s.Templates() != 1 {
		t.Fatalf("after withdrawing all data templates: %d templates, want 1", s.Templates())
	}
	decode(newMsg(5, 3).set(3, func(m *msgb) { m.b = AppendWithdrawal(m.b, OptionsSetID) }).done())
	if s.Templates() != 0 {
		t.Fatalf("after withdrawing all options templates: %d templates", s.Templates())
	}
	if st := s.Stats(); st.TemplatesWithdrawn != 2 {
		t.Fatalf("withdrawn %d, want 2", st.TemplatesWithdrawn)
	}
}

func TestOptionsSamplingAndUptime(t *testing.T) {
	s := NewSession("t")
	m := newMsg(0, 0).
		set(3, func(m *msgb) {
			m.u16(257, 3, 1, IEObservationDomainID, 4, IESamplingPacketInterval, 4, IESystemInitTimeMilliseconds, 8)
		}).
		set(257, func(m *msgb) {
			m.raw(0, 0, 0, 0, 0, 0, 0, 100)
			m.b = binary.BigEndian.AppendUint64(m.b, 1_600_000_000_000)
		}).
		set(2, func(m *msgb) { m.u16(256, 2, IEFlowStartSysUpTime, 4, IEFlowEndSysUpTime, 4) }).
		set(256, func(m *msgb) { m.raw(0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0) }).done()
	got, _, err := s.Decode(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SamplingPacketInterval != 100 ||
		got[0].First != 1_600_000_001_000*1e6 || got[0].Last != 1_600_000_002_000*1e6 {
		t.Fatalf("got %+v", got)
	}
	if st := s.Stats(); st.OptionsRecords != 1 || st.DataRecords != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSequence(t *testing.T) {
	rec := [5]byte{6, 0, 0, 0, 1}
	s := NewSession("t")
	msg := func(seq uint32, n int) []byte {
		recs := make([][5]byte, n)
		for i := range recs {
			recs[i] = rec
		}
		return newMsg(9, seq).set(2, tmpl256).set(256, data256(recs...)).done()
	}
	steps := []struct {
		seq       uint32
		n         int
		lost, ooo uint64
	}{
		{0xfffffffd, 2, 0, 0},
		{0xffffffff, 3, 0, 0}, // wraps to 2
		{2, 1, 0, 0},
		{10, 1, 7, 0}, // 3..9 lost
		{5, 2, 7, 1},  // a late message
		{11, 1, 7, 1}, // still expecting 11
		{13, 1, 8, 1},
	}
	for i, st := range steps {
		if _, _, err := s.Decode(msg(st.seq, st.n), nil); err != nil {
			t.Fatal(err)
		}
		if got := s.Stats(); got.LostRecords != st.lost || got.OutOfOrder != st.ooo {
			t.Fatalf("step %d: lost %d ooo %d, want %d %d", i, got.LostRecords, got.OutOfOrder, st.lost, st.ooo)
		}
	}
	// Sequence numbers are per domain: another domain starts afresh.
	if _, _, err := s.Decode(newMsg(10, 1000).set(2, tmpl256).done(), nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats(); got.LostRecords != 8 {
		t.Fatalf("new domain changed lost count to %d", got.LostRecords)
	}
}

func TestSymptomListErrorsKeepRecord(t *testing.T) {
	r := sameDomain(ipfixtest.Samples()[4:5], 0)
	e := NewFlowEncoder(0)
	msg := encodeMessage(e, 0, 0, r)
	s := NewSession("t")
	// Withdrawal of the sub-template is not possible in one message;
	// instead point the list at an unknown template id.
	bad := append([]byte(nil), msg...)
	i := indexOf(bad, []byte{stlSemanticAllOf, byte(SymptomTemplateID >> 8), byte(SymptomTemplateID & 0xff)})
	if i < 0 {
		t.Fatal("subTemplateList not found")
	}
	bad[i+2]++
	got, _, err := s.Decode(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Symptoms != nil || got[0].Packets != r[0].Packets {
		t.Fatalf("got %+v", got)
	}
	if s.Stats().Malformed[ReasonBadSubTemplateList] != 1 {
		t.Fatal("bad list not counted")
	}
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// splitMessages cuts an RFC 5655 file into messages.
func splitMessages(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= HeaderLen {
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < HeaderLen || l > len(b) {
			break
		}
		out = append(out, b[:l])
		b = b[l:]
	}
	return out
}

func corpusFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(peertest.CorpusFile(t, "generated"), "*.ipfix"))
	if len(files) == 0 {
		t.Fatal("no testdata/corpus/generated/*.ipfix")
	}
	return files
}

func TestDecodeCorpus(t *testing.T) {
	for _, f := range corpusFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := NewSession(filepath.Base(f))
		n := 0
		for _, m := range splitMessages(b) {
			recs, _, err := s.Decode(m, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			n += len(recs)
		}
		st := s.Stats()
		// Records whose times nfdump, too, shows ending well after the
		// message's export time, or before they start (softflowd
		// replaying a capture with sysUpTime times) are implausible.
		bad := nfdumpImplausible(t, strings.TrimSuffix(f, ".ipfix")+".nfdump.json")
		want := [NumReasons]uint64{}
		want[ReasonImplausibleTime] = uint64(bad)
		if (n == 0 && bad == 0) || st.Malformed != want {
			t.Fatalf("%s: %d records, stats %+v, want %d implausible-time", f, n, st, bad)
		}
		// ipfixDump (libfixbuf) warns of each sequence anomaly; our
		// lost/out-of-order counts must agree with its expected/got pairs.
		lost, ooo := ipfixDumpSequence(t, strings.TrimSuffix(f, ".ipfix")+".ipfixDump.txt")
		if st.LostRecords != lost || st.OutOfOrder != ooo {
			t.Fatalf("%s: lost %d out-of-order %d, ipfixDump says %d %d", f, st.LostRecords, st.OutOfOrder, lost, ooo)
		}
		t.Logf("%s: %d flow records from %d data records", filepath.Base(f), n, st.DataRecords)
	}
}

func TestNoAllocs(t *testing.T) {
	recs := sameDomain(ipfixtest.Samples(), 1)
	e := NewFlowEncoder(0)
	msg := encodeMessage(e, 1, 0, recs)
	buf := make([]byte, 0, 65536)
	if n := testing.AllocsPerRun(100, func() {
		b := buf[:0]
		for i := range recs {
			b = e.AppendRecord(b, &recs[i])
		}
	}); n != 0 {
		t.Fatalf("AppendRecord: %v allocs per run", n)
	}
	s := NewSession("t")
	out := make([]flow.Record, 0, 64)
	s.Decode(msg, out) // learn templates, grow the symptom arena
	seq := uint32(0)
	if n := testing.AllocsPerRun(100, func() {
		seq += uint32(len(recs))
		binary.BigEndian.PutUint32(msg[8:], seq)
		out, _, _ = s.Decode(msg, out[:0])
	}); n != 0 {
		t.Fatalf("Decode: %v allocs per run", n)
	}
}

func BenchmarkEncode(b *testing.B) {
	recs := ipfixtest.Random(1, 1024)
	e := NewFlowEncoder(0)
	for i := range recs {
		e.Template(&recs[i])
	}
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = e.AppendRecord(buf[:0], &recs[i%len(recs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecode(b *testing.B) {
	recs := sameDomain(ipfixtest.Random(2, 20), 1)
	e := NewFlowEncoder(0)
	msg := encodeMessage(e, 1, 0, recs)
	s := NewSession("b")
	out := make([]flow.Record, 0, 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint32(msg[8:], uint32(i*len(recs)))
		out, _, _ = s.Decode(msg, out[:0])
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

var seqWarning = regexp.MustCompile(`out of sequence \(in domain 0x[0-9a-f]+, expected 0x([0-9a-f]+), got 0x([0-9a-f]+)\)|out of sequence \(in domain 0+, expected 0x([0-9a-f]+), got 0x([0-9a-f]+)\)`)

func ipfixDumpSequence(t *testing.T, path string) (lost, ooo uint64) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range seqWarning.FindAllStringSubmatch(string(b), -1) {
		e, g := m[1], m[2]
		if e == "" {
			e, g = m[3], m[4]
		}
		ev, _ := strconv.ParseUint(e, 16, 32)
		gv, _ := strconv.ParseUint(g, 16, 32)
		if d := uint32(gv) - uint32(ev); d < 1<<31 {
			lost += uint64(d)
		} else {
			ooo++
		}
	}
	return lost, ooo
}

// TestOtherExporterElements decodes elements MIRA does not export but
// nProbe, YAF and others do: seconds and NTP-format microsecond times,
// total counters, post (nfdump: "out") counters, and reverse counters.
func TestOtherExporterElements(t *testing.T) {
	ntp := func(sec int64, frac uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(sec+2208988800)), frac)
	}
	s := NewSession("t")
	m := newMsg(3, 0).
		set(2, func(m *msgb) {
			m.u16(256, 6, IESourceIPv4Address, 4, IEDestinationIPv4Address, 4, IEFlowStartSeconds, 4, IEFlowEndMicroseconds, 8,
				IEPacketTotalCount, 4, IEOctetTotalCount, 4)
			m.u16(257, 6, IESourceIPv6Address, 16, IEDestinationIPv6Address, 16, IEPacketDeltaCount, 2, IEOctetDeltaCount, 2,
				IEPostPacketDeltaCount, 2, IEPostOctetDeltaCount, 2)
		}).
		set(256, func(m *msgb) {
			m.raw(192, 0, 2, 1, 192, 0, 2, 2, 0x5c, 0x8a, 0xa5, 0x9a) // 2019-03-14T19:03:54Z
			m.raw(ntp(1552590235, 1<<31)...)                          // +1.5 s
			m.raw(0, 0, 0, 7, 0, 0, 1, 0)
		}).
		set(257, func(m *msgb) {
			m.raw(netip.MustParseAddr("2001:db8::1").AsSlice()...)
			m.raw(netip.MustParseAddr("2001:db8::2").AsSlice()...)
			m.raw(0, 5, 0x01, 0x2c, 0, 4, 0, 200)
		}).done()
	got, _, err := s.Decode(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d records: %+v", len(got), got)
	}
	if got[0].First != 1552590234*1e9 || got[0].Last != 1552590235500*1e6 || got[0].Packets != 7 || got[0].Octets != 256 || got[0].IPVersion != 4 {
		t.Fatalf("seconds/microseconds/total counters: %+v", got[0])
	}
	fwd, rev := got[1], got[2]
	if fwd.Packets != 5 || fwd.Octets != 300 || rev.Packets != 4 || rev.Octets != 200 ||
		rev.Src != fwd.Dst || rev.Dst != fwd.Src || fwd.IPVersion != 6 || rev.ObservationDomain != 3 {
		t.Fatalf("post counters as the reverse direction: %+v / %+v", fwd, rev)
	}
}

// TestRegistryCoversTemplates: every element of every flow template is in
// the registry, with the length the registry gives it.
func TestRegistryCoversTemplates(t *testing.T) {
	e := NewFlowEncoder(777)
	for _, r := range ipfixtest.Random(9, 500) {
		e.Template(&r)
	}
	ts := append(e.Templates(), e.SymptomTemplate())
	if len(ts) < 20 {
		t.Fatalf("only %d templates", len(ts))
	}
	for _, tm := range ts {
		for _, f := range tm.Fields {
			ie, ok := Lookup(777, f.Enterprise, f.ID)
			if !ok || ie.Length != f.Length {
				t.Fatalf("template %d: field %d/%d length %d: registry has %+v (%v)", tm.ID, f.Enterprise, f.ID, f.Length, ie, ok)
			}
		}
	}
	seen := map[[2]uint32]bool{}
	for _, ie := range Registry {
		k := [2]uint32{ie.Enterprise, uint32(ie.ID)}
		if ie.MIRA {
			k[0] = 1
		}
		if seen[k] || ie.Name == "" || ie.Type.String() == "" {
			t.Fatalf("registry entry %+v duplicated or incomplete", ie)
		}
		seen[k] = true
	}
}

// nfdumpImplausible counts the records of nfdump's JSON listing that end
// more than MaxClockSkew after they were received (the export time, for
// a file) or end before they start: 0 without a listing.
func nfdumpImplausible(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct{ First, Last, Received string }
	if err := json.Unmarshal(b, &recs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n := 0
	for _, r := range recs {
		var ts [3]time.Time
		for i, v := range []string{r.First, r.Last, r.Received} {
			if ts[i], err = time.Parse("2006-01-02T15:04:05.000", v); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		if ts[1].After(ts[2].Add(MaxClockSkew)) || ts[1].Before(ts[0]) {
			n++
		}
	}
	return n
}

// TestSessionLimits: beyond MaxTemplates the least recently used
// template (received or used by data) is evicted; beyond MaxDomains the
// least recently active domain's state; both counted.
func TestSessionLimits(t *testing.T) {
	s := NewSession("t")
	s.MaxTemplates, s.MaxDomains = 2, 2
	tmpl := func(id uint16) func(*msgb) {
		return func(m *msgb) { m.u16(id, 2, IEProtocolIdentifier, 1, IEPacketDeltaCount, 4) }
	}
	rec := [5]byte{17, 0, 0, 0, 9}
	decode := func(b []byte) int {
		recs, _, _ := s.Decode(b, nil)
		return len(recs)
	}
	decode(newMsg(1, 0).set(2, tmpl(256)).set(2, tmpl(257)).done())
	decode(newMsg(1, 0).set(256, data256(rec)).done()) // 256 used: 257 is the LRU
	decode(newMsg(1, 0).set(2, tmpl(258)).done())
	if n := decode(newMsg(1, 0).set(256, data256(rec)).set(258, data256(rec)).done()); n != 2 || s.Templates() != 2 {
		t.Fatalf("%d records from 256 and 258, %d templates", n, s.Templates())
	}
	if n := decode(newMsg(1, 0).set(257, data256(rec)).done()); n != 0 || s.Stats().TemplatesEvicted != 1 {
		t.Fatalf("257 should be evicted: %d records, stats %+v", n, s.Stats())
	}
	decode(newMsg(2, 0).done())
	decode(newMsg(1, 0).done())
	decode(newMsg(3, 0).done()) // evicts domain 2, the least recently active
	if _, ok := s.DomainOptions(2); ok || s.Stats().DomainsEvicted != 1 {
		t.Fatalf("domain 2 kept, stats %+v", s.Stats())
	}
	if _, ok := s.DomainOptions(1); !ok {
		t.Fatal("domain 1 evicted")
	}
}

// TestScannedOctetsRoundTrip: a record's scanned octets travel in
// MIRAScannedOctets, in templates of their own (ids up to
// LastTemplateID), beside symptoms and application metadata; a record
// without them keeps its template.
func TestScannedOctetsRoundTrip(t *testing.T) {
	var want []flow.Record
	for i, r := range sameDomain(ipfixtest.Samples(), 3) {
		r.ScannedOctets = uint64(i) * 1000003 // the first: none
		want = append(want, r)
	}
	want[len(want)-1].ScannedOctets = 1<<40 + 5 // a wide value (the probe saturates at 2^32-1)
	e := NewFlowEncoder(0)
	for i := range want {
		tm, _ := e.Template(&want[i])
		without := want[i]
		without.ScannedOctets = 0
		tw, _ := e.Template(&without)
		if scanned := want[i].ScannedOctets != 0; scanned != (tm.ID != tw.ID) || tm.ID > LastTemplateID {
			t.Errorf("record %d (scanned %d): template %d, %d without", i, want[i].ScannedOctets, tm.ID, tw.ID)
		}
		if has := hasField(tm, MIRAScannedOctets); has != (want[i].ScannedOctets != 0) {
			t.Errorf("record %d: template %d has scannedOctetDeltaCount: %v", i, tm.ID, has)
		}
	}
	got, _, err := NewSession("test").Decode(encodeMessage(e, 3, 0, want), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, got, want)
}

func hasField(tm *Template, id uint16) bool {
	for _, f := range tm.Fields {
		if f.ID == id && f.Enterprise != 0 {
			return true
		}
	}
	return false
}

// TestPrintable: the word-at-a-time test agrees with the byte test on
// every byte value at every position of names of 1-24 bytes.
func TestPrintable(t *testing.T) {
	byByte := func(v []byte) bool {
		for _, c := range v {
			if c <= ' ' || c >= 0x7f {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 24; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				v := []byte("www.example-name.org:443/x")[:n]
				v[at] = byte(c)
				if got, want := printable(v), byByte(v); got != want {
					t.Fatalf("%q: printable %v, want %v", v, got, want)
				}
			}
		}
	}
}

// TestSequenceSeed checks the rules for a domain seeded from earlier
// transport sessions (Session.Seed): a first message ahead of the seed
// counts the gap lost, one behind (a restarted exporter) or at 0
// re-seeds without counting, a spooling domain counts no gap at its
// first message, and only the first message is compared with the seed.
func TestSequenceSeed(t *testing.T) {
	rec := [5]byte{6, 0, 0, 0, 1}
	msg := func(domain, seq uint32, n int) []byte {
		recs := make([][5]byte, n)
		for i := range recs {
			recs[i] = rec
		}
		return newMsg(domain, seq).set(2, tmpl256).set(256, data256(recs...)).done()
	}
	spoolMsg := func(domain, seq uint32) []byte {
		b := AppendHeader(nil, Header{Sequence: seq, Domain: domain})
		b, s := AppendSetHeader(b, OptionsSetID)
		b = AppendTemplate(b, SpoolOptionsTemplate(DefaultPEN))
		b = FinishSet(b, s, 0)
		b, s = AppendSetHeader(b, SpoolOptionsTemplateID)
		b = AppendSpoolRecord(b, domain, 77)
		b = FinishSet(b, s, 0)
		if err := FinishMessage(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	seeds := map[uint32]uint32{1: 100, 2: 100, 3: 100, 4: 100, 5: 0xfffffff0}
	for _, c := range []struct {
		name           string
		domain         uint32
		msgs           [][]byte
		lost, restarts uint64
		next           uint32
	}{
		{"ahead", 1, [][]byte{msg(1, 130, 2)}, 30, 0, 132},
		{"at the seed", 2, [][]byte{msg(2, 100, 2)}, 0, 0, 102},
		{"restarted at 0", 3, [][]byte{msg(3, 0, 2)}, 0, 1, 2},
		{"behind, then a gap in the session", 4, [][]byte{msg(4, 40, 2), msg(4, 45, 1)}, 3, 1, 46},
		{"ahead across the wrap", 5, [][]byte{msg(5, 4, 1)}, 20, 0, 5},
		{"spool ahead", 1, [][]byte{spoolMsg(1, 150), msg(1, 151, 1)}, 0, 1, 152},
		{"no seed", 9, [][]byte{msg(9, 500, 1)}, 0, 0, 501},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewSession("t")
			s.Seed = func(d uint32) (uint32, bool) {
				n, ok := seeds[d]
				return n, ok
			}
			for _, m := range c.msgs {
				if _, _, err := s.Decode(m, nil); err != nil {
					t.Fatal(err)
				}
			}
			st := s.Stats()
			seeded := c.lost
			if c.name == "behind, then a gap in the session" {
				seeded = 0
			}
			if st.LostRecords != c.lost || st.SeededLost != seeded || st.SeqRestarts != c.restarts || st.OutOfOrder != 0 {
				t.Fatalf("lost %d (seeded %d) restarts %d ooo %d, want %d (%d) %d 0",
					st.LostRecords, st.SeededLost, st.SeqRestarts, st.OutOfOrder, c.lost, seeded, c.restarts)
			}
			next, _, ok := s.Sequence()
			if !ok || next != c.next {
				t.Fatalf("next %d ok %v, want %d", next, ok, c.next)
			}
		})
	}
	// Sequence reports the gap before the last message only.
	s := NewSession("t")
	s.Seed = func(uint32) (uint32, bool) { return 10, true }
	for i, want := range []uint32{5, 0} {
		if _, _, err := s.Decode(msg(1, 15+uint32(i)*2, 2), nil); err != nil {
			t.Fatal(err)
		}
		if _, gap, _ := s.Sequence(); gap != want {
			t.Fatalf("message %d: gap %d, want %d", i, gap, want)
		}
	}
	// A message that cannot be counted says so.
	if _, _, err := s.Decode([]byte{0, 9, 0, 16}, nil); err == nil {
		t.Fatal("bad version accepted")
	}
	if _, _, ok := s.Sequence(); ok {
		t.Fatal("bad message counted")
	}
}
