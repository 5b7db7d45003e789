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
// stamp every record with their packet or flow sampling interval), or
// from the sampling options its exporter sent for the observation domain.
// A record from a domain whose exporter is known to sample (an override
// says "options" or the domain announced sampling before, then withdrew)
// but whose options have not arrived yet is held for up to Config.Hold;
// when that expires it is released unscaled and counted in
// Stats.Unscaled, and its biflow is marked (Biflow.SamplingUnknown) so
// that reports never show a mis-scaled total as exact.
//
// # Completion
//
// A connection is complete, and its biflow emitted, when every probe's
// records have moved a Window past its last record (the watermark: the
// earliest of the probes' latest record times, ignoring a probe more
// than ten windows behind as stalled) and no record of it arrived for a
// Window of wall-clock time; a record of the same connection starting
// more than a Window after it begins a new biflow; Flush completes all.
// Probes that replay files at different speeds, or connect late, thus
// still pair. A probe the Consolidator has not heard from yet cannot
// hold completion back.
//
// # Duplicate suppression policy
//
// Two records of the same direction of the same connection whose times
// overlap (within Config.Window) but that come from different probes are
// the same traffic seen twice (overlapping capture points). Per direction
// the records of each probe are summed (a probe's active-timeout records
// continue each other), then one probe's observation is kept: the one
// with the highest selection probability (the most exact), ties going to
// the larger packet count and then to the lower probe name. The others
// are dropped and counted: Biflow.Merged, Stats.Duplicates. The two
// directions may come from different probes (split by direction): they
// are paired, not merged.
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
// variance k(1-q)/q².
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
// packet counters, which nfdump shows as "out" bytes and packets).
// Report-time consolidation of stored flows (collector/report) applies
// the same duplicate policy and estimators.
//
// A Consolidator is not safe for concurrent use; the collector feeds it
// from one goroutine (ARCHITECTURE.md §6: one consolidation worker per
// partition of the canonical biflow key).
package consolidate
