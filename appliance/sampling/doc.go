// Package sampling selects the packets or flows a probe meters: 1-in-N
// systematic count-based packet sampling, uniform random packet sampling
// with probability 1/N, and RFC 5475 hash-based flow selection.
//
// Hash-based selection hashes the canonical 5-tuple with the BOB hash
// function of RFC 5475 (Appendix A.2, Jenkins' 1997 hash; see BOB and
// FlowHash) and keeps the packet when the 32-bit output falls in the
// selected range [0, round(2^32/N)-1]. The initialiser is the configured
// seed (folded to 32 bits), shared by all probes. A connection is
// therefore kept or dropped whole, in both directions and at every probe
// configured with the same seed and rate, so symptom counts stay
// meaningful and biflows pair.
//
// Deviation from RFC 5475: its hash input for packet selection is a
// fixed set of IP header bytes and a payload prefix (§6.2.3), in packet
// order. MIRA selects flows (RFC 7014's hash-based flow selection), so
// the input is the flow key instead, and the key is made
// direction-independent: the endpoint (address, port) that sorts first
// comes first, then the other endpoint, then the protocol. ICMP and
// ICMPv6 are keyed on the addresses alone. A collector or another probe
// reproducing the selection must build the key the same way; the hash
// function, the initialiser and the ranges are the RFC's, and the
// exporter announces them with the RFC 5477 hash IEs
// (hashInitialiserValue, hashOutputRangeMin/Max, hashSelectedRangeMin/Max)
// so a collector can compute the selection probability exactly.
//
// A Sampler carries per-packet state (the count, the random generator):
// it is not safe for concurrent use; give each pipeline worker its own
// copy with Clone. Keep allocates nothing.
//
// The selection configuration is described by IANA PSAMP values
// (SelectorAlgorithm, PacketInterval, Probability, HashRange) so the
// exporter can announce it in an options record and the collector can
// scale counts by the inverse of the selection probability.
package sampling
