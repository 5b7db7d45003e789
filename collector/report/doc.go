// Package report turns stored flow records into what an operator reads: a
// biflow report (both directions of each connection paired, with a usage
// table per aggregate and category and a summary of the collector's
// counters) and a listing of the unidirectional flows, each as JSON, CSV or
// an aligned text table. Params and Selection are a report's and a
// listing's parameters, bound to a flag set by `mira report` and `mira
// flows` (cmd/mira) and by the collector's HTTP API (collector/server);
// package reporttest holds the fixture their tests share.
//
// # Biflow pairing
//
// Pairing, duplicate suppression and the sampling estimators are package
// consolidate's: Build feeds the records, in start order, through a
// consolidate.Consolidator (Config.Batch) and names the biflows it
// completes, so a report gives the same biflows as the collector's live
// forwarding. consolidate's package documentation defines a connection
// (canonical 5-tuple without VLAN, FIN/RST and the window end it,
// active timeouts continue it) and the initiator.
//
// Pairing only looks at the records given: a connection whose other half
// falls outside a report's time range is reported unpaired.
//
// # Sampling of stored records
//
// A record that carries its own sampling interval (MIRA probes stamp
// every record; the collecting process stamps other exporters' records
// once their domain's options arrived) is scaled by it. For the others
// the store keeps each domain's sampling announcements with their
// arrival (store.Announcement): the announcement in force at the
// record's end applies, and the first one retroactively to the records
// that arrived before it. Records of a domain that never announced its
// sampling, from an exporter that announced sampling for another domain,
// are left unscaled, counted (Summary.SamplingUnknown, JSON
// "sampling_unknown") and their biflows marked (Biflow.SamplingUnknown),
// unless the domain is a MIRA probe's (it announced names): a MIRA probe
// stamps every record it samples (and since 2026-12 every record, 1 in 1
// when it does not sample, and announces 1 in 1; before, it announced
// nothing when it never sampled), so its unstamped records are
// unsampled, not of unknown sampling.
// An operator override (Options.Overrides, --sampling) wins over both.
//
// Build keeps every record in memory; reports over very large ranges should
// narrow the time range or use the rollups.
//
// # Rollups
//
// A Roller, fed the records as the collector stores them, runs them
// through the same consolidation in start order behind a horizon and
// adds every completed, named and classified biflow to a per-minute and
// a per-hour cell of the store (store.RollupCell: aggregate × category
// × probe × AS, with per-symptom totals and the estimators' sums and
// variances). FromRollups (Params.Source "rollups", or "auto") answers
// the usage table and summary from the cells: the biflows that started
// in [From, To), as the report over all the records gives them, byte
// for byte: the estimators' sums are exact (internal/sum), in the cells
// as in a report's usage rows, so the order and grouping in which
// biflows were added does not show. (Cells of version 1, written before,
// kept float64 sums: `mira rollup` remakes them.) The Roller's
// documentation states the exactness rule; Rebuild makes the rollups of
// a store from its records. Listings page with
// Options.Offset and Limit (Summary.NextOffset).
package report
