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
package meter
