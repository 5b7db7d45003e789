package cluster_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// ipfixMessages is an exporter's stream of n records in domain 1, cut
// into its messages.
func ipfixMessages(t *testing.T, seed uint64, n int) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, &exporter.Config{StreamMessageSize: 1024})
	recs := ipfixtest.Random(seed, n)
	now := time.Now()
	for i := range recs {
		recs[i].ObservationDomain = 1
		d := recs[i].Last - recs[i].First
		recs[i].Last = now.Add(-time.Minute).UnixNano()
		recs[i].First = recs[i].Last - d
	}
	if err := e.Export(recs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for b := buf.Bytes(); len(b) > 0; {
		l := int(binary.BigEndian.Uint16(b[2:]))
		msgs = append(msgs, b[:l])
		b = b[l:]
	}
	return msgs
}

// ledgerMsg is one message of domain 7 holding the ledger template and l,
// its sequence number seq.
func ledgerMsg(seq uint32, l ipfix.Ledger) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(time.Now().Unix()), Sequence: seq, Domain: 7})
	b, s := ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
	b = ipfix.AppendTemplate(b, ipfix.LedgerOptionsTemplate(0))
	b = ipfix.FinishSet(b, s, 0)
	b, s = ipfix.AppendSetHeader(b, ipfix.LedgerOptionsTemplateID)
	b = ipfix.AppendLedgerRecord(b, 7, &l)
	b = ipfix.FinishSet(b, s, 0)
	ipfix.FinishMessage(b)
	return b
}

// sendStream sends msgs on one TCP connection to port and closes it.
func sendStream(t *testing.T, port int, msgs [][]byte) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
}

// collectorSeries are a /metrics page's mira_collector_* series, less
// those of a single collector's store (the cluster's workers store).
func collectorSeries(t *testing.T, addr string) map[string]float64 {
	m, err := scrape("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		if !strings.HasPrefix(k, "mira_collector_") {
			continue
		}
		switch strings.SplitN(k, "{", 2)[0] {
		case "mira_collector_stored_records_total", "mira_collector_store_errors_total", "mira_collector_store_busy_total",
			"mira_collector_dropped_records_total", "mira_collector_pending_records", "mira_collector_duplicate_records_total":
			continue
		}
		out[k] = v
	}
	return out
}

