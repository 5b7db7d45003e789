package ipfix

import (
	"fmt"
	"testing"

	"github.com/mira-project/mira/flow"
)

// TestLedgerAndSpoolOptionsRoundTrip encodes a ledger and a spool
// instance record and decodes them with a Session.
func TestLedgerAndSpoolOptionsRoundTrip(t *testing.T) {
	want := Ledger{SystemInit: 1_700_000_000_123, Messages: 12, Records: 3456,
		Loss: flow.Loss{Ring: 1, Queue: 2, Regulation: 3, Eviction: 4, Export: 5, Spool: 6}, RegulationChanges: 7, QueueScaled: 8}
	b := AppendHeader(nil, Header{Domain: 9})
	b, s := AppendSetHeader(b, OptionsSetID)
	b = AppendTemplate(b, LedgerOptionsTemplate(0))
	b = AppendTemplate(b, SpoolOptionsTemplate(0))
	b = FinishSet(b, s, 0)
	b, s = AppendSetHeader(b, LedgerOptionsTemplateID)
	b = AppendLedgerRecord(b, 9, &want)
	b = FinishSet(b, s, 0)
	b, s = AppendSetHeader(b, SpoolOptionsTemplateID)
	b = AppendSpoolRecord(b, 9, 0xfeedface12345678)
	b = FinishSet(b, s, 0)
	if err := FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	sess := NewSession("test")
	var got DomainOptions
	sess.OnOptions = func(d uint32, o DomainOptions) {
		if d == 9 {
			got = o
		}
	}
	if _, _, err := sess.Decode(b, nil); err != nil {
		t.Fatal(err)
	}
	if !got.HaveLedger || got.Ledger != want {
		t.Fatalf("ledger %+v (have %v), want %+v", got.Ledger, got.HaveLedger, want)
	}
	if got.SpoolInstance != 0xfeedface12345678 {
		t.Fatalf("spool instance %x", got.SpoolInstance)
	}
	if st := sess.Stats(); st.OptionsRecords != 2 {
		t.Fatalf("%d options records, want 2", st.OptionsRecords)
	}
}

// TestImplausibleLedger: ledgers no exporting process can send (totals
// beyond MaxLedgerCount, more records than the messages can carry, a
// process started after the export time) are dropped and counted, and
// do not replace the domain's last good ledger.
func TestImplausibleLedger(t *testing.T) {
	good := Ledger{SystemInit: 1_700_000_000_000, Messages: 10, Records: 500, Loss: flow.Loss{Queue: 7}}
	msg := func(l Ledger) []byte {
		b := AppendHeader(nil, Header{Domain: 3, ExportTime: 1_700_000_100})
		b, s := AppendSetHeader(b, OptionsSetID)
		b = AppendTemplate(b, LedgerOptionsTemplate(0))
		b = FinishSet(b, s, 0)
		b, s = AppendSetHeader(b, LedgerOptionsTemplateID)
		b = AppendLedgerRecord(b, 3, &l)
		b = FinishSet(b, s, 0)
		if err := FinishMessage(b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	sess := NewSession("test")
	var got []Ledger
	sess.OnOptions = func(_ uint32, o DomainOptions) {
		if o.HaveLedger {
			got = append(got, o.Ledger)
		}
	}
	bad := []Ledger{
		{SystemInit: good.SystemInit, Messages: 11, Records: 500, Loss: flow.Loss{Regulation: 1 << 60}},
		{SystemInit: good.SystemInit, Messages: 1, Records: 20000},
		{SystemInit: 1_700_000_100_000 + 2*3600*1000, Messages: 11, Records: 500},
		{SystemInit: -5, Messages: 11, Records: 500},
	}
	for _, l := range append([]Ledger{good}, bad...) {
		if _, _, err := sess.Decode(msg(l), nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0] != good {
		t.Fatalf("ledgers handed over: %+v, want only %+v", got, good)
	}
	if n := sess.Stats().Malformed[ReasonImplausibleLedger]; n != uint64(len(bad)) {
		t.Fatalf("%d implausible ledgers counted, want %d", n, len(bad))
	}
}

// TestLedgerRecordsAlone: an exporter that sends only
// exportedFlowRecordTotalCount (no message count) is not implausible.
func TestLedgerRecordsAlone(t *testing.T) {
	b := AppendHeader(nil, Header{Domain: 4, ExportTime: 1_700_000_100})
	b, s := AppendSetHeader(b, OptionsSetID)
	b = AppendTemplate(b, &Template{ID: 300, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4}, {ID: IEExportedFlowRecordTotalCount, Length: 8}}})
	b = FinishSet(b, s, 0)
	b, s = AppendSetHeader(b, 300)
	b = append(b, 0, 0, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0)
	b = FinishSet(b, s, 0)
	if err := FinishMessage(b); err != nil {
		t.Fatal(err)
	}
	sess := NewSession("test")
	var got DomainOptions
	sess.OnOptions = func(_ uint32, o DomainOptions) { got = o }
	if _, _, err := sess.Decode(b, nil); err != nil {
		t.Fatal(err)
	}
	if !got.HaveLedger || got.Ledger.Records != 65536 || sess.Stats().Malformed[ReasonImplausibleLedger] != 0 {
		t.Fatalf("ledger %+v (have %v), implausible %d", got.Ledger, got.HaveLedger, sess.Stats().Malformed[ReasonImplausibleLedger])
	}
}

// TestTemplateIDsDistinct: no two of the templates MIRA's exporters send
// share an id (the biflow templates took the symptom and category name
// options' ids once, then the spool and ledger options', so that an
// exporter sending both would have redefined one with the other).
func TestTemplateIDsDistinct(t *testing.T) {
	named := map[string]uint16{
		"SymptomTemplateID": SymptomTemplateID, "ExporterOptionsTemplateID": ExporterOptionsTemplateID,
		"SamplingOptionsTemplateID": SamplingOptionsTemplateID, "AggregateOptionsTemplateID": AggregateOptionsTemplateID,
		"PSAMPOptionsTemplateID": PSAMPOptionsTemplateID, "SymptomOptionsTemplateID": SymptomOptionsTemplateID,
		"CategoryOptionsTemplateID": CategoryOptionsTemplateID, "PSAMPHashOptionsTemplateID": PSAMPHashOptionsTemplateID,
		"SpoolOptionsTemplateID": SpoolOptionsTemplateID, "LedgerOptionsTemplateID": LedgerOptionsTemplateID,
		"ElementTypesTemplateID": ElementTypesTemplateID, "SelectorOptionsTemplateID": SelectorOptionsTemplateID,
		"BiflowSelectorTemplateV4": BiflowSelectorTemplateV4, "BiflowSelectorTemplateV6": BiflowSelectorTemplateV6,
		"BiflowTemplateV4": BiflowTemplateV4, "BiflowTemplateV6": BiflowTemplateV6,
	}
	seen := map[uint16]string{}
	for v := 0; v < allVariants; v++ {
		seen[templateID(v)] = fmt.Sprintf("flow template of variant %d", v)
	}
	for name, id := range named {
		if id < 256 {
			t.Errorf("%s = %d: template ids start at 256", name, id)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("%s = %d, the id of %s too", name, id, other)
		}
		seen[id] = name
	}
}
