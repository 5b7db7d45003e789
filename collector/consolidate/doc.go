// Package consolidate turns the flow records of many probes into global
// results (paper §3.3, §3.5, §4): sampling correction per exporter and
// observation domain, duplicate suppression, biflow pairing across probes,
// and usage statistics per aggregate × category × time bucket with
// estimated totals and confidence intervals, plus per-AS statistics from
// an operator's prefix→AS table.
//
// # Sampling correction
//
// Every record is weighted by the inverse of its selection probability.
// The probability comes, in this order, from an operator override for the
// record's probe (Config.Overrides), from the record itself (MIRA probes
// stamp every record with their packet or flow sampling interval, and
// the collecting process stamps the others with their domain's options
// once it has them), or from the sampling options its exporter sent for
// the observation domain.
// A record from a domain whose exporter is known to sample (an override
// says "options" or the domain announced sampling before, then withdrew)
// but whose options have not arrived yet is held for up to Config.Hold;
// when that expires it is released unscaled and counted in
// Stats.Unscaled, and its biflow is marked (Biflow.SamplingUnknown) so
// that reports never show a mis-scaled total as exact. Over stored
// records, collector/report does the same from the announcements the
// store kept (store.Announcement): options that arrived after records
// scale them retroactively, and records of a domain that never announced
// options (not a MIRA probe's), from an exporter that samples, are added with
// AddRecord(..., true): unscaled, counted and marked.
//
// # Connections (the biflow definition)
//
// This is MIRA's one definition of a biflow, used by every consumer:
// the live forwarder (collector.yaml forward), `mira report`, `mira
// analyze` and the collector's HTTP API (collector/report feeds the
// stored records through a Consolidator in start order).
//
// A connection is the set of records of one canonical 5-tuple (the two
// endpoints' addresses and ports and the protocol, in either direction;
// for ICMP and ICMPv6 echo request and reply share one key, other ICMP
// messages are keyed by type and code) that continue each other within
// Config.Window. The VLAN is not part of the key: two probes may see the
// two directions on links tagged differently. A record belongs to a
// pending connection of its key unless
//
//   - it starts more than a Window after the connection's last record
//     ends (or ends more than a Window before it starts), or
//   - the connection's same direction holds a record that ended by FIN or
//     RST (flowEndReason "end of flow detected") before the record
//     starts (for the same probe, at or before: a meter that closed a
//     flow starts a new one for the next packet, so the trailing ACK of a
//     closed connection, or a reuse of the port pair, is a new
//     connection; for another probe, more than Config.Skew, 5 s, before:
//     probes' clocks differ, and a short connection seen by a probe whose
//     clock is 3 s ahead would otherwise be counted twice).
//
// Active-timeout, idle-timeout, resource and forced ends do not end a
// connection: the next record of the same direction within the Window
// continues it and is summed into it. When several pending connections
// of one key can take a record (port reuse within the window, or the
// other direction of an earlier connection arriving late from another
// probe), it goes to the one its probe's observation of that direction
// continues, else to the one whose start is closest to its own. A
// direction seen alone is still a biflow, with zero reverse counters.
//
// The initiator (the biflow's Src) is, in order: for ICMP echo, the side
// that sent the request; for TCP, the side whose flow has a SYN and no
// ACK (a bare SYN) when only one has, else the only side with a SYN
// (flags are the union over the flow); else the side whose flow started
// first; on a tie (common at millisecond resolution), the side sending
// to the lower port.
//
// # Completion
//
// A connection is complete, and its biflow emitted, when every probe's
// records have moved a Window past its last record (the watermark: the
// earliest of the probes' latest record times, ignoring a probe more
// than ten windows behind as stalled) and no record of it arrived for a
// Window of wall-clock time; Flush completes all. Probes that replay
// files at different speeds, or connect late, thus still pair. A probe
// the Consolidator has not heard from yet cannot hold completion back.
// With Config.Batch (records all at hand, fed in start order) the wall
// clock plays no part: a connection completes when a record of its key
// starts more than a Window after its end, or at Flush, so the result
// does not depend on feeding speed. A
// record that arrives after its connection was completed starts a new
// biflow; that is the only way the live and the stored results can
// differ.
//
// # Duplicate suppression policy
//
// Records of the same direction of the same connection that come from
// different probes are the same traffic seen twice (overlapping capture
// points). A probe is an Origin: exporter and observation domain, so two
// probes behind one address are told apart by their domains. Per
// direction the records of each probe are summed (its observation), then
// one probe's observation is kept: the one with the highest selection
// probability (the most exact), ties going, among unsampled observations,
// to the larger packet count (the other probe lost packets), and then to
// the lower probe name and domain (among sampled observations the count
// is the sample's luck, not exactness: never the larger). The others are
// dropped and counted: Biflow.Merged, Stats.Duplicates
// (Config.KeepDuplicates sums them instead). The two directions may come
// from different probes (split by direction): they are paired, not
// merged.
//
// Packet-sampled probes that overlap: a direction the preferred probe
// sampled no packet of looks like one it does not see, so another
// probe's observation stands in for it, and the estimate is high by the
// traffic of such directions, Σ (1-p)^n · n over directions of n packets
// with p the preferred probe's probability (+2 to +3 % packets for two
// probes at 1/4 and 1/10 or 1/20 over the same synthetic capture, mostly
// one- and two-packet flows). The collector cannot tell the two cases
// apart; overlapping probes that sample should select flows with the
// same seed (mode flow: a probe at 1 in 10 keeps a subset of what one
// at 1 in 4 keeps, so the preferred probe misses nothing the other has),
// or be scoped apart (aggregates.scope) so that each direction is
// metered by one probe.
//
// # Estimators and confidence intervals
//
// For packet sampling where each packet is kept with probability p = 1/N
// (random; systematic count-based sampling is treated the same, which is
// accurate when packet order is unrelated to flows), a direction that
// shows n packets and o octets estimates n/p packets and o/p octets. The
// estimator of a total X = Σ x_i (x_i the packet sizes) is unbiased with
// variance Var = (1-p)/p · Σ x_i², estimated from the sample by
// (1-p)/p² · Σ_sel x_i². Packets are counted with x_i = 1: the estimator
// n/p of a true count T has variance T(1-p)/p, estimated by n(1-p)/p²
// (N(1-p)/p² with N the sampled count). For octets Σ_sel x_i² is taken as
// o²/n, the record's packet sizes replaced by their mean (exact for
// equal-size packets, an underestimate otherwise).
//
// For hash-based flow selection where each connection is kept whole with
// probability q = 1/N, a kept biflow with totals x stands for x/q, with
// variance estimate (1-q)/q² · x². The biflow count k estimates k/q with
// variance k(1-q)/q². A connection whose records state different flow
// intervals (a self-regulating probe ends every flow when its rate
// changes and draws a new selection) is scaled part by part: the traffic
// of each interval by its own 1/q, the parts' variances added; it counts
// for 1/q connections with q its lowest selection probability.
//
// Packet sampling is applied record by record too: the records of one
// probe's direction that state different packet intervals (its sampling
// changed by a reload or a restart while the connection went on) are
// scaled each by its own 1/p, their variances added.
//
// Records, directions and connections are selected independently, so the
// variances of a usage row add up. The interval is
// estimate ± z·sqrt(Var), z the normal quantile for Config.Confidence
// (1.96 for 95%); with many sampled packets the central limit theorem
// makes it cover the truth in about that share of cases (checked by
// TestCoverage over many seeds). Packet sampling cannot see connections
// none of whose packets were sampled: under packet sampling the biflow
// count is the number observed, a lower bound, and its interval is not
// given.
//
// # Feeding and forwarding
//
// Consumer adapts a Consolidator to the collecting process
// (collector.Consumer and OptionsConsumer); Forwarder, as Config.Sink,
// re-exports completed biflows as RFC 5103 IPFIX (reverse octet and
// packet counters, which nfdump shows as "out" bytes and packets); a
// sampled biflow as records of one sampling each (Biflow.Rates,
// SplitRates) naming their selector (ipfix.AppendBiflowSelectorRecord),
// so that nfdump scales them to the biflow's estimates.
// A Biflow extends flow.Biflow, the one connection type; the record
// encoding is the codec's (ipfix.AppendBiflowRecord) and the transport
// is injected: Forwarder sends through a BiflowExporter, which the
// commands satisfy with the probe's exporting process (exporter.New), so
// that the collector never imports exporter/ (ARCHITECTURE.md §2).
// Report-time consolidation of stored flows (collector/report) runs
// this same code (Config.Batch, AddRecord in start order).
//
// A Consolidator is not safe for concurrent use; the collector feeds it
// from one goroutine (ARCHITECTURE.md §6: one consolidation worker per
// partition of the canonical biflow key).
package consolidate
