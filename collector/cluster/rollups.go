package cluster

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// RollupSubject: a rollupRequest (gob); the worker answers with the
// rollup cells (gob, rollupAnswer) of the partitions asked, then an end
// message (the headers of PartSubject's, no records).
const RollupSubject = "mira.worker.rollups."

// bucketRollups holds a worker's rollups, per partition (key: one
// byte): a gob partRollup, made from every record of the partition the
// worker holds, valid while those records and the parameters they were
// made with (partRollup.Key) are unchanged.
var bucketRollups = []byte("rollups")

// rollupRequest asks a worker for its share of a report from rollups.
type rollupRequest struct {
	// Spec: the window, rules, names and announcements the cells are
	// made with (its range and filters are not used: cells cover every
	// record of a partition).
	Spec  report.PartSpec
	Cells []int // partitions only this worker holds records of: their cells
	// Gather: partitions other workers hold records of too (moved
	// between workers), with those workers: this worker gets their
	// records of them (PartSubject, raw) and rolls up the union, whose
	// cells it keeps under a key that includes GatherKey (the other
	// holders' spans).
	Gather    map[int][]string
	GatherKey map[int]string
	// Retired: the first buckets of the retired slices (retire.go)
	// this worker keeps whose cells to send.
	Retired []int64
}

// Cells are rollup cells per resolution (store.RollupDelta.Cells).
type Cells = map[time.Duration]map[store.RollupKey]*store.RollupCell

// partRollup is one partition's rollups as a worker keeps them.
type partRollup struct {
	// Key identifies what they were made from: the partition's span
	// (record count, earliest start, latest end) and the parameters
	// (rollupParams).
	Key     string
	Cells   Cells
	Records uint64 // distinct records rolled up
	// Window: the pairing window they were made with (rollupLimits).
	Window time.Duration
}

// rollupAnswer is the cells part of a worker's answer.
type rollupAnswer struct {
	Cells   Cells
	Records uint64
	// Cached: partitions answered without rolling them up (Live of
	// them from their live rollups); Built: rolled up for this request
	// from all their records (changed since, or none kept).
	Cached, Built, Live int
	Sampled             bool
	// Fetched: records got from other workers for Gather partitions
	// (Duplicates: copies of one record that two workers held).
	Fetched, Duplicates int
	// PrunedBefore: per resolution ("1m", "1h"), the bucket start before
	// which the cells were deleted by this worker's retention
	// (rollupLimits), as store.RollupMeta.PrunedBefore.
	PrunedBefore map[string]int64
	// Retired: the cells of the slices asked, by first bucket.
	Retired map[int64]Cells
}

// rollupParams identifies the parameters a partition's rollups depend on
// besides its records: the window, the rules, the names and sampling
// announcements.
func rollupParams(s *report.PartSpec) (string, error) {
	// JSON: map keys in order, so equal parameters hash equally (gob
	// writes maps in iteration order); origins as a sorted list.
	type originNames struct {
		O store.Origin
		L []store.NameAnnouncement
	}
	type originAnns struct {
		O store.Origin
		L []store.Announcement
	}
	v := struct {
		Window        time.Duration
		Rules         []byte
		Fallback      store.Names
		Names         []originNames
		Announcements []originAnns
	}{Window: s.Window, Rules: s.Rules}
	if s.Names != nil {
		v.Fallback = s.Names.Fallback
		for o, l := range s.Names.Origins {
			v.Names = append(v.Names, originNames{o, l})
		}
	}
	for o, l := range s.Announcements {
		v.Announcements = append(v.Announcements, originAnns{o, l})
	}
	byOrigin := func(a, b store.Origin) int {
		return cmp.Or(cmp.Compare(a.Exporter, b.Exporter), cmp.Compare(a.Domain, b.Domain))
	}
	slices.SortFunc(v.Names, func(a, b originNames) int { return byOrigin(a.O, b.O) })
	slices.SortFunc(v.Announcements, func(a, b originAnns) int { return byOrigin(a.O, b.O) })
	b, err := json.Marshal(&v)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16]), nil
}

