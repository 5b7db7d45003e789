// Package symptom is MIRA's content matcher: the symptom database, its
// pattern language, the compiler, the streaming multi-pattern matcher and the
// format validators for binary media, plus an embedded default database.
//
// A database is YAML (see default.yaml for the grammar in use). Each symptom
// has a name, a description and patterns. Pattern kinds:
//
//	content:  Snort-style text with |hex| parts, e.g. "RCPT TO:" or "|16 03|"
//	literal:  a raw string, no escapes
//	hex:      bytes in hex, e.g. "FF FB" (pipes allowed)
//	value/mask: bytes compared under a bit mask, e.g. value "FF E0" mask "FF E0"
//	validate: a named format validator (mpeg-audio, id3v2, ogg, flac, mp4,
//	          matroska, avi, wav, flv, mpeg-ps, asf)
//	regex:    an RE2 expression (Go regexp) run only where its literal prefix
//	          (at least 2 bytes) was found
//
// and modifiers nocase, anchor (start: at stream offset 0; line: at the start
// of the stream or after "\n"), offset and depth (a window counted from the
// start of the flow direction's payload, as in Snort).
//
// Database.Scan is called per packet with the in-order payload bytes of one
// flow direction. The per-direction State is 8 bytes: the states of two
// Aho-Corasick DFAs (case-sensitive and case-folded patterns). Inside a packet
// a prefilter (a hashed 4-byte-gram bitmap plus an exact gram table, and
// exact tables for shorter triggers) finds candidates that are verified in
// place; the DFAs run only over the bytes needed to finish matches that
// began in an earlier packet and to compute the state carried to the next
// packet. A literal split across packets is therefore counted exactly once.
// Masked, validated and regular-expression patterns need their bytes inside
// one packet: an occurrence that spans a packet boundary is not counted.
//
// Hazards: Scan never retains payload; it allocates nothing. A DB is
// immutable and safe for concurrent use; State and Counts belong to one flow
// and must not be shared between goroutines. After a TCP gap or
// retransmission the caller must call State.Reset (and count it).
package symptom