// TestIngestLossMetrics: the same IPFIX input (a TCP session missing one
// data message, ledgers of which one is stale and one went backwards, a
// malformed message; then a second session starting again at sequence
// 0) sent to a single mira-collector and to an ingest node of a cluster
// on the real nats-server shows the same loss figures in both /metrics:
// every mira_collector_* series of the single collector but its store's
// (lost records, sequence restarts, the loss ledger by stage, malformed
// by reason, stale ledgers, evictions), with the values the input
// makes. Before, the ingest node's /metrics had no sequence restarts, no
// loss by stage, no stale ledgers or ledger-backwards, and it published
// the backwards ledger.
func TestIngestLossMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemons")
	}
	_, collBin, miraBin := binaries(t)
	dir := t.TempDir()
	url, js := natsWorker(t, collBin, dir)

	sPort, gPort := freePort(t), freePort(t)
	sMetrics, gMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	single := start(t, "single collector", collBin, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", sPort),
		"--db", filepath.Join(dir, "single.db"), "--metrics", sMetrics)
	ingest := start(t, "ingest", collBin, "--listen", fmt.Sprintf("tcp://127.0.0.1:%d", gPort), "--nats", url,
		"--metrics", gMetrics)
	waitTCP(t, single, sPort)
	waitTCP(t, ingest, gPort)

	// Session 1: one data message in the middle is missing.
	msgs := ipfixMessages(t, 11, 400)
	if len(msgs) < 6 {
		t.Fatalf("the exporter wrote %d messages, want several", len(msgs))
	}
	drop := len(msgs) / 2
	gap := binary.BigEndian.Uint32(msgs[drop+1][8:]) - binary.BigEndian.Uint32(msgs[drop][8:])
	if gap == 0 {
		t.Fatal("the dropped message holds no data record")
	}
	first := append(append([][]byte{}, msgs[:drop]...), msgs[drop+1:]...)
	sysInit := (time.Now().Unix() - 100) * 1000
	for i, l := range []ipfix.Ledger{
		{SystemInit: sysInit, Messages: 10, Records: 100, Loss: flow.Loss{Queue: 50, Ring: 3}},
		{SystemInit: sysInit, Messages: 20, Records: 100, Loss: flow.Loss{Queue: 10}}, // backwards
		{SystemInit: sysInit, Messages: 5, Records: 50, Loss: flow.Loss{Queue: 20}},   // stale
	} {
		first = append(first, ledgerMsg(uint32(i), l))
	}
	// A message whose set runs past its end (domain 9).
	bad := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: uint32(time.Now().Unix()), Domain: 9})
	bad = binary.BigEndian.AppendUint16(bad, 300)
	bad = binary.BigEndian.AppendUint16(bad, 200)
	bad = append(bad, 0, 0, 0, 0)
	ipfix.FinishMessage(bad)
	first = append(first, bad)
	// Session 2: the exporter starts again at sequence 0.
	second := ipfixMessages(t, 12, 100)

	for _, c := range []struct {
		name, metrics string
		port          int
	}{{"single collector", sMetrics, sPort}, {"ingest node", gMetrics, gPort}} {
		for i, s := range [][][]byte{first, second} {
			sendStream(t, c.port, s)
			// Every message decoded and the session ended.
			want := uint32(len(first))
			if i == 1 {
				want += uint32(len(second))
			}
			peertest.WaitUntil(t, 30*time.Second, fmt.Sprintf("%s to decode session %d", c.name, i+1), func() bool {
				m := collectorSeries(t, c.metrics)
				return m["mira_collector_messages_total"] == float64(want) && m["mira_collector_sessions"] == 0
			})
		}
	}
	want, got := collectorSeries(t, sMetrics), collectorSeries(t, gMetrics)
	for k, v := range map[string]float64{
		"mira_collector_lost_records_total":                         float64(gap),
		`mira_collector_loss_total{stage="sequence"}`:               float64(gap),
		"mira_collector_sequence_restarts_total":                    1,
		`mira_collector_loss_total{stage="queue"}`:                  50,
		`mira_collector_loss_total{stage="ring"}`:                   3,
		`mira_collector_malformed_total{reason="ledger-backwards"}`: 1,
		"mira_collector_ledgers_stale_total":                        1,
	} {
		if want[k] != v {
			t.Errorf("single collector: %s = %v, want %v (the input's)", k, want[k], v)
		}
	}
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("ingest node: %s missing (single collector: %v)", k, want[k])
		case g != want[k]:
			t.Errorf("ingest node: %s = %v, single collector %v", k, g, want[k])
		default:
			t.Logf("%s %v", k, g)
		}
	}

	// The reports agree too: the ingest node's stats (StatsBucket) hold
	// the ledger-backwards count, and it published only the ledger the
	// single collector took.
	single.stop(t)
	ingest.stop(t)
	waitStored(t, js)
	sr, err := reportJSON(t, miraBin, "--db", filepath.Join(dir, "single.db"), "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	cr, err := reportJSON(t, miraBin, "--nats", url, "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"loss", cr.Summary.Loss, sr.Summary.Loss},
		{"malformed", cr.Summary.Malformed, sr.Summary.Malformed},
		{"evicted", cr.Summary.Evicted, sr.Summary.Evicted},
		{"lost", cr.Summary.Lost, sr.Summary.Lost},
		{"records", cr.Summary.Records, sr.Summary.Records},
		{"ledgers", ledgerFigures(cr), ledgerFigures(sr)},
	} {
		if g, w := mustJSON(t, c.got), mustJSON(t, c.want); g != w {
			t.Errorf("report %s: cluster %s, single collector %s", c.what, g, w)
		}
	}
	if sr.Summary.Malformed["ledger-backwards"] != 1 || sr.Summary.Loss["queue"] != 50 {
		t.Errorf("single collector's report: malformed %v, loss %v; want ledger-backwards 1, queue 50", sr.Summary.Malformed, sr.Summary.Loss)
	}
}

// ledgerFigures are a report's ledgers without their times.
func ledgerFigures(r *report.Report) []report.ProbeLedger {
	var out []report.ProbeLedger
	for _, l := range r.Summary.Ledgers {
		l.Started = time.Time{}
		out = append(out, l)
	}
	return out
}
