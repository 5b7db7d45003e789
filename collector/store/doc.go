// Package store keeps the collector's flow records and counters in a bbolt
// database file.
//
// Records are written in batches (one transaction and one fsync per Put or
// PutBatches call). A batch is sorted by flow end time and cut into chunks
// of up to 64 records whose end times lie within one second; each chunk is
// one bbolt value, keyed by its earliest end time, so that time-range scans
// read only the pages they need and bbolt's per-key cost is paid once per
// chunk. A chunk holds length-prefixed records in a compact, versioned
// binary encoding of flow.Record (see codec.go); the database itself
// carries a schema version in its meta bucket and Open refuses files
// written by a newer schema.
//
// Key layout of the "flows" bucket (20 bytes, big-endian so that byte order
// is time order):
//
//	[0:8]   earliest end time in the chunk (flow.Record.Last, ns), sign bit flipped
//	[8:12]  origin id (exporter + observation domain, see the "origins" bucket)
//	[12:20] bucket sequence number (makes keys unique)
//
// A scan seeks to its lower end-time bound less the widest chunk span seen
// (meta "maxspan"). Scans by start time or by overlap stop at the upper
// bound plus the longest flow duration stored so far (meta "maxdur"), so
// one very long flow makes such scans read further.
//
// Hazards: bbolt takes an exclusive file lock, so a second process (for
// example `mira report` while mira-collector runs) cannot open the same file
// while a writer holds it; Open fails with ErrLocked after Options.Timeout.
// A writer opened with Options.Release holds the file only during each
// operation (mira-collector commits about once a second), so readers get
// in between; while a reader holds it, the writer's operations fail with
// ErrLocked and the caller retries (the collector keeps its batch).
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
// the oldest chunks; freed pages are reused, and CompactFile rewrites a
// closed store to give the space back. Records that fail to
// decode during a scan are skipped and counted by reason
// (Store.DecodeErrors), never dropped silently; a damaged chunk header or
// length loses the rest of that chunk (at most 64 records), counted once.
package store
