package cluster

import (
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
)

// liveRoll is a partition's live rollups at a worker (see Rollups in
// doc.go): a report.Roller seeded with every record of the partition the
// worker stored, in the order rollFlows feeds them, and fed since at
// each commit with the records of the partition stored in it, as the
// single collector's Roller is fed at its commits.
type liveRoll struct {
	r *report.Roller
	// params: rollupParams of the request it was seeded for (window,
	// rules, names, sampling announcements); a request with other
	// parameters seeds it again.
	params string
	// window: the request's pairing window (rollupLimits).
	window time.Duration
	// n: the partition's span count (records stored, duplicates
	// included) when seeded, plus the records stored since; while it
	// equals the span's, every stored record of the partition went
	// through r.
	n uint64
	// seen: the identities given to r (a record stored again in another
	// batch is not given twice).
	seen map[[idLen]byte]struct{}
	// final: the cells r completed (past its horizon), taken from it at
	// each report.
	final Cells
	// broken: a record did not decode; the partition is seeded again.
	broken bool
}

// liveRecord is a record committed of a partition with live rollups.
type liveRecord struct {
	p           int
	id          ID
	first, last int64
	enc         []byte // in the batch message's data
}

// feedLive gives the records just committed to their partitions' live
// Rollers (w.smu held) and advances those Rollers' horizons.
func (w *Worker) feedLive(recs []liveRecord) {
	var touched [Partitions]bool
	var key []byte
	for i := range recs {
		x := &recs[i]
		lr := w.live[x.p]
		if lr == nil {
			continue
		}
		lr.n++
		k := [idLen]byte(x.id.key(key[:0]))
		if _, ok := lr.seen[k]; ok {
			continue
		}
		lr.seen[k] = struct{}{}
		if err := lr.r.AddEncoded(x.id.Origin(), x.first, x.last, x.enc); err != nil {
			lr.broken = true
		}
		touched[x.p] = true
	}
	for p := range touched {
		if touched[p] {
			w.live[p].r.Advance()
		}
	}
}

// seedLive makes the live rollups of a partition from every record of
// it the worker holds (flows, ids: deduplicated, in sortFlows' order, n
// the span's count) and returns them with the partition's cells as a
// report over those records shows them (the completed cells plus a
// flushed copy of the pending state): rollFlows' cells.
func seedLive(flows []store.StoredFlow, ids [][idLen]byte, n uint64, spec *report.PartSpec, cfg report.RollupConfig, params string) (*liveRoll, Cells) {
	r := report.NewRoller(cfg, spec.Names, spec.Announcements, nil)
	for i := range flows {
		r.Add(flows[i].Origin, &flows[i].Record)
	}
	r.Advance()
	lr := &liveRoll{r: r, params: params, window: spec.Window, n: n, seen: make(map[[idLen]byte]struct{}, len(ids)), final: newCells()}
	for _, k := range ids {
		lr.seen[k] = struct{}{}
	}
	addCells(lr.final, r.Take().Cells)
	return lr, lr.cells()
}

// answer returns lr's cells (w.smu held) for a request with parameters
// params when span, the partition's span count, says every stored record
// went through it and none came late; ok false otherwise (to be seeded
// again).
func (lr *liveRoll) answer(params string, span uint64) (Cells, bool) {
	if lr == nil || lr.broken || lr.params != params || lr.n != span {
		return nil, false
	}
	d := lr.r.Take()
	addCells(lr.final, d.Cells)
	if d.Meta.Late > 0 {
		// A record came after the horizon passed its start: its
		// connection may be split where a roll-up of every record
		// pairs it.
		return nil, false
	}
	return lr.cells(), true
}

// cells is final plus the pending state flushed in a copy.
func (lr *liveRoll) cells() Cells {
	c := newCells()
	addCells(c, lr.final)
	addCells(c, lr.r.Pending())
	return c
}
