package ipfix

import (
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
