// Package decode parses captured frames from the link layer down to the
// transport header of the innermost IP packet, decapsulating tunnels, so the
// flow meter can key each packet on its innermost 5-tuple.
//
// A Decoder is owned by one worker goroutine and is not safe for concurrent
// use, except for Counters, which may be called from any goroutine. Decode
// allocates nothing per packet.
//
// Hazards:
//   - Packet.Payload aliases the frame passed to Decode; it is valid only as
//     long as that frame is (for ring and file sources, until the source's
//     next call to Next).
//   - A *Error returned by Decode belongs to the Decoder and is overwritten by
//     the next call to Decode; copy it to keep it.
//   - Tunnel payloads that cannot be decoded (malformed, truncated by the
//     snap length, or not IP) do not fail the packet: it is returned as the
//     flow of the deepest IP header that did decode, and the event is
//     counted (bad-tunnel, tunnel-non-ip).
//   - Later IP fragments take their ports (and, when the first fragment was
//     tunnelled, the whole inner identity) from a small bounded table filled
//     by first fragments; a later fragment seen before its first fragment
//     keeps ports 0 and is counted as fragment-without-first.
package decode
