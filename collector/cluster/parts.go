package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// Subjects of a merged report's requests, each followed by a worker's
// name.
const (
	// SpansSubject: the worker's Spans (JSON), what it holds per
	// partition.
	SpansSubject = "mira.worker.spans."
	// PartSubject: a partRequest (gob); the worker answers with the raw
	// records of the partitions asked raw, then its report.Part of the
	// partitions it is asked to consolidate, then an end message (see
	// Worker.part).
	PartSubject = "mira.worker.part."
)

// partRequest asks a worker for its share of a report.
type partRequest struct {
	Spec        report.PartSpec
	Consolidate []int // partitions it alone holds records of in the range: their Part
	Raw         []int // partitions others hold records of too: the records
	// Keep, when positive, asks for the Part's usage and only its first
	// Keep biflows in listing order (report.Part.Aggregate).
	Keep int
}

// assignment is a worker's share of a report.
type assignment struct {
	Consolidate, Raw []int
}

// planParts decides who consolidates what for a report over the records
// that overlap [from, to) (the store's Overlap selection: Last >= from
// and First < to). A worker's records of partition p can be selected
// only when its span of p overlaps the range. A partition whose
// selectable records only one worker holds is clean: that worker
// consolidates it. A partition two or more workers hold selectable
// records of (it moved between them, or a batch was stored by both) is
// conflicted: each of them sends its records of it, and the reporter
// consolidates them.
func planParts(spans map[string][]Span, from, to int64) (plan map[string]*assignment, clean, conflicted int) {
	holders := make([][]string, Partitions)
	names := make([]string, 0, len(spans))
	for name := range spans {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, sp := range spans[name] {
			if sp.N == 0 || sp.P < 0 || sp.P >= Partitions || sp.Last < from || sp.First >= to {
				continue
			}
			holders[sp.P] = append(holders[sp.P], name)
		}
	}
	plan = map[string]*assignment{}
	get := func(name string) *assignment {
		a := plan[name]
		if a == nil {
			a = &assignment{}
			plan[name] = a
		}
		return a
	}
	for p, hs := range holders {
		switch len(hs) {
		case 0:
		case 1:
			clean++
			a := get(hs[0])
			a.Consolidate = append(a.Consolidate, p)
		default:
			conflicted++
			for _, name := range hs {
				a := get(name)
				a.Raw = append(a.Raw, p)
			}
		}
	}
	return plan, clean, conflicted
}

// spansAnswer is a worker's answer on SpansSubject.
type spansAnswer struct {
	Spans []Span `json:"spans"`
	// Pruned: the latest cutoff its retention deleted records at (ns;
	// 0: none), which bounds the rollups (prunedLimits).
	Pruned int64 `json:"pruned,omitempty"`
}

// answerSpans answers a request on SpansSubject.
func (w *Worker) answerSpans(req *nats.Msg) {
	if req.Reply == "" {
		return
	}
	b, _ := json.Marshal(spansAnswer{Spans: w.Spans(), Pruned: w.prunedBefore.Load()})
	w.nc.Publish(req.Reply, b)
}

// part answers a partRequest: messages of raw records (the dump's
// format: id, uvarint length, encoding) of the partitions asked raw,
// selected by the request's time range; messages with the header
// Mira-Part holding the encoded report.Part of the partitions asked to
// consolidate; then an empty message with the headers Mira-Records (the
// raw records sent), Mira-Part (the Part's length) and Mira-Error.
func (w *Worker) part(req *nats.Msg) {
	if req.Reply == "" {
		return
	}
	var pr partRequest
	nraw, npart := 0, 0
	err := gob.NewDecoder(bytes.NewReader(req.Data)).Decode(&pr)
	if err == nil {
		nraw, npart, err = w.answerPart(req.Reply, &pr)
	}
	end := &nats.Msg{Subject: req.Reply, Header: nats.Header{}}
	end.Header.Set("Mira-Records", strconv.Itoa(nraw))
	end.Header.Set("Mira-Part", strconv.Itoa(npart))
	if err != nil {
		end.Header.Set("Mira-Error", err.Error())
	}
	w.nc.PublishMsg(end)
}

// queryBounds are q's range as record times (open sides: the int64
// range).
func queryBounds(q store.Query) (from, to int64) {
	from, to = math.MinInt64, math.MaxInt64
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		to = q.To.UnixNano()
	}
	return from, to
}

