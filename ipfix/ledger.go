package ipfix

import (
	"encoding/binary"

	"github.com/mira-project/mira/flow"
)

// Options a probe sends about itself rather than about flows.
//
// SpoolOptionsTemplate announces that the exporting process spools and
// replays (exporter package, Spool): its record, scope
// observationDomainId, carries a random spoolInstance that the spool keeps
// across restarts. A collector that sees it keys the domain's sequence
// numbers by (exporter, domain, instance) and drops records whose
// sequence numbers it has already stored, which makes a replay after a
// reconnect exactly-once. Exporters that do not announce an instance are
// never deduplicated.
//
// LedgerOptionsTemplate carries the probe's loss ledger (RFC 7011 §4.1
// and §4.3 metering and exporting process statistics): scope
// observationDomainId, systemInitTimeMilliseconds (which process the
// totals belong to), exportedMessageTotalCount,
// exportedFlowRecordTotalCount, ignoredPacketTotalCount (packets the
// metering process did not measure: ring, queue and regulation),
// notSentFlowTotalCount (records the exporting process did not deliver:
// export and spool), then MIRA's per-stage totals and the count of
// self-regulation changes (MIRARegulationChanges) and the queue stage
// scaled to packets of the wire (MIRALossQueueScaled).
const (
	SpoolOptionsTemplateID  = SymptomTemplateID + 8 // 392
	LedgerOptionsTemplateID = SymptomTemplateID + 9 // 393
)

// SpoolOptionsTemplate is the spool-instance options template.
func SpoolOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: SpoolOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4},
		{ID: MIRASpoolInstance, Enterprise: pen, Length: 8},
	}}
}

// AppendSpoolRecord appends the data record of SpoolOptionsTemplate.
func AppendSpoolRecord(b []byte, domain uint32, instance uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, domain)
	return binary.BigEndian.AppendUint64(b, instance)
}

// Ledger is an exporting process's statistics as LedgerOptionsTemplate
// carries them.
type Ledger struct {
	// SystemInit is when the process whose totals these are started
	// (Unix milliseconds); totals of different processes add up.
	SystemInit int64
	// Messages and Records are exportedMessageTotalCount and
	// exportedFlowRecordTotalCount.
	Messages, Records uint64
	// Loss holds the probe's stages (ring .. spool); the collector's
	// stages are zero.
	Loss flow.Loss
	// RegulationChanges counts the probe's self-regulation changes
	// (state or sampling rate) so far.
	RegulationChanges uint64
	// QueueScaled is Loss.Queue with each packet counted as the packets
	// it stood for under self-regulation's 1-in-N selection: what the
	// queue losses take from an estimate of the traffic.
	QueueScaled uint64
}

// LedgerOptionsTemplate is the loss-ledger options template.
func LedgerOptionsTemplate(pen uint32) *Template {
	if pen == 0 {
		pen = DefaultPEN
	}
	return &Template{ID: LedgerOptionsTemplateID, ScopeCount: 1, Fields: []Field{
		{ID: IEObservationDomainID, Length: 4},
		{ID: IESystemInitTimeMilliseconds, Length: 8},
		{ID: IEExportedMessageTotalCount, Length: 8},
		{ID: IEExportedFlowRecordTotalCount, Length: 8},
		{ID: IEIgnoredPacketTotalCount, Length: 8},
		{ID: IENotSentFlowTotalCount, Length: 8},
		{ID: MIRALossRing, Enterprise: pen, Length: 8},
		{ID: MIRALossQueue, Enterprise: pen, Length: 8},
		{ID: MIRALossRegulation, Enterprise: pen, Length: 8},
		{ID: MIRALossEviction, Enterprise: pen, Length: 8},
		{ID: MIRALossExport, Enterprise: pen, Length: 8},
		{ID: MIRALossSpool, Enterprise: pen, Length: 8},
		{ID: MIRARegulationChanges, Enterprise: pen, Length: 8},
		{ID: MIRALossQueueScaled, Enterprise: pen, Length: 8},
	}}
}

// AppendLedgerRecord appends the data record of LedgerOptionsTemplate.
func AppendLedgerRecord(b []byte, domain uint32, l *Ledger) []byte {
	b = binary.BigEndian.AppendUint32(b, domain)
	b = binary.BigEndian.AppendUint64(b, uint64(l.SystemInit))
	b = binary.BigEndian.AppendUint64(b, l.Messages)
	b = binary.BigEndian.AppendUint64(b, l.Records)
	b = binary.BigEndian.AppendUint64(b, l.Loss.Ring+l.Loss.Queue+l.Loss.Regulation)
	b = binary.BigEndian.AppendUint64(b, l.Loss.Export+l.Loss.Spool)
	for _, v := range [...]uint64{l.Loss.Ring, l.Loss.Queue, l.Loss.Regulation, l.Loss.Eviction, l.Loss.Export, l.Loss.Spool} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = binary.BigEndian.AppendUint64(b, l.RegulationChanges)
	return binary.BigEndian.AppendUint64(b, l.QueueScaled)
}
