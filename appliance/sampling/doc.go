// Package sampling selects the packets or flows a probe meters: 1-in-N
// systematic count-based packet sampling, uniform random packet sampling
// with probability 1/N, and RFC 5475 hash-based flow selection.
//
// Hash-based selection hashes the canonical 5-tuple (the two endpoints in
// a fixed order, so both directions of a connection hash alike) together
// with a seed shared by all probes, and keeps the packet when the hash
// falls in the selected range. A connection is therefore kept or dropped
// whole, in both directions and at every probe configured with the same
// seed and rate, so symptom counts stay meaningful and biflows pair.
//
// A Sampler carries per-packet state (the count, the random generator):
// it is not safe for concurrent use; give each pipeline worker its own
// copy with Clone. Keep allocates nothing.
//
// The selection configuration is described by IANA PSAMP values
// (SelectorAlgorithm, PacketInterval, PacketSpace, Probability) so the
// exporter can announce it in an options record and the collector can
// scale counts by the inverse of the selection probability.
package sampling
