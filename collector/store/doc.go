// Package store keeps the collector's flow records and counters in a bbolt
// database file and, since schema version 4, append-only segment files in
// a directory beside it (<path>.seg, see SegmentDir and segment.go).
//
// Records are written in batches (one transaction per Put or PutBatches
// call). A batch is sorted by flow end time and cut into chunks of up to
// 64 records whose end times lie within one second. A chunk holds
// length-prefixed records in a compact, versioned binary encoding of
// flow.Record (see codec.go); the database itself carries a schema
// version in its meta bucket and Open refuses files written by a newer
// schema.
//
// Segments (schema 4): a commit appends its chunks, each framed with its
// end-time bounds, origin and a CRC-32C, at the end of the newest segment
// file (a new one starts past Options.SegmentSize or after an hour), syncs
// that file, and then commits, in one bbolt transaction with the sequence
// sets, the segment's new committed length and summary ("segments"
// bucket) and a time-index entry for the commit's bytes ("blocks":
// segment, offset -> end, earliest and latest end time, longest
// duration). One commit costs a sequential write, the segment's sync and
// a small bbolt transaction instead of a B+tree insert per chunk (three
// fdatasyncs: the segment's, then bbolt's after its pages and after its
// meta page; with Options.NoSync none). A crash
// leaves at most bytes past a committed length (never read; Open for
// writing truncates them) or a segment file no commit lists (deleted by
// Open). A commit whose write fails (a full disk) cuts the segment back
// to its committed length, giving the space back. Scans read the index, map the segments they need and walk only
// the commits whose end times (widened by their longest duration for
// start and overlap queries) can match; a chunk whose checksum fails is
// skipped and counted (ReasonChecksum), a damaged frame length loses the
// rest of its commit (ReasonFrame), missing segment bytes are counted
// (ReasonSegment).
//
// Stores of schema 1-3 kept every chunk as a bbolt value in the "flows"
// bucket; they are still read (and pruned) and never written there
// again: opening one for writing makes it schema 4, so an older build
// refuses it instead of missing the segment records. Key layout of the
// "flows" bucket (20 bytes, big-endian so that byte order is time order):
//
//	[0:8]   earliest end time in the chunk (flow.Record.Last, ns), sign bit flipped
//	[8:12]  origin id (exporter + observation domain, see the "origins" bucket)
//	[12:20] bucket sequence number (makes keys unique)
//
// A scan seeks there to its lower end-time bound less the widest chunk
// span seen (meta "maxspan"). Scans by start time or by overlap stop at
// the upper bound plus the longest flow duration stored so far (meta
// "maxdur"), so one very long flow makes such scans read further.
//
// A scan returns records chunk by chunk in the order the flows bucket's
// keys gave: by the chunk's earliest end time, then origin, then written
// order (flows bucket first); within a chunk by end time. Records of
// different chunks less than a second apart may therefore interleave out
// of end-time order, as before.
//
// Hazards: bbolt takes an exclusive file lock, so a second process (for
// example `mira report` while mira-collector runs) cannot open the same file
// while a writer holds it; Open fails with ErrLocked after Options.Timeout.
// A writer opened with Options.Release holds the file only during each
// operation (mira-collector commits about once a second), so readers get
// in between; while a reader holds it, the writer's operations fail with
// ErrLocked and the caller retries (the collector keeps its batch).
// A scan of segments holds the file only while it reads the time index
// and checks the chunks it needs (they stay mapped after), not while the
// caller's function runs; chunks in the flows bucket are the database's
// memory, so a scan that reads any holds the file to its end.
// Writers that batch records between commits keep them in Encoded (the
// record encoding, made on arrival) and commit with PutEncoded.
// Sampling announcements (the sampling configuration each exporter and
// observation domain announced, with when it arrived) are kept in a
// "sampling" bucket (PutAnnouncements, Announcements; see sampling.go)
// so that reports can scale records that arrived before their options.
// Names (symptom, category and aggregate ids to names) belong to their
// origin and change over time: each origin's name announcements are kept
// in a "names" bucket (PutNameAnnouncements, NameIndex; see names.go),
// and a record is named by the announcement in force for its origin at
// its end time. Stores of schema version 1 kept one merged set of names
// (meta "names"); it still names origins that have none of their own.
// Rollups (schema version 3, rollup.go) are usage cells per minute and
// per hour that collector/report's Roller keeps as records are stored
// (PutRollups, Rollups, PruneRollups, RollupMeta); a report over a long
// range reads them instead of every record. Cells are versioned by a
// leading byte; a store without them (written by an older version) is
// read as before and gets them from a rebuild.
// Retention: PruneBefore (by age) and PruneToSize (by data size) delete
// the oldest chunks. In segments, PruneBefore removes chunks from the
// index at once and deletes a segment file once all its records are
// older than the cutoff; PruneToSize deletes whole segment files, oldest
// first (so Options.SegmentSize is its granularity). A file pruned while
// a scan of this process may be reading it is deleted when the scans end;
// other processes cannot be scanning, since they hold the database's lock
// for a whole scan. In the flows bucket, freed pages are reused, and
// CompactFile rewrites a closed store's database file to give the space
// back; segment files need no compaction. Remove deletes a closed store
// (file and segment directory). Records that fail to
// decode during a scan are skipped and counted by reason
// (Store.DecodeErrors), never dropped silently; a damaged chunk header or
// length loses the rest of that chunk (at most 64 records), counted once.
package store