// rollupConfig is the Roller configuration of spec.
func rollupConfig(spec *report.PartSpec) (report.RollupConfig, error) {
	opts, _, err := spec.Options()
	if err != nil {
		return report.RollupConfig{}, err
	}
	cfg := report.RollupConfig{Window: spec.Window, Rules: opts.Rules, RulesID: report.DefaultRulesFingerprint()}
	if spec.Rules != nil {
		cfg.RulesID = report.Fingerprint(spec.Rules)
	}
	return cfg, nil
}

// rollFlows makes the rollups of a set of records (one or more whole
// partitions, deduplicated by identity, in the order sortFlows gives):
// Rebuild's path (a Roller fed every record, then flushed), so the
// cells equal those of a single collector's store holding these records
// (report.Rebuild) and, for every biflow, a report over them.
func rollFlows(flows []store.StoredFlow, spec *report.PartSpec, cfg report.RollupConfig) Cells {
	r := report.NewRoller(cfg, spec.Names, spec.Announcements, nil)
	for i := range flows {
		// No Advance before the end: nothing is late; the Roller feeds
		// every record in start order at Flush.
		r.Add(flows[i].Origin, &flows[i].Record)
	}
	r.Flush()
	return r.Take().Cells
}

// storeOrder returns the indexes of flows in the order a store over the
// same records (the reporter's, a single collector's) gives one origin's
// records: by end time, ties in identity (export) order; origins in
// address order. Origins may interleave: the report orders ties of start
// time by origin (report.BuildPart).
func storeOrder(flows []store.StoredFlow, keys [][idLen]byte) []int32 {
	idx := make([]int32, len(flows))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &flows[i], &flows[j]
		if c := cmp.Compare(a.Origin.Exporter, b.Origin.Exporter); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Origin.Domain, b.Origin.Domain); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Record.Last, b.Record.Last); c != 0 {
			return c
		}
		return bytes.Compare(keys[i][:], keys[j][:])
	})
	return idx
}

// sortFlows puts flows in storeOrder, as buildPart reads them.
func sortFlows(flows []store.StoredFlow, keys [][idLen]byte) {
	out := make([]store.StoredFlow, len(flows))
	for i, j := range storeOrder(flows, keys) {
		out[i] = flows[j]
	}
	copy(flows, out)
}

// addCells adds src's cells to dst.
func addCells(dst, src Cells) {
	for res, m := range src {
		d := dst[res]
		if d == nil {
			d = map[store.RollupKey]*store.RollupCell{}
			dst[res] = d
		}
		// In map order: cells add exactly (store.RollupUsage.Add), so
		// the sums do not depend on it.
		for k, x := range m {
			c := d[k]
			if c == nil {
				c = &store.RollupCell{}
				d[k] = c
			}
			c.Add(x)
		}
	}
}

func sampledCells(c Cells) bool {
	for _, m := range c {
		for _, x := range m {
			if x.Sampled {
				return true
			}
		}
	}
	return false
}

func newCells() Cells {
	c := Cells{}
	for _, res := range store.RollupResolutions {
		c[res] = map[store.RollupKey]*store.RollupCell{}
	}
	return c
}

