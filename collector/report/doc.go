// Package report turns stored flow records into what an operator reads: a
// biflow report (both directions of each connection paired, with a usage
// table per aggregate and category and a summary of the collector's
// counters) and a listing of the unidirectional flows, each as JSON, CSV or
// an aligned text table. RunReport and RunFlows implement `mira report` and
// `mira flows` so that cmd/mira stays a thin dispatcher.
//
// # Biflow pairing
//
// Records are grouped by connection: the same two endpoints, protocol and
// VLAN in either direction (ICMP and ICMPv6 echo request and reply form one
// connection). Within a group, the records of one direction are first
// chained: a record whose predecessor in that direction ended by active
// timeout, by lack of resources or for an unknown reason (flowEndReason 0,
// as from exporters that do not send it), and which starts within the
// pairing window of the predecessor's end, continues the predecessor's flow
// and is summed into it. Idle timeout, FIN/RST and forced ends close a
// chain. Then, in order of start time, each chain is paired with the
// not-yet-paired chain of the opposite direction whose interval, widened by
// the window on both sides, overlaps its own and whose start is closest.
// A chain left without a partner is a biflow with zero reverse counters.
//
// The initiator (the biflow's src) is: for ICMP echo, the side that sent
// the request; for TCP, the side that sent a SYN but no ACK at all (a bare
// SYN, as in an unanswered or reset attempt) when only one side did, else
// the only side with a SYN (flow.Record.TCPFlags is the union over the
// flow, so a normal client and server both show SYN and ACK); otherwise the
// side whose flow started first, and on a tie (common with millisecond
// timestamps) the side whose destination port is the lower, the service
// port, which is also nfdump -B's guess.
//
// Pairing only looks at the records given: a connection whose other half
// falls outside a report's time range is reported unpaired.
//
// Build keeps every record in memory; reports over very large ranges should
// narrow the time range.
package report
