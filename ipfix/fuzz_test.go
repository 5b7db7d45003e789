package ipfix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// FuzzSession feeds a byte stream of messages to one Session: it must
// never panic or loop, every error must be a *DecodeError that was
// counted, and no data set may yield more records than its bytes allow.
func FuzzSession(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(peertest.CorpusFile(f, "generated"), "*.ipfix"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	e := NewFlowEncoder(0)
	f.Add(encodeMessage(e, 1, 0, sameDomain(ipfixtest.Samples(), 1)))
	f.Add(encodeMessage(NewFlowEncoder(0), 2, 5, sameDomain(ipfixtest.Random(3, 10), 2)))
	f.Add(newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 0) }).set(256, data256([5]byte{})).done())
	f.Add(newMsg(0, 0).set(2, func(m *msgb) { m.u16(256, 1, 4, 0) }).set(256, func(m *msgb) { m.raw(0, 0, 0, 0) }).done())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, udp := range []bool{false, true} {
			s := NewSession("fuzz")
			s.UDP = udp
			// plain decodes without the compiled plans: the same records
			// and counters.
			plain := NewSession("fuzz")
			plain.UDP, plain.plain = udp, true
			var out, pout []flow.Record
			in := b
			for len(in) >= HeaderLen {
				l := int(binary.BigEndian.Uint16(in[2:]))
				if l < HeaderLen || l > len(in) {
					l = len(in)
				}
				before := s.Stats()
				var err error
				out, _, err = s.Decode(in[:l], out[:0])
				after := s.Stats()
				var perr error
				pout, _, perr = plain.Decode(in[:l], pout[:0])
				if !reflect.DeepEqual(out, pout) || fmt.Sprint(err) != fmt.Sprint(perr) || plain.Stats() != after {
					t.Fatalf("compiled plan decodes differently:\n%+v %v\nplain:\n%+v %v", out, err, pout, perr)
				}
				if err != nil {
					var de *DecodeError
					if !errors.As(err, &de) {
						t.Fatalf("error %v is not a DecodeError", err)
					}
					if after.Malformed[de.Reason] == before.Malformed[de.Reason] {
						t.Fatalf("error %v not counted", err)
					}
				}
				// Each flow record takes at least one byte, two at most
				// per data record (biflows).
				if got := after.FlowRecords - before.FlowRecords; got > 2*uint64(l) || uint64(len(out)) != got {
					t.Fatalf("%d records from a %d-byte message (%d returned)", got, l, len(out))
				}
				in = in[l:]
			}
		}
	})
}

// TestWalkFailureCountsNothing: a variable-length flow record that runs
// past its set is refused whole before anything of it is counted
// (recordLen walks it ahead of the decoding): a bad application name
// ahead of the field that runs past the set is not counted as a bad
// name. (Finding the end while decoding, with the counting fields
// deferred, was tried: slower, 147-159 against 145-149 CPU ns a record
// in BenchmarkStoreEncoding.)
func TestWalkFailureCountsNothing(t *testing.T) {
	rec := ipfixtest.Samples()[6] // server name, ALPN, symptoms (last)
	rec.App.ServerName = "mail.example.net"
	msg := encodeMessage(NewFlowEncoder(0), 1, 0, []flow.Record{rec})
	i := bytes.Index(msg, []byte("mail.example.net"))
	if i < 0 {
		t.Fatal("name not in the message")
	}
	msg[i] = 1 // not printable: a bad name
	// Cut the last byte of the data set's record (the symptom list's) and fix the
	// set's and the message's lengths: the list runs past the set.
	set := bytes.LastIndex(msg[:i], []byte{byte(templateID(variant(&rec)) >> 8), byte(templateID(variant(&rec)))})
	if set < HeaderLen {
		t.Fatal("data set not found")
	}
	cut := 1 // and the set's padding
	for msg[len(msg)-cut] == 0 {
		cut++
	}
	binary.BigEndian.PutUint16(msg[set+2:], binary.BigEndian.Uint16(msg[set+2:])-uint16(cut))
	msg = msg[:len(msg)-cut]
	binary.BigEndian.PutUint16(msg[2:], uint16(len(msg)))
	for _, plain := range []bool{false, true} {
		s := NewSession("walk")
		s.plain = plain
		out, _, err := s.Decode(msg, nil)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != ReasonBadVarLen || len(out) != 0 {
			t.Fatalf("plain %v: %d records, error %v; want none and bad-varlen", plain, len(out), err)
		}
		if st := s.Stats(); st.BadAppNames != 0 || st.DataRecords != 0 || st.FlowRecords != 0 {
			t.Fatalf("plain %v: counted %d bad names, %d data records, %d flow records of a refused record",
				plain, st.BadAppNames, st.DataRecords, st.FlowRecords)
		}
	}
}

// TestCompiledSameAsPlain: the compiled plans (runs of fields, MIRA's
// lead, MIRA's symptom records) decode what the plain field walk decodes, with the
// same counters, on MIRA's template variants (ICMP, symptoms, both
// address families) and on the bench export $MIRA_BENCH_IPFIX when set;
// the runs and the symptom fast path are in use, so the comparison is
// not vacuous.
func TestCompiledSameAsPlain(t *testing.T) {
	recs := append(ipfixtest.Samples(), ipfixtest.Random(17, 3000)...)
	for i := range recs {
		if i%3 == 0 {
			recs[i].Symptoms = []flow.SymptomCount{{ID: uint16(i), Count: uint32(i * 7)}, {ID: 9, Count: 1}}
		}
	}
	var msgs [][]byte
	e := NewFlowEncoder(0)
	for i := 0; i < len(recs); i += 100 {
		msgs = append(msgs, encodeMessage(e, 1, uint32(i), sameDomain(recs[i:min(i+100, len(recs))], 1)))
	}
	if name := os.Getenv("MIRA_BENCH_IPFIX"); name != "" {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= HeaderLen {
			l := int(binary.BigEndian.Uint16(b[2:]))
			msgs, b = append(msgs, b[:l]), b[l:]
		}
	}
	s, plain := NewSession("compiled"), NewSession("plain")
	plain.plain = true
	var out, pout []flow.Record
	for i, m := range msgs {
		var err, perr error
		out, _, err = s.Decode(m, out[:0])
		pout, _, perr = plain.Decode(m, pout[:0])
		if fmt.Sprint(err) != fmt.Sprint(perr) || !reflect.DeepEqual(out, pout) {
			t.Fatalf("message %d: compiled %d records, %v; plain %d records, %v", i, len(out), err, len(pout), perr)
		}
	}
	if s.Stats() != plain.Stats() {
		t.Fatalf("counters differ:\ncompiled %+v\nplain    %+v", s.Stats(), plain.Stats())
	}
	used := map[op]bool{}
	pair, lead := false, false
	for _, tm := range s.templates {
		for _, f := range tm.fast {
			used[f.op] = true
		}
		pair, lead = pair || tm.symPair, lead || tm.lead
	}
	if !used[opRunCore] || !used[opRunICMP] || !used[opRunMIRA] || !pair || !lead {
		t.Fatalf("compiled plans not in use: core %v icmp %v mira %v symptom pairs %v lead %v",
			used[opRunCore], used[opRunICMP], used[opRunMIRA], pair, lead)
	}
	t.Logf("%d messages, %d flow records the same", len(msgs), s.Stats().FlowRecords)
}
