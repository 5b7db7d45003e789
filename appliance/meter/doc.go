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
// flow), pressure (the table is bounded: when full, the least recently
// seen flow is exported early and counted), or a forced flush at the end.
//
// The per-packet path (Add) allocates nothing: entries live in a slab
// allocated when the table is made, linked into intrusive lists.
//
// With hundreds of thousands of flows the index and the entries do not fit
// in any cache, and cache misses are most of metering's cost. AddBatch
// meters a few packets at a time, prefetching (PREFETCHT0 on amd64, see
// prefetch_amd64.s) every packet's index slot, then its entry and lru
// neighbours a few packets ahead of the one metered, so the misses
// overlap. Its packets are all decoded before the first is metered: their
// Payload slices must stay valid for the call (the pipeline batches only
// when nothing reads payloads). The slot array and the entry slab are
// advised to use transparent huge pages (huge_linux.go), which saves a TLB
// miss on most lookups.
package meter
