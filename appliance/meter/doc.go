// Package meter is MIRA's flow table: it turns decoded packets into
// unidirectional flow records keyed on the innermost IP header.
//
// A Table is owned by one goroutine (one pipeline worker owns one shard);
// it takes no locks. Time is capture time: the table never reads the
// wall clock, so a replayed 2019 capture yields 2019 flow times and the
// same expiry decisions on every run. Live sources call Tick with the
// current time so idle flows expire while no packets arrive.
//
// Flows end by idle timeout, active timeout (the paper's aggregation
// period), TCP FIN/RST (after a short grace so the final ACKs stay in the
// flow), pressure (the table is bounded: when full, the flow whose
// timeout falls soonest, finished TCP flows and the least recently seen
// first, is exported early and counted), or a forced flush at the end.
// Timeouts are checked every 10 ms of capture time and are exact there:
// every flow whose deadline has passed ends, with the reason whose
// deadline came first (TestAgainstModel checks the table against a
// straightforward model of these rules).
//
// Deadlines live in a timer wheel (slots of 10 ms, or wider for timeouts
// beyond 160 s) of lazily updated items: a packet never touches the
// wheel, it only moves its flow's deadline later; an item found early is
// moved to its flow's real deadline when its slot comes up, and a flow
// whose deadline moves earlier (FIN, RST, a late packet) gets a new item.
// So the per-packet path reads and writes one entry and one index slot
// and nothing else; a doubly linked lru list cost two more cache misses
// (the neighbours) on most packets of large tables.
//
// The per-packet path (Add) allocates nothing: entries live in a slab
// grown a chunk at a time up to MaxFlows, wheel items in blocks from a
// pool that only grows. Entries hold no pointers (keys are stored as
// words, records are built when flows end), so the garbage collector
// never scans the slab.
//
// With hundreds of thousands of flows the index and the entries do not fit
// in any cache, and cache misses are most of metering's cost. AddBatch
// meters a few packets at a time, prefetching (PREFETCHT0 on amd64, see
// prefetch_amd64.s) every packet's index slot, then its entry a few
// packets ahead of the one metered, so the misses overlap. Its packets
// are all decoded before the first is metered: their Payload slices must
// stay valid for the call (the pipeline batches only when nothing reads
// payloads). The slot array and the entry slab are advised to use
// transparent huge pages (huge_linux.go), which saves a TLB miss on most
// lookups.
package meter
