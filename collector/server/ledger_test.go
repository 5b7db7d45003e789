package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/ipfix/ipfixtest"
)

// ledgerMessage is one message holding the ledger template and l.
func ledgerMessage(export uint32, l ipfix.Ledger) []byte {
	b := ipfix.AppendHeader(nil, ipfix.Header{ExportTime: export, Domain: 1})
	b, s := ipfix.AppendSetHeader(b, ipfix.OptionsSetID)
	b = ipfix.AppendTemplate(b, ipfix.LedgerOptionsTemplate(0))
	b = ipfix.FinishSet(b, s, 0)
	b, s = ipfix.AppendSetHeader(b, ipfix.LedgerOptionsTemplateID)
	b = ipfix.AppendLedgerRecord(b, 1, &l)
	b = ipfix.FinishSet(b, s, 0)
	ipfix.FinishMessage(b)
	return b
}

// TestLedgerGarbageIsolated: one exporter sends a plausible ledger, then
// an implausible one (a total beyond any process's), one whose message
// count grew while a loss total shrank, and a stale one (fewer
// messages: a resend); only the first is taken, the implausible and the
// backwards ones are counted as malformed, and the other exporter's
// ledger and the report's loss figures are what they are without the
// garbage.
func TestLedgerGarbageIsolated(t *testing.T) {
	clean := exportStream(t, &exporter.Config{Ledger: func() flow.Loss { return flow.Loss{Queue: 5, Eviction: 2} }}, ipfixtest.Random(3, 40))
	now := uint32(time.Now().Unix())
	first := ipfix.Ledger{SystemInit: int64(now-100) * 1000, Messages: 10, Records: 100, Loss: flow.Loss{Queue: 50}}
	var garbage []byte
	for _, l := range []ipfix.Ledger{
		first,
		{SystemInit: first.SystemInit, Messages: 11, Records: 100, Loss: flow.Loss{Queue: 50, Regulation: 1 << 62}},
		{SystemInit: first.SystemInit, Messages: 20, Records: 100, Loss: flow.Loss{Queue: 10}},
		{SystemInit: first.SystemInit, Messages: 5, Records: 50, Loss: flow.Loss{Queue: 20}},
	} {
		garbage = append(garbage, ledgerMessage(now, l)...)
	}
	run := func(streams map[netip.AddrPort][]byte) (*Server, *report.Report) {
		cfg, err := config.LoadCollector("")
		if err != nil {
			t.Fatal(err)
		}
		cfg.DB = filepath.Join(t.TempDir(), "f.db")
		s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		st, err := store.Open(cfg.DB, &store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s.st = st
		s.coll = collector.New(s, nil)
		for _, a := range []netip.AddrPort{garbageExporter, cleanExporter} {
			if b, ok := streams[a]; ok {
				s.coll.ServeStream(context.Background(), bytes.NewReader(b), collector.Origin{Exporter: a, Transport: "file"})
			}
		}
		if err := s.commit(); err != nil {
			t.Fatal(err)
		}
		if err := st.AddStats(statsDelta(collector.Stats{}, s.coll.Stats())); err != nil {
			t.Fatal(err)
		}
		rep, err := report.FromStore(st, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s, rep
	}
	_, base := run(map[netip.AddrPort][]byte{cleanExporter: clean})
	s, rep := run(map[netip.AddrPort][]byte{cleanExporter: clean, garbageExporter: garbage})
	byProbe := func(r *report.Report) map[string]report.ProbeLedger {
		m := map[string]report.ProbeLedger{}
		for _, l := range r.Summary.Ledgers {
			l.Started = time.Time{}
			m[l.Probe] = l
		}
		return m
	}
	b, g := byProbe(base), byProbe(rep)
	c := cleanExporter.Addr().String()
	if !reflect.DeepEqual(b[c], g[c]) || b[c].Loss["queue"] != 5 {
		t.Fatalf("the clean exporter's ledger is %+v beside garbage, %+v alone (want queue 5)", g[c], b[c])
	}
	gl := g[garbageExporter.Addr().String()]
	if gl.Messages != first.Messages || gl.Loss["queue"] != 50 || gl.Loss["regulation"] != 0 {
		t.Fatalf("the garbage exporter's ledger is %+v, want its first (plausible) one", gl)
	}
	if rep.Summary.Loss["queue"] != base.Summary.Loss["queue"]+50 || rep.Summary.Loss["regulation"] != base.Summary.Loss["regulation"] {
		t.Fatalf("report loss %v, want queue %d+50 and regulation as without the garbage (%d)", rep.Summary.Loss, base.Summary.Loss["queue"], base.Summary.Loss["regulation"])
	}
	if rep.Summary.Malformed["implausible-ledger"] != 1 || s.ledgerSeen.Backwards != 1 || s.ledgerSeen.Stale != 1 {
		t.Fatalf("implausible ledgers %d, backwards %d, stale %d; want 1 each", rep.Summary.Malformed["implausible-ledger"], s.ledgerSeen.Backwards, s.ledgerSeen.Stale)
	}
}