func (w *Worker) answerPart(reply string, pr *partRequest) (nraw, npart int, err error) {
	// Building a large part takes longer than the reporter waits for
	// a message: say every second that the answer is coming.
	stopBusy := busy(w.nc, reply)
	part, opts, nraw, err := w.buildPart(pr, func(b []byte) error { return w.nc.Publish(reply, b) })
	var enc []byte
	if err == nil {
		if pr.Keep > 0 {
			part.Aggregate(opts, pr.Keep)
		}
		enc, err = part.MarshalBinary()
	}
	stopBusy()
	if err != nil {
		return nraw, 0, err
	}
	for off := 0; off < len(enc); off += dumpChunk {
		m := &nats.Msg{Subject: reply, Header: nats.Header{}, Data: enc[off:min(len(enc), off+dumpChunk)]}
		m.Header.Set("Mira-Part", "1")
		if err := w.nc.PublishMsg(m); err != nil {
			return nraw, 0, err
		}
	}
	return nraw, len(enc), nil
}

// buildPart reads what pr asks of the store: the raw records of its Raw
// partitions, handed to raw in chunks (the dump's format), and the Part
// of its Consolidate partitions, which it returns with the count of raw
// records.
func (w *Worker) buildPart(pr *partRequest, raw func([]byte) error) (*report.Part, report.Options, int, error) {
	opts, q, err := pr.Spec.Options()
	if err != nil {
		return nil, opts, 0, err
	}
	from, to := queryBounds(q)
	var cons, asRaw [Partitions]bool
	for _, p := range pr.Consolidate {
		if p >= 0 && p < Partitions {
			cons[p] = true
		}
	}
	for _, p := range pr.Raw {
		if p >= 0 && p < Partitions {
			asRaw[p] = true
		}
	}
	// Room for every record of the partitions (records are large:
	// growing the list copied them for a third of the time).
	n := 0
	w.smu.Lock()
	for p := range cons {
		if cons[p] {
			n += int(w.spans[p].N)
		}
	}
	w.smu.Unlock()
	mine := make([]store.StoredFlow, 0, n)
	keys := make([][idLen]byte, 0, n)
	seen := make(map[[idLen]byte]struct{}, n)
	var buf, key []byte
	nraw := 0
	err = w.db.View(func(tx *bolt.Tx) error {
		err := eachStored(tx, func(id ID, enc []byte, r *flow.Record) error {
			if r.Last < from || r.First >= to { // the store's Overlap selection
				return nil
			}
			p := Partition(r.Key, Partitions)
			switch {
			case asRaw[p]:
				key = id.key(key[:0])
				buf = append(buf, key...)
				buf = binary.AppendUvarint(buf, uint64(len(enc)))
				buf = append(buf, enc...)
				nraw++
				if len(buf) >= dumpChunk {
					if err := raw(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			case cons[p]:
				k := [idLen]byte(id.key(key[:0]))
				if _, ok := seen[k]; ok {
					return nil // stored twice (a spooled replay, a batch of two ids)
				}
				seen[k] = struct{}{}
				o := id.Origin()
				if (q.Exporter != "" && o.Exporter != q.Exporter) || (q.HasDomain && o.Domain != q.Domain) {
					return nil
				}
				if opts.Match != nil && !opts.Match(r) {
					return nil
				}
				mine = append(mine, store.StoredFlow{Origin: o, Record: *r})
				mine[len(mine)-1].Record.Symptoms = slices.Clone(r.Symptoms)
				keys = append(keys, k)
			}
			return nil
		})
		if err == nil && len(buf) > 0 {
			err = raw(buf)
		}
		return err
	})
	if err != nil {
		return nil, opts, nraw, err
	}
	idx := storeOrder(mine, keys)
	// Partitions share no address pair: groups of them are
	// consolidated on all cores at once, each group's records in the
	// order above, and their parts merged (report.MergeParts).
	groups := min(runtime.GOMAXPROCS(0), len(pr.Consolidate))
	if groups < 2 {
		flows := make([]store.StoredFlow, len(mine))
		for i, j := range idx {
			flows[i] = mine[j]
		}
		return report.BuildPart(flows, opts), opts, nraw, nil
	}
	var group [Partitions]int
	for i, p := range pr.Consolidate {
		if p >= 0 && p < Partitions {
			group[p] = i % groups
		}
	}
	in := make([][]store.StoredFlow, groups)
	for _, j := range idx {
		g := group[Partition(mine[j].Record.Key, Partitions)]
		in[g] = append(in[g], mine[j])
	}
	mine, keys, seen = nil, nil, nil
	parts := make([]*report.Part, groups)
	var wg sync.WaitGroup
	for g := range in {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[g] = report.BuildPart(in[g], opts)
		}()
	}
	wg.Wait()
	return report.MergeParts(parts), opts, nraw, nil
}

// ReportStats describes how a merged report was made.
type ReportStats struct {
	Workers []string
	// Consolidated partitions were paired and classified by the one
	// worker holding their records in the range; Central ones were
	// held by more than one worker and consolidated by the reporter.
	Consolidated, Central int
	// WorkerBiflows are the biflows the workers' parts held, Records
	// the distinct records of central partitions moved to the reporter
	// (Duplicates: copies of them two workers both held).
	WorkerBiflows, Records, Duplicates int
	// Aggregated counts the workers' parts that came as usage rows and
	// first biflows (report.Part.Aggregate; WorkerBiflows then counts
	// the biflows they summed).
	Aggregated int
	// Bytes is what the workers sent.
	Bytes int64
	// Rollups: answered from rollups (--source rollups or auto):
	// Consolidated partitions are those one worker alone ever held,
	// whose cells it sent; Central ones were held by several workers and
	// rolled up by one of them with the others' records (Records got
	// from the others, Duplicates among them). Cached: partitions
	// answered without rolling them up again, Live of them from a
	// worker's live rollups (fed at commit: kept cells plus a flushed
	// copy of the pending state); Built: rolled up for this report from
	// all their records, their records having changed since (or the
	// parameters, or a record came late to the live rollups). Sampled: some cell
	// holds sampled estimates (summed per partition, then across them:
	// exactly, so equal to a single collector's bit for bit).
	Rollups             bool
	Cached, Built, Live int
	Sampled             bool
	// Fallback says why --source auto answered from the records.
	Fallback string
}

// String is the line `mira report --nats --merge-stats` writes.
func (s ReportStats) String() string {
	if s.Rollups {
		l := fmt.Sprintf("merged report from rollups: %d workers; %d partitions held by one worker, %d moved between workers (rolled up by one holder with %d records from the others, %d duplicates); %d kept rollups read (%d live), %d rolled up for this report; %d bytes from workers",
			len(s.Workers), s.Consolidated, s.Central, s.Records, s.Duplicates, s.Cached, s.Live, s.Built, s.Bytes)
		if s.Sampled {
			l += "; sampled estimates summed per partition (exactly: equal to a single collector's)"
		}
		return l
	}
	l := ""
	if s.Fallback != "" {
		l = "--source auto answered from the records (" + s.Fallback + "); "
	}
	return l + fmt.Sprintf("merged report: %d workers; %d partitions consolidated at workers (%d biflows; %d parts as usage rows), %d at the reporter (%d records, %d duplicates); %d bytes from workers",
		len(s.Workers), s.Consolidated, s.WorkerBiflows, s.Aggregated, s.Central, s.Records, s.Duplicates, s.Bytes)
}

// Report makes the report `mira report --db` would make with p over a
// single collector's store, from the cluster's workers: each partition
// held by one worker in p's range is consolidated by that worker
// (report.BuildPart), the others' records are gathered and consolidated
// here, and the parts are assembled (report.Assemble); see the package
// documentation for why this is exact. rules is the rules' YAML (nil:
// the embedded rules). dir holds a temporary store (the announcements,
// counters and gathered records).
func Report(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, p *report.Params, rules []byte, dir string) (*report.Report, ReportStats, error) {
	var rs ReportStats
	st, done, err := tempStore(ctx, js, dir)
	if err != nil {
		return nil, rs, err
	}
	defer done()
	spec, err := p.PartSpec(rules)
	if err != nil {
		return nil, rs, err
	}
	if spec.Names, err = st.NameIndex(); err != nil {
		return nil, rs, err
	}
	if spec.Announcements, err = st.Announcements(); err != nil {
		return nil, rs, err
	}
	if rs.Workers, err = workerNames(ctx, js); err != nil {
		return nil, rs, err
	}
	if p.Source == report.SourceRollups || p.Source == report.SourceAuto {
		rep, err := reportRollups(ctx, nc, js, p, spec, st, &rs)
		switch {
		case err == nil:
			return rep, rs, nil
		case p.Source == report.SourceRollups || p.RollupsOnly || !errRollups(err):
			return nil, rs, err
		}
		// auto: the records answer what the rollups cannot.
		// (st's rollup cells, if any, are not read by the records' path.)
		rs = ReportStats{Workers: rs.Workers, Fallback: err.Error()}
	}
	spans := map[string][]Span{}
	// pruned: the latest cut a worker's record retention deleted records
	// at (each worker keeps its own): an open range starts there.
	var pruned int64
	for _, name := range rs.Workers {
		m, err := nc.Request(SpansSubject+name, nil, answerTimeout)
		if err != nil {
			return nil, rs, fmt.Errorf("cluster: worker %s did not say what it holds: %w (a merged report needs every worker that stored records: start it again)", name, err)
		}
		var a spansAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return nil, rs, fmt.Errorf("cluster: worker %s: %w", name, err)
		}
		spans[name] = a.Spans
		pruned = max(pruned, a.Pruned)
	}
	// By start (--started), the records read are those from a margin
	// before the range on (report.StartedRead), whose biflows the parts
	// keep when they started in the range.
	rq := p.Query
	if rq.Field == store.ByStart {
		rq = report.StartedRead(rq, &report.Options{Window: p.Window})
	}
	from, to := queryBounds(rq)
	plan, clean, conflicted := planParts(spans, from, to)
	rs.Consolidated, rs.Central = clean, conflicted

	// Every worker works on its share at once.
	type answer struct {
		part  *report.Part
		raw   []idEnc
		bytes int64
		err   error
	}
	names := make([]string, 0, len(plan))
	for name := range plan {
		names = append(names, name)
	}
	slices.Sort(names)
	answers := make([]answer, len(names))
	// A report that lists its first biflows only can take the workers'
	// usage rows and first biflows instead of every biflow.
	keep := 0
	if p.Limit > 0 {
		keep = p.Offset + p.Limit
	}
	ask := func(i int, req partRequest) error {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(req); err != nil {
			return err
		}
		a := &answers[i]
		a.part, a.raw, a.bytes, a.err = askPart(ctx, nc, names[i], b.Bytes())
		return nil
	}
	var wg sync.WaitGroup
	for i, name := range names {
		req := partRequest{Spec: spec, Consolidate: plan[name].Consolidate, Raw: plan[name].Raw, Keep: keep}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ask(i, req); err != nil {
				answers[i].err = err
			}
		}()
	}
	wg.Wait()
	var parts []*report.Part
	partOf := map[int]int{} // answer -> index in parts
	seen := map[[idLen]byte]struct{}{}
	byOrigin := map[store.Origin][]idRec{}
	for i := range answers {
		a := &answers[i]
		if a.err != nil {
			return nil, rs, a.err
		}
		rs.Bytes += a.bytes
		if a.part != nil {
			partOf[i] = len(parts)
			parts = append(parts, a.part)
		}
		for _, x := range a.raw {
			if _, ok := seen[x.id]; ok {
				rs.Duplicates++
				continue
			}
			seen[x.id] = struct{}{}
			var r flow.Record
			if err := store.DecodeRecord(x.enc, &r); err != nil {
				return nil, rs, fmt.Errorf("cluster: worker %s: %w", names[i], err)
			}
			o := x.origin
			byOrigin[o] = append(byOrigin[o], idRec{x.id, r})
		}
		a.raw = nil
	}
	rs.Records = len(seen)
	if err := putRecords(st, byOrigin); err != nil {
		return nil, rs, err
	}
	r, err := classify.Default(), error(nil)
	if rules != nil {
		if r, err = classify.Parse("rules", rules); err != nil {
			return nil, rs, err
		}
	}
	opts := p.Options()
	opts.Rules = r
	flows, err := report.StoreInputs(ctx, st, p.Query, &opts)
	if err != nil {
		return nil, rs, err
	}
	parts = append(parts, report.BuildPart(flows, opts))
	// A --sampling override of an exporter none of the records came
	// from is refused, as over a single store.
	if err := report.CheckOverrides(parts, opts.Overrides); err != nil {
		return nil, rs, err
	}
	rep := report.Assemble(parts, opts)
	for _, j := range partOf {
		rs.WorkerBiflows += parts[j].Count()
		if parts[j].Aggregated() {
			rs.Aggregated++
		}
	}
	if pruned != 0 && p.Query.From.IsZero() {
		report.NoteRecordsPruned(&rep.Summary, pruned)
	}
	return rep, rs, nil
}

