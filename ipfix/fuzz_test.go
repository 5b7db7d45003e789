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
