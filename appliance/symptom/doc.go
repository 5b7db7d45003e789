// Package symptom is MIRA's content matcher: the symptom database, its
// pattern language, the compiler, the streaming multi-pattern matcher and the
// format validators for binary media, plus an embedded default database
// (default.yaml, returned by Default).
//
// # Database
//
// A database is YAML. Each symptom has a name, a description and patterns;
// symptom ids count from 1 in file order. A pattern is a string (Snort-style
// content) or a mapping with exactly one of
//
//	content:  text with |hex| parts, e.g. "RCPT TO:" or "|16 03|"
//	literal:  a raw string, no escapes
//	hex:      bytes in hex, e.g. "FF FB"
//	value, mask: bytes compared under a bit mask, e.g. value "FF E0" mask "FF E0"
//	validate: a format validator: mpeg-audio, id3v2, ogg, flac, wav, mp4,
//	          matroska, avi, flv, mpeg-ps, mpeg-ts
//	regex:    an RE2 expression (Go regexp), run only where its literal
//	          prefix (at least 2 bytes) was found
//
// and the modifiers nocase, anchor (start: at offset 0 of the flow
// direction's payload; line: at offset 0 or right after a "\n"), offset and
// depth (the pattern must lie within [offset, offset+depth) counted from the
// first payload byte of the direction, as in Snort). A top-level scan_limit
// bounds the bytes scanned per direction; a top-level tls_bypass names the
// symptom of a TLS handshake, after which the meter stops scanning a
// direction at its first TLS application-data record (DB.Encrypted), found
// at the start of an in-order segment or by following the records of a
// segment that starts at one (DB.TLSAppDataAt). Errors name the file, line,
// symptom and pattern and wrap ErrSyntax.
//
// # Matching
//
// DB.Scan is called per packet with the in-order payload bytes of one flow
// direction and its offset in that direction. Every match of a pattern adds
// one occurrence to its symptom in a Counts; bytes are never kept.
//
// Inside a packet a prefilter tests the 3-byte gram at every even position
// against a 32 KiB bitmap (two bits per gram in one word); each pattern is
// entered with its grams at offsets 0 and 1, so every occurrence meets a
// tested position. Hits go to an exact gram table whose candidates are
// checked on 8 bytes and then verified in place (validators, masks and
// regular expressions run here). Triggers of 1 and 2 bytes have their own
// loop, used only by databases that need it.
//
// On amd64 with AVX2 (simd.go, Go assembly) databases with at most 400
// trigger grams take a vectorised path instead: a Teddy filter (Hyperscan's
// shuffle over nibbles, 16 buckets filled greedily, 64 positions an
// iteration with AVX-512) tests the gram at every position, each trigger
// entered once by its least common 3-gram, and the survivors are looked up
// in an exact table. Past the largest offset+depth window a filter without
// the bounded triggers takes over. The bytes that 1- and 2-byte triggers
// start with (at most four) are searched 32 at a time together with a
// companion byte every match has (the common bits of a 2-byte trigger's
// second byte, MPEG-TS's next sync byte 188 bytes on). Both paths count
// the same (TestSIMDPathsAgree); the bitmap is the portable one. Larger
// databases take FDR (fdr.go, after Hyperscan's): each trigger is
// represented by a window of up to eight of its bytes, the windows are put
// in eight buckets (short ones together), and a shift-or over 13-bit
// super-characters (a byte and five bits of the next) leaves, per
// position, the buckets whose every window lane allows the bytes before
// it: one table load, a shift and an OR per position looked up (every
// other position when the table is sparse enough, stride 2). Survivors are
// confirmed in an exact table of the windows' last three bytes.
//
// Across packets, literal patterns are followed by two Aho-Corasick DFAs
// (case-sensitive and case-folded) over byte classes, with 16-bit tables
// when they fit. The 8-byte State holds their two states. At the start of a
// packet a DFA runs only while its state still reaches back into earlier
// packets, counting the matches that began there; at the end it is rerun
// over the last bytes (from the last position where a pattern could begin)
// to compute the state carried to the next packet. Every occurrence is
// thereby counted exactly once, by the prefilter if it lies inside one
// packet and by a DFA if it spans packets. Line anchors use a virtual "\n"
// before the first byte of a direction. Masked, validated and regular
// expression patterns need their bytes inside one packet: an occurrence
// that spans a boundary is not counted.
//
// Hazards: Scan neither retains payload nor allocates. A DB is immutable and
// safe for concurrent use; State and Counts belong to one flow direction
// (or flow) and one goroutine. After a TCP gap or retransmission the caller
// calls State.Reset and counts it; the zero State at streamOffset 0 means
// "start of the direction", at another offset "history unknown" (a line
// anchor at the packet's first byte then cannot match).
package symptom
