// Package store keeps the collector's flow records and counters in a bbolt
// database file.
//
// Records are written in batches (one transaction and one fsync per Put
// call), keyed by flow end time so that time-range scans read only the
// pages they need. Each value is a compact, versioned binary encoding of
// flow.Record (see codec.go); the database itself carries a schema version
// in its meta bucket and Open refuses files written by a newer schema.
//
// Key layout of the "flows" bucket (20 bytes, big-endian so that byte order
// is time order):
//
//	[0:8]   flow end time (flow.Record.Last, ns) with the sign bit flipped
//	[8:12]  origin id (exporter + observation domain, see the "origins" bucket)
//	[12:20] bucket sequence number (makes keys unique)
//
// Scans by start time or by overlap seek to the lower end-time bound and stop
// at the upper bound plus the longest flow duration stored so far, which the
// meta bucket keeps up to date.
//
// Hazards: bbolt takes an exclusive file lock, so a second process (for
// example `mira report` while mira-collector runs) cannot open the same file
// until the writer closes it; Open fails with ErrLocked after Options.Timeout.
// The database file never shrinks. Records that fail to decode during a scan
// are skipped and counted by reason (Store.DecodeErrors), never dropped
// silently.
package store
