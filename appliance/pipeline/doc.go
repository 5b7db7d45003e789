// Package pipeline runs the probe's packet path: capture sources feed
// decoders, decoded packets are spread over flow-table shards by a
// symmetric hash of their innermost addresses and ports (so both
// directions of a connection land in the same shard), and each shard's
// worker goroutine owns its meter.Table. Expired records go to a Sink.
//
// With one worker and file sources the whole path runs inline in one
// goroutine: read, decode, meter, with no hand-off at all; when nothing
// reads payloads (no symptom scanning, no Label) it decodes
// meter.BatchMax packets ahead and meters them with Table.AddBatch, whose
// flow lookups overlap their cache misses. Otherwise
// readers copy packets into per-worker batches (an arena of bytes plus the
// decoded packet headers) and hand whole batches over bounded channels.
// A full queue blocks a file reader (nothing is lost) and is counted as a
// drop for live sources and paced replay (Config.Speed), which cannot
// wait. Payloads of a stable source (a mapped file) are not copied.
//
// Live AF_PACKET capture runs to completion per worker instead: each
// worker owns one socket of the interface's flow-hash fanout group
// (drivers.BatchSource), takes frames in place from its ring in batches
// and meters them with AddBatch; nothing crosses goroutines, and the
// clock is read per tick, not per packet (live.go) When the capture stops, each worker reads on
// until its ring stays empty for a poll timeout (at most a second), so
// frames the kernel already took are metered, not discarded.
//
// Self-regulation (regulate.go; paper §3.2) watches the backlog (worker
// queues, or kernel rings) every few milliseconds. Above the high-water
// mark it first sheds scanning that cannot change results (TLS
// application data), then selects whole connections by an RFC 5475 hash
// at 1 in N, N sized from how many packets come against how many the
// busy workers meter; every change draws a new hash initialiser, and a
// change of rate cuts the workers' flows, so each record was metered at one rate and states
// it (flow.Record.SamplingFlowInterval). Below the low-water mark for
// Hold it steps back, a level at a time. Changes are reported through
// Config.OnRegulation with the capture time they took effect; the probe
// announces them in IPFIX sampling options.
//
// Reconfigure (reload.go) swaps the symptom database, fast-class lookup,
// labeller and filters of a running pipeline: every worker ends its
// flows at a batch boundary, all wait until the caller has announced the
// new configuration, then go on under it (a configuration reload).
//
// Counters are kept per goroutine and published to atomics once per batch
// (or tick), so Stats never touches the hot path's memory.
package pipeline