// rollups answers a rollupRequest (RollupSubject).
func (w *Worker) rollups(req *nats.Msg) {
	if req.Reply == "" {
		return
	}
	var rr rollupRequest
	nraw, ncells := 0, 0
	err := gob.NewDecoder(bytes.NewReader(req.Data)).Decode(&rr)
	if err == nil {
		stop := busy(w.nc, req.Reply)
		var ans *rollupAnswer
		ans, err = w.partRollups(&rr)
		stop()
		if err == nil {
			var b bytes.Buffer
			if err = gob.NewEncoder(&b).Encode(ans); err == nil {
				enc := b.Bytes()
				for off := 0; off < len(enc) && err == nil; off += dumpChunk {
					m := &nats.Msg{Subject: req.Reply, Header: nats.Header{}, Data: enc[off:min(len(enc), off+dumpChunk)]}
					m.Header.Set("Mira-Part", "1")
					err = w.nc.PublishMsg(m)
				}
				ncells = len(enc)
			}
		}
	}
	end := &nats.Msg{Subject: req.Reply, Header: nats.Header{}}
	end.Header.Set("Mira-Records", strconv.Itoa(nraw))
	end.Header.Set("Mira-Part", strconv.Itoa(ncells))
	if err != nil {
		end.Header.Set("Mira-Error", err.Error())
	}
	w.nc.PublishMsg(end)
}

// busy says every second on reply that the answer is coming, until the
// function it returns is called.
func busy(nc *nats.Conn, reply string) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				m := &nats.Msg{Subject: reply, Header: nats.Header{}}
				m.Header.Set("Mira-Busy", "1")
				nc.PublishMsg(m)
			}
		}
	}()
	return func() { close(done) }
}