// idEnc is one raw record of a worker's answer.
type idEnc struct {
	id     [idLen]byte
	origin store.Origin
	enc    []byte
}

// askPart sends a partRequest to worker name and reads its answer.
func askPart(ctx context.Context, nc *nats.Conn, name string, req []byte) (*report.Part, []idEnc, int64, error) {
	part, raw, n, err := ask(ctx, nc, PartSubject, name, req)
	if err != nil {
		return nil, nil, n, err
	}
	var p *report.Part
	if len(part) > 0 {
		p = new(report.Part)
		if err := p.UnmarshalBinary(part); err != nil {
			return nil, nil, n, fmt.Errorf("cluster: worker %s: %w", name, err)
		}
	}
	return p, raw, n, nil
}

// ask sends req on subject+name and reads the answer: raw records, a
// payload (messages with the header Mira-Part), then the end message.
func ask(ctx context.Context, nc *nats.Conn, subject, name string, req []byte) ([]byte, []idEnc, int64, error) {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, nil, 0, err
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(-1, -1)
	if err := nc.PublishRequest(subject+name, inbox, req); err != nil {
		return nil, nil, 0, err
	}
	var raw []idEnc
	var part []byte
	var n int64
	for {
		select {
		case <-ctx.Done():
			return nil, nil, n, ctx.Err()
		case <-time.After(answerTimeout):
			return nil, nil, n, fmt.Errorf("cluster: worker %s did not answer within %v (a merged report needs every worker that stored records: start it again)", name, answerTimeout)
		case m := <-ch:
			n += int64(len(m.Data))
			if c := m.Header.Get("Mira-Records"); c != "" {
				if e := m.Header.Get("Mira-Error"); e != "" {
					return nil, nil, n, fmt.Errorf("cluster: worker %s: %s", name, e)
				}
				if want, _ := strconv.Atoi(c); want != len(raw) {
					return nil, nil, n, fmt.Errorf("cluster: worker %s sent %d of its %d records (answer cut short)", name, len(raw), want)
				}
				if want, _ := strconv.Atoi(m.Header.Get("Mira-Part")); want != len(part) {
					return nil, nil, n, fmt.Errorf("cluster: worker %s sent %d of its answer's %d bytes (answer cut short)", name, len(part), want)
				}
				return part, raw, n, nil
			}
			if m.Header.Get("Mira-Busy") != "" {
				continue
			}
			if m.Header.Get("Mira-Part") != "" {
				part = append(part, m.Data...)
				continue
			}
			b := m.Data
			for len(b) > 0 {
				if len(b) < idLen {
					return nil, nil, n, fmt.Errorf("cluster: worker %s: truncated answer", name)
				}
				id, err := parseID(b[:idLen])
				if err != nil {
					return nil, nil, n, err
				}
				l, w := binary.Uvarint(b[idLen:])
				if w <= 0 || l > uint64(len(b)-idLen-w) {
					return nil, nil, n, fmt.Errorf("cluster: worker %s: bad record length in its answer", name)
				}
				raw = append(raw, idEnc{[idLen]byte(b[:idLen]), id.Origin(), b[idLen+w : idLen+w+int(l)]})
				b = b[idLen+w+int(l):]
			}
		}
	}
}

// workerNames lists every worker that ever stored records.
func workerNames(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	wkv, err := js.KeyValue(ctx, WorkerBucket)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w (no worker ever ran against this NATS?)", WorkerBucket, err)
	}
	keys, err := wkv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer keys.Stop()
	var names []string
	for k := range keys.Keys() {
		names = append(names, strings.TrimPrefix(k, "w."))
	}
	slices.Sort(names)
	return names, nil
}
