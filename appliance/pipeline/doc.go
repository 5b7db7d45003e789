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
// drop for live sources, which cannot wait.
//
// Counters are kept per goroutine and published to atomics once per batch,
// so Stats never touches the hot path's memory.
package pipeline