// partRollups answers rr: the summed cells of its Cells and Gather
// partitions: those kept (bucketRollups) when made from the same records
// with the same parameters, else made now from the partitions' records
// (and, for Gather ones, the other holders') and kept.
func (w *Worker) partRollups(rr *rollupRequest) (*rollupAnswer, error) {
	params, err := rollupParams(&rr.Spec)
	if err != nil {
		return nil, err
	}
	cfg, err := rollupConfig(&rr.Spec)
	if err != nil {
		return nil, err
	}
	var want, gather, live [Partitions]bool
	for _, p := range rr.Cells {
		if p >= 0 && p < Partitions {
			want[p] = true
		}
	}
	for p := range rr.Gather {
		if p >= 0 && p < Partitions {
			want[p], gather[p] = true, true
		}
	}
	ans := &rollupAnswer{Cells: newCells()}
	kept := make([]*partRollup, Partitions)
	keys := make([]string, Partitions)
	var build [Partitions]bool
	var flows [Partitions][]store.StoredFlow
	var ids [Partitions][][idLen]byte
	// The spans, the live rollups and the records read in one snapshot:
	// commitLoop holds smu while it commits and feeds the live Rollers.
	// Clean partitions to roll up are seeded as live rollups before smu
	// is released, so that the next commit feeds them.
	w.smu.Lock()
	locked := true
	unlock := func() {
		if locked {
			w.smu.Unlock()
			locked = false
		}
	}
	defer unlock()
	for p := range want {
		if !want[p] {
			continue
		}
		if gather[p] {
			// Moved: rolled up with the other holders' records; no
			// longer fed.
			w.live[p] = nil
		}
		sp := w.spans[p]
		keys[p] = fmt.Sprintf("%d/%d/%d/%s/%s", sp.N, sp.First, sp.Last, rr.GatherKey[p], params)
	}
	tx, err := w.db.Begin(false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Cells kept for the same records and parameters (a partition that
	// did not change since the last report), else the live rollups.
	if b := tx.Bucket(bucketRollups); b != nil {
		for p := range want {
			if !want[p] {
				continue
			}
			if v := b.Get([]byte{byte(p)}); v != nil {
				var pr partRollup
				if gob.NewDecoder(bytes.NewReader(v)).Decode(&pr) == nil && pr.Key == keys[p] {
					kept[p] = &pr
				}
			}
		}
	}
	for p := range want {
		if !want[p] || gather[p] || kept[p] != nil {
			continue
		}
		if c, ok := w.live[p].answer(params, w.spans[p].N); ok {
			kept[p] = &partRollup{Key: keys[p], Cells: c, Records: uint64(len(w.live[p].seen)), Window: rr.Spec.Window}
			live[p] = true
			continue
		}
		// Stale (other parameters, records it missed, a late record):
		// seeded again below.
		w.live[p] = nil
	}
	building, seeding := false, false
	for p := range want {
		if want[p] && kept[p] == nil {
			build[p] = true
			building = true
			seeding = seeding || !gather[p]
		}
	}
	if building {
		seen := map[[idLen]byte]struct{}{}
		var key []byte
		err = eachStored(tx, func(id ID, _ []byte, r *flow.Record) error {
			if p := Partition(r.Key, Partitions); build[p] {
				k := [idLen]byte(id.key(key[:0]))
				if _, ok := seen[k]; ok {
					return nil
				}
				seen[k] = struct{}{}
				flows[p] = append(flows[p], store.StoredFlow{Origin: id.Origin(), Record: *r})
				flows[p][len(flows[p])-1].Record.Symptoms = slices.Clone(r.Symptoms)
				ids[p] = append(ids[p], k)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Partitions share no address pair: each is rolled up alone, on
	// every core at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	roll := func(clean bool) {
		for p := range build {
			if !build[p] || gather[p] == clean {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				sortFlows(flows[p], ids[p])
				pr := &partRollup{Key: keys[p], Records: uint64(len(flows[p])), Window: rr.Spec.Window}
				if clean {
					// smu held: seeded with the records the spans count.
					w.live[p], pr.Cells = seedLive(flows[p], ids[p], w.spans[p].N, &rr.Spec, cfg, params)
				} else {
					pr.Cells = rollFlows(flows[p], &rr.Spec, cfg)
				}
				kept[p] = pr
				flows[p], ids[p] = nil, nil
			}()
		}
		wg.Wait()
	}
	if seeding {
		roll(true)
	}
	unlock()
	tx.Rollback()
	fetched, dups, err := w.fetchOthers(rr, &build, &flows, &ids)
	if err != nil {
		return nil, err
	}
	roll(false)
	writing := building
	for p := range live {
		writing = writing || live[p]
	}
	if writing {
		err := w.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketRollups)
			if err != nil {
				return err
			}
			for p := range build {
				if !build[p] && !live[p] {
					continue
				}
				var v bytes.Buffer
				if err := gob.NewEncoder(&v).Encode(kept[p]); err != nil {
					return err
				}
				if err := b.Put([]byte{byte(p)}, v.Bytes()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			// Answered all the same; made again next time.
			w.log.Warn("rollups not kept", "err", err)
		}
	}
	for p := range want {
		if !want[p] {
			continue
		}
		switch {
		case build[p]:
			ans.Built++
		case live[p]:
			ans.Cached++
			ans.Live++
		default:
			ans.Cached++
		}
		addCells(ans.Cells, kept[p].Cells)
		ans.Records += kept[p].Records
	}
	// Rollup retention: no cell of a bucket it pruned (the buckets its
	// deleted records touched the reporter knows from the spans).
	ans.PrunedBefore = w.retentionLimits(time.Now())
	dropCells(ans.Cells, ans.PrunedBefore)
	if ans.Retired, err = w.retiredCells(rr.Retired); err != nil {
		return nil, err
	}
	for _, c := range ans.Retired {
		dropCells(c, ans.PrunedBefore)
	}
	ans.Sampled = sampledCells(ans.Cells)
	ans.Fetched, ans.Duplicates = fetched, dups
	return ans, nil
}

// fetchOthers adds to flows and ids the records the other holders of
// the Gather partitions to build hold of them (every record, whatever
// its time), less those already there (the same identity).
func (w *Worker) fetchOthers(rr *rollupRequest, build *[Partitions]bool, flows *[Partitions][]store.StoredFlow, ids *[Partitions][][idLen]byte) (fetched, dups int, err error) {
	from := map[string][]int{}
	for p, others := range rr.Gather {
		if p < 0 || p >= Partitions || !build[p] {
			continue
		}
		for _, o := range others {
			from[o] = append(from[o], p)
		}
	}
	if len(from) == 0 {
		return 0, 0, nil
	}
	seen := map[[idLen]byte]struct{}{}
	for p := range build {
		for _, k := range ids[p] {
			seen[k] = struct{}{}
		}
	}
	spec := rr.Spec
	spec.From, spec.To = "", ""
	names := make([]string, 0, len(from))
	for o := range from {
		names = append(names, o)
	}
	slices.Sort(names)
	for _, o := range names {
		ps := from[o]
		slices.Sort(ps)
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(partRequest{Spec: spec, Raw: ps}); err != nil {
			return fetched, dups, err
		}
		_, raw, _, err := ask(context.Background(), w.nc, PartSubject, o, b.Bytes())
		if err != nil {
			return fetched, dups, fmt.Errorf("records of moved partitions from %s: %w", o, err)
		}
		for _, x := range raw {
			if _, ok := seen[x.id]; ok {
				dups++
				continue
			}
			seen[x.id] = struct{}{}
			var r flow.Record
			if err := store.DecodeRecord(x.enc, &r); err != nil {
				return fetched, dups, fmt.Errorf("a record from %s: %w", o, err)
			}
			p := Partition(r.Key, Partitions)
			if !build[p] {
				continue
			}
			flows[p] = append(flows[p], store.StoredFlow{Origin: x.origin, Record: r})
			ids[p] = append(ids[p], x.id)
			fetched++
		}
	}
	return fetched, dups, nil
}

// askRollups sends a rollupRequest to worker name and reads its answer.
func askRollups(ctx context.Context, nc *nats.Conn, name string, req []byte) (*rollupAnswer, []idEnc, int64, error) {
	payload, raw, n, err := ask(ctx, nc, RollupSubject, name, req)
	if err != nil {
		return nil, nil, n, err
	}
	var a rollupAnswer
	if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&a); err != nil {
		return nil, nil, n, fmt.Errorf("cluster: worker %s: rollups: %w", name, err)
	}
	return &a, raw, n, nil
}

// reportRollups answers p (--source rollups or auto) from the workers'
// rollups: the cells of each partition one worker alone holds records of
// (at any time), from that worker; those of the other partitions made
// here from every record of them. A RollupError says the rollups cannot
// answer p (report.Params.CanUseRollups, --by as). st holds the
// announcements and counters.
func reportRollups(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, p *report.Params, spec report.PartSpec, st *store.Store, rs *ReportStats) (*report.Report, error) {
	if err := p.CanUseRollups(); err != nil {
		return nil, err
	}
	// As a single collector (report.Params.Report), auto takes the
	// records when one lies across a bound of the range: the rollups
	// count whole biflows by their start. One worker's record decides
	// for the whole report.
	if p.Source == report.SourceAuto {
		crossing, err := boundsCrossed(ctx, nc, rs.Workers, p)
		if err != nil {
			return nil, err
		}
		if len(crossing) > 0 {
			return nil, &report.RollupError{Reason: "a record of worker " + strings.Join(crossing, ", ") +
				" lies across --from or --to or ends within the pairing window before one"}
		}
	}
	cfg, err := rollupConfig(&spec)
	if err != nil {
		return nil, err
	}
	rc, err := rollupCells(ctx, nc, js, spec, cfg, rs, true)
	if err != nil {
		return nil, err
	}
	d := &store.RollupDelta{Cells: rc.cells, Meta: store.RollupMeta{Version: store.RollupVersion, Window: cfg.Window,
		Rules: cfg.RulesID, CompleteBefore: math.MaxInt64, Fed: math.MaxInt64, Records: rc.records, Clean: true, PrunedBefore: rc.pruned}}
	if d.Meta.Window <= 0 {
		d.Meta.Window = report.DefaultWindow
	}
	if err := st.PutRollups(d); err != nil {
		return nil, err
	}
	rep, err := report.FromRollups(ctx, st, p, report.RollupSource{RulesID: cfg.RulesID})
	if err != nil {
		return nil, err
	}
	// Retention cut the open range: as a single collector (report.Params.Report),
	// auto prefers the workers' records when they reach further back.
	if ri := rep.Summary.Rollup; ri != nil && ri.CoveredFrom != nil &&
		report.PreferRecords(rep, p.Source, rc.recordsFrom < int64(*ri.CoveredFrom)) {
		return nil, &report.RollupError{Reason: "retention pruned rollups the records reach before (" + ri.CoveredFrom.RFC3339() + ")"}
	}
	return rep, nil
}

// clusterCells are the cluster's rollup cells for a spec (rollupCells).
type clusterCells struct {
	cells   Cells
	records uint64
	// pruned: per resolution, the bucket before which cells are
	// missing (store.RollupMeta.PrunedBefore), nil when none.
	pruned map[string]int64
	// recordBound: the first hour whose biflows no worker's deleted
	// records touched (math.MinInt64: none deleted).
	recordBound int64
	// recordsFrom: the start of the oldest record a worker holds
	// (math.MaxInt64: none).
	recordsFrom int64
}

// rollupCells gathers the cluster's rollup cells for spec: the cells of
// each partition one worker alone holds records of (at any time), from
// that worker; those of the other partitions rolled up by the holder of
// most of their records with the others'; with retired (when the
// cluster's chain of retired cells matches spec) the slices of cells
// workers kept when records were pruned, in place of the cells the
// records left make of those buckets.
func rollupCells(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, spec report.PartSpec, cfg report.RollupConfig, rs *ReportStats, retired bool) (*clusterCells, error) {
	spans := map[string][]Span{}
	var prunedAt []int64
	for _, name := range rs.Workers {
		m, err := nc.Request(SpansSubject+name, nil, answerTimeout)
		if err != nil {
			return nil, fmt.Errorf("cluster: worker %s did not say what it holds: %w (a merged report needs every worker that stored records: start it again)", name, err)
		}
		var a spansAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return nil, fmt.Errorf("cluster: worker %s: %w", name, err)
		}
		spans[name] = a.Spans
		prunedAt = append(prunedAt, a.Pruned)
	}
	recordsFrom := int64(math.MaxInt64)
	for _, l := range spans {
		for _, sp := range l {
			if sp.N > 0 {
				recordsFrom = min(recordsFrom, sp.First)
			}
		}
	}
	window := normWindow(spec.Window)
	recordBound := int64(math.MinInt64)
	for _, c := range prunedAt {
		if b, ok := prunedLimits(c, window)["1h"]; ok {
			recordBound = max(recordBound, b)
		}
	}
	// The chain of retired slices answers the buckets before its end
	// when it holds these parameters' cells past every deletion.
	var chain *retiredChain
	if retired {
		c, _, err := loadChain(ctx, js)
		if err != nil {
			return nil, err
		}
		if c.usable(window, cfg.RulesID) && c.end() >= recordBound {
			chain = c
		}
	}
	// Cells are per biflow start over every record: a partition is
	// clean when one worker alone ever held records of it. One that
	// moved is rolled up by the holder with the most of its records,
	// which gets the others' records of it.
	reqs := map[string]*rollupRequest{}
	req := func(name string) *rollupRequest {
		r := reqs[name]
		if r == nil {
			r = &rollupRequest{Spec: spec, Gather: map[int][]string{}, GatherKey: map[int]string{}}
			reqs[name] = r
		}
		return r
	}
	holders := make([][]string, Partitions)
	held := make([]map[string]Span, Partitions)
	for name, l := range spans {
		for _, sp := range l {
			if sp.N == 0 || sp.P < 0 || sp.P >= Partitions {
				continue
			}
			if held[sp.P] == nil {
				held[sp.P] = map[string]Span{}
			}
			holders[sp.P] = append(holders[sp.P], name)
			held[sp.P][name] = sp
		}
	}
	rs.Rollups = true
	for p, hs := range holders {
		switch len(hs) {
		case 0:
			continue
		case 1:
			rs.Consolidated++
			r := req(hs[0])
			r.Cells = append(r.Cells, p)
			continue
		}
		rs.Central++
		slices.SortFunc(hs, func(a, b string) int {
			return cmp.Or(cmp.Compare(held[p][b].N, held[p][a].N), cmp.Compare(a, b))
		})
		var key strings.Builder
		others := slices.Clone(hs[1:])
		slices.Sort(others)
		for _, o := range others {
			sp := held[p][o]
			fmt.Fprintf(&key, "%s:%d/%d/%d;", o, sp.N, sp.First, sp.Last)
		}
		r := req(hs[0])
		r.Gather[p], r.GatherKey[p] = others, key.String()
	}
	if chain != nil {
		for _, s := range chain.Slices {
			r := req(s.Worker)
			r.Retired = append(r.Retired, s.From)
		}
	}
	names := make([]string, 0, len(reqs))
	for name := range reqs {
		names = append(names, name)
	}
	slices.Sort(names)
	type answer struct {
		cells *rollupAnswer
		bytes int64
		err   error
	}
	answers := make([]answer, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(reqs[name]); err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &answers[i]
			a.cells, _, a.bytes, a.err = askRollups(ctx, nc, name, b.Bytes())
		}()
	}
	wg.Wait()
	total := newCells()
	var records uint64
	var pruned map[string]int64
	got := map[int64]Cells{}
	for i := range answers {
		a := &answers[i]
		if a.err != nil {
			return nil, a.err
		}
		rs.Bytes += a.bytes
		addCells(total, a.cells.Cells)
		records += a.cells.Records
		rs.Cached += a.cells.Cached
		rs.Live += a.cells.Live
		rs.Built += a.cells.Built
		rs.Sampled = rs.Sampled || a.cells.Sampled
		rs.Records += a.cells.Fetched
		rs.Duplicates += a.cells.Duplicates
		pruned = mergeLimits(pruned, a.cells.PrunedBefore)
		for f, c := range a.cells.Retired {
			got[f] = c
		}
	}
	start, ok := int64(0), false
	if chain != nil {
		start, ok = mergeRetired(total, chain, got)
	}
	switch {
	case ok && start != math.MinInt64:
		pruned = mergeLimits(pruned, map[string]int64{"1m": start, "1h": start})
	case !ok:
		// Records any worker pruned, asked or not (one whose
		// partitions all moved to a holder with more of their records:
		// that holder rolls up the records it has left).
		for _, c := range prunedAt {
			pruned = mergeLimits(pruned, prunedLimits(c, spec.Window))
		}
	}
	// One worker's retention prunes the rollups of the cluster: the
	// others' cells of those buckets are incomplete without its.
	dropCells(total, pruned)
	return &clusterCells{cells: total, records: records, pruned: pruned, recordBound: recordBound, recordsFrom: recordsFrom}, nil
}

// tempStore opens a new store in dir with the cluster's announcements
// and counters.
func tempStore(ctx context.Context, js jetstream.JetStream, dir string) (*store.Store, func(), error) {
	path := filepath.Join(dir, "merged.db")
	store.Remove(path)
	st, err := store.Open(path, nil)
	if err != nil {
		return nil, nil, err
	}
	done := func() { st.Close(); store.Remove(path) }
	if err := gatherOptions(ctx, js, st); err != nil {
		done()
		return nil, nil, err
	}
	if err := gatherStats(ctx, js, st); err != nil {
		done()
		return nil, nil, err
	}
	return st, done, nil
}

// errRollups reports whether err says the rollups cannot answer.
func errRollups(err error) bool {
	var re *report.RollupError
	return errors.As(err, &re)
}
