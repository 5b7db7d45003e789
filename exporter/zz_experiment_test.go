package exporter

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/mira-project/mira/exporter/ipfix"
)

func TestZZExperiment(t *testing.T) {
	variants := map[string][]ipfix.Field{
		"34+35":          {{ID: 149, Length: 4}, {ID: 34, Length: 4}, {ID: 35, Length: 1}},
		"34 only":        {{ID: 149, Length: 4}, {ID: 34, Length: 4}},
		"34+35+304(1)":   {{ID: 149, Length: 4}, {ID: 34, Length: 4}, {ID: 35, Length: 1}, {ID: 304, Length: 1}},
		"34+35+304(2)":   {{ID: 149, Length: 4}, {ID: 34, Length: 4}, {ID: 35, Length: 1}, {ID: 304, Length: 2}},
		"305+306+304":    {{ID: 149, Length: 4}, {ID: 304, Length: 2}, {ID: 305, Length: 4}, {ID: 306, Length: 4}},
		"302+304+305":    {{ID: 302, Length: 4}, {ID: 304, Length: 2}, {ID: 305, Length: 4}},
		"full":           {{ID: 149, Length: 4}, {ID: 34, Length: 4}, {ID: 35, Length: 1}, {ID: 304, Length: 2}, {ID: 311, Length: 8}},
	}
	for name, fields := range variants {
		n := startNfcapd(t)
		conn, _ := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", n.port))
		enc := ipfix.NewFlowEncoder(0)
		recs := sampledRecords(3, 0)
		tm, _ := enc.Template(&recs[0])
		b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: 1, Sequence: 0, Domain: 7})
		ot := &ipfix.Template{ID: 400, ScopeCount: 1, Fields: fields}
		var s int
		b, s = ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
		b = ipfix.AppendTemplate(b, ot)
		b = ipfix.FinishSet(b, s, 0)
		b, s = ipfix.AppendSetHeader(b, ipfix.TemplateSetID)
		b = ipfix.AppendTemplate(b, tm)
		b = ipfix.FinishSet(b, s, 0)
		b, s = ipfix.AppendSetHeader(b, 400)
		for _, f := range fields {
			switch f.ID {
			case 149:
				b = binary.BigEndian.AppendUint32(b, 7)
			case 302:
				b = binary.BigEndian.AppendUint32(b, 1)
			case 34:
				b = binary.BigEndian.AppendUint32(b, 10)
			case 35:
				b = append(b, 1)
			case 304:
				if f.Length == 1 {
					b = append(b, 1)
				} else {
					b = binary.BigEndian.AppendUint16(b, 1)
				}
			case 305:
				b = binary.BigEndian.AppendUint32(b, 1)
			case 306:
				b = binary.BigEndian.AppendUint32(b, 9)
			case 311:
				b = binary.BigEndian.AppendUint64(b, 0x3fb999999999999a)
			}
		}
		b = ipfix.FinishSet(b, s, 0)
		b, s = ipfix.AppendSetHeader(b, tm.ID)
		for i := range recs {
			b = enc.AppendRecord(b, &recs[i])
		}
		b = ipfix.FinishSet(b, s, 0)
		ipfix.FinishMessage(b)
		conn.Write(b)
		n.stop(t)
		out := n.dump(t, "-o", "csv", "-q")
		lines := strings.Split(out, "\n")
		t.Logf("%s: %s | %s", name, lines[0], strings.Join(strings.Fields(n.log.String())[len(strings.Fields(n.log.String()))-12:], " "))
	}
}
