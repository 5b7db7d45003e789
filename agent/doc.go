// Package agent is the probe's SNMP agent. It answers GET, GETNEXT and
// GETBULK for MIRA-PROBE-MIB (package mib), SNMPv2-MIB's system and snmp
// groups, IF-MIB's ifTable and ifXTable for the capture interfaces, and
// the SNMPv3 engine and USM statistics, over SNMPv1, v2c (read-only
// communities with source-prefix restrictions) and v3 USM (SHA-1/SHA-2
// authentication, AES-128 privacy). It sends v2c and v3 notifications
// (traps or informs) when the probe enters or leaves overload and when an
// exporter loses or regains its collector.
//
// gosnmp parses and builds the messages; this package does everything an
// agent needs beyond the codec: the ordered OID view, GETNEXT/GETBULK
// semantics and tooBig handling by response size, the v1 mapping of
// Counter64 (RFC 3584), and the USM checks gosnmp leaves out (engine ID,
// user, security level, digest, time window) with their Report PDUs,
// engine boots persisted in a state file.
//
// Statistics come from a Provider the probe implements. The agent calls
// Provider.Snapshot from its own goroutine, outside the packet path; the
// provider should read atomics or per-worker counters and must not take
// locks the packet path holds.
//
// Goroutines: Serve runs one request loop on the calling goroutine and a
// watcher goroutine that polls the provider for notification events; both
// end when the context is cancelled.
package agent
