// Package ipfix is MIRA's IPFIX codec (RFC 7011, RFC 6313 subTemplateList,
// RFC 5103 reverse elements, RFC 5655 files): the information-element
// registry, message/set/template encoding into caller buffers, the mapping
// between flow.Record and MIRA's flow templates, and a decoding Session that
// keeps the template and sequence-number state of one transport session.
//
// Template ids: flow templates are FlowTemplateBase (256) + a variant
// bitmask, the symptom sub-template is SymptomTemplateID (384), the
// exporter options template ExporterOptionsTemplateID (385); options
// templates for sampling (386: samplingInterval for nfdump; 388: RFC 5477
// PSAMP, or 391 with the hash-based selection parameters), aggregate
// names (387), symptom and category names (389, 390), selector reports
// (395: the rate of the records whose selectorId names the selector),
// a spooling exporter's spool, loss ledger and element types (392 to
// 394); RFC 5103 biflow templates for re-export (398, 399; with
// selectorId 396, 397); flow templates of records with
// application metadata, FTP data ports or scanned octets take ids from
// AppTemplateBase (512) to LastTemplateID. MIRA's own
// elements carry the configured enterprise number (DefaultPEN 32473);
// symptoms travel as an RFC 6313 subTemplateList (IE 292) whose
// sub-template holds only enterprise elements, which nfdump 1.7 flattens
// harmlessly. Every flow record carries selectorId (IE 302, SelectorID
// of its packet and flow intervals), so that a collector scaling by
// selector (nfdump) scales it by its own rate. WriteElementXML describes MIRA's elements for libfixbuf's
// ipfixDump --element-file.
//
// Decoding maps other exporters' elements too: flowStart/End in seconds,
// milliseconds, NTP micro/nanoseconds or sysUpTime (with the
// systemInitTimeMilliseconds options record), total counters, RFC 5103
// reverse counters and post counters (as nfdump does, as the reverse
// direction: a biflow record yields two flow.Records).
//
// Plausibility: a well-formed flow record whose values no exporter can
// mean is dropped and counted (SessionStats.Malformed): more packets than
// MaxRecordPackets (implausible-count), more octets than packets × 65535
// (implausible-octets), or times that overflow int64 nanoseconds, lie
// before the Unix epoch, end before they start or end more than
// MaxClockSkew (1 h) after the message's export time (implausible-time).
// Records are never too old: replays of captures, some with unset clocks,
// export records from any time since 1970. A record without any time field is dated at
// the export time. Other exporters' records are not affected.
// Loss-ledger options (LedgerOptionsTemplate) are held to the same
// standard: a total beyond MaxLedgerCount, more records than the
// messages counted can carry, or a process start after the export time
// make them implausible-ledger, dropped and counted.
//
// Hazards: the Append* functions and FlowEncoder append into caller-owned
// slices and never retain them. Session.Decode returns records whose
// Symptoms slices alias an arena owned by the Session; they are valid only
// until the next call to Decode. A Session is not safe for concurrent use.
// The codec never logs: malformed input is returned as a *DecodeError and
// counted in SessionStats by Reason.
package ipfix
