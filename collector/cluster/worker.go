package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"

	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// bucketBatches holds a worker's records as the batch messages they came
// in (the batch format, records with their identities): key = the batch's
// JetStream message id (the ingest node's id and batch number, the same
// when the batch is published again or delivered again), else the
// SHA-256 of its bytes. A batch delivered again is found under its key
// and not written twice; the merge (Gather) keeps one copy of each record
// identity across batches and workers. One bbolt write per batch rather
// than one per record cut the worker's CPU by 3.0-4.5x at 64 000
// records/s and by 7.5-8x at 510 000 (BENCHMARKS.md).
var bucketBatches = []byte("batches")

// bucketRecords is where workers before that kept one record per key
// (key = ID.key, value = its encoding): read by dump, no longer written.
var bucketRecords = []byte("records")

// bucketSpans holds, per partition (key: one byte), the Span of the
// records stored (16-byte earliest start, latest end, record count),
// updated in the transaction that stores them.
var bucketSpans = []byte("spans")

// Span describes a worker's records of one partition (by Partition of
// each record, whatever subject it came on): how many it stored
// (duplicates included) and the earliest start and latest end among
// them.
type Span struct {
	P     int    `json:"p"`
	First int64  `json:"first"`
	Last  int64  `json:"last"`
	N     uint64 `json:"n"`
}

func (sp *Span) add(r *flow.Record) {
	if sp.N == 0 {
		sp.First, sp.Last = r.First, r.Last
	} else {
		sp.First, sp.Last = min(sp.First, r.First), max(sp.Last, r.Last)
	}
	sp.N++
}

func (sp *Span) merge(o Span) {
	if o.N == 0 {
		return
	}
	if sp.N == 0 {
		sp.First, sp.Last = o.First, o.Last
	} else {
		sp.First, sp.Last = min(sp.First, o.First), max(sp.Last, o.Last)
	}
	sp.N += o.N
}

func (sp *Span) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(sp.First))
	b = binary.BigEndian.AppendUint64(b, uint64(sp.Last))
	return binary.BigEndian.AppendUint64(b, sp.N)
}

// Worker is a consolidation worker: it owns a share of the partitions
// and stores their records in its bbolt file.
type Worker struct {
	Name string
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	db   *bolt.DB

	in   chan jetstream.Msg
	quit chan struct{} // closed at shutdown: consume callbacks stop handing over

	mu    sync.Mutex
	owned map[int]*lease

	smu   sync.Mutex
	spans [Partitions]Span // what the store holds per partition (Partition of each record)
	// live: the partitions' live rollups (rollups.go), fed at commit;
	// held with smu.
	live [Partitions]*liveRoll

	Stored     atomic.Uint64 // records stored
	Duplicates atomic.Uint64 // records of batches delivered again and already stored
	Malformed  atomic.Uint64 // batches that did not decode (terminated)

	// Retention is applied every retentionEvery while Run runs (set
	// it before Run).
	Retention Retention
	// Rules: the classification rules' YAML (nil: the embedded rules)
	// the cluster's rollups are retired with before records are
	// deleted (retire.go): the collector's rules:, which its HTTP API's
	// reports use.
	Rules []byte
	// PrunedByAge and PrunedBySize count the records retention deleted
	// (PruneBefore, PruneToSize), PrunedBatches the batches it emptied,
	// PrunedCells the rollup cells it deleted.
	PrunedByAge, PrunedBySize, PrunedBatches, PrunedCells atomic.Uint64
	// prunedBefore: the latest cutoff records were pruned at (0: none).
	prunedBefore atomic.Int64
	// dataBytes: DataSize at the last retention pass (-1: none yet).
	dataBytes atomic.Int64
	// retainEvery: the retention period (retentionEvery).
	retainEvery time.Duration
}

type lease struct {
	rev uint64
	cc  jetstream.ConsumeContext
}

// OpenWorker opens (creates) the worker's store at path.
func OpenWorker(name, path string, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (*Worker, error) {
	if name == "" || strings.ContainsAny(name, ". *>") {
		return nil, fmt.Errorf("cluster: worker name %q: want a non-empty name without dots, spaces, * or >", name)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cluster: worker store %s: %w", path, err)
	}
	w := &Worker{Name: name, nc: nc, js: js, db: db,
		in: make(chan jetstream.Msg, 256), quit: make(chan struct{}), owned: map[int]*lease{}, retainEvery: retentionEvery}
	w.dataBytes.Store(-1)
	if err := db.Update(w.loadSpans); err != nil {
		db.Close()
		return nil, fmt.Errorf("cluster: worker store %s: %w", path, err)
	}
	if log == nil {
		log = slog.Default()
	}
	w.log = log.With("worker", name)
	return w, nil
}

// loadSpans reads the partitions' spans, or computes them from the
// records when the store has none (a store of a worker before spans
// were kept).
func (w *Worker) loadSpans(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketBatches); err != nil {
		return err
	}
	if err := indexBatches(tx); err != nil {
		return err
	}
	if m := tx.Bucket(bucketMeta); m != nil {
		if v := m.Get(keyPruned); len(v) == 8 {
			w.prunedBefore.Store(int64(binary.BigEndian.Uint64(v)))
		}
	}
	if b := tx.Bucket(bucketSpans); b != nil {
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 1 || int(k[0]) >= Partitions || len(v) != 24 {
				return fmt.Errorf("bad span %x", k)
			}
			w.spans[k[0]] = Span{P: int(k[0]), First: int64(binary.BigEndian.Uint64(v)),
				Last: int64(binary.BigEndian.Uint64(v[8:])), N: binary.BigEndian.Uint64(v[16:])}
			return nil
		})
	}
	err := eachStored(tx, func(_ ID, _ []byte, r *flow.Record) error {
		w.spans[Partition(r.Key, Partitions)].add(r)
		return nil
	})
	if err != nil {
		return err
	}
	return putSpans(tx, &w.spans, nil)
}

// putSpans writes the spans of the partitions in dirty (all when nil),
// deleting those of no record.
func putSpans(tx *bolt.Tx, spans *[Partitions]Span, dirty *[Partitions]bool) error {
	b, err := tx.CreateBucketIfNotExists(bucketSpans)
	if err != nil {
		return err
	}
	for p := range spans {
		if dirty != nil && !dirty[p] {
			continue
		}
		if spans[p].N == 0 {
			if err := b.Delete([]byte{byte(p)}); err != nil {
				return err
			}
			continue
		}
		if err := b.Put([]byte{byte(p)}, spans[p].encode()); err != nil {
			return err
		}
	}
	return nil
}

// Spans lists the partitions w has stored records of.
func (w *Worker) Spans() []Span {
	w.smu.Lock()
	defer w.smu.Unlock()
	var l []Span
	for p, sp := range w.spans {
		if sp.N > 0 {
			sp.P = p
			l = append(l, sp)
		}
	}
	return l
}

// eachStored calls fn with every record stored (batches, then the
// records bucket of older workers), decoded.
func eachStored(tx *bolt.Tx, fn func(id ID, enc []byte, r *flow.Record) error) error {
	err := tx.Bucket(bucketBatches).ForEach(func(_, v []byte) error { return decodeBatchRecords(v, fn) })
	if old := tx.Bucket(bucketRecords); err == nil && old != nil {
		var r flow.Record
		err = old.ForEach(func(k, v []byte) error {
			id, err := parseID(k)
			if err != nil {
				return err
			}
			if err := store.DecodeRecord(v, &r); err != nil {
				return err
			}
			return fn(id, v, &r)
		})
	}
	return err
}

// Owned lists the partitions w holds now.
func (w *Worker) Owned() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var l []int
	for p := range w.owned {
		l = append(l, p)
	}
	slices.Sort(l)
	return l
}

// Run consumes until ctx ends, then releases its partitions and closes
// the store.
func (w *Worker) Run(ctx context.Context) error {
	defer w.db.Close()
	var members, leases, workers jetstream.KeyValue
	err := retry(ctx, w.log, "worker registration", func(ctx context.Context) (err error) {
		if members, err = w.js.KeyValue(ctx, MemberBucket); err != nil {
			return err
		}
		if leases, err = w.js.KeyValue(ctx, LeaseBucket); err != nil {
			return err
		}
		if workers, err = w.js.KeyValue(ctx, WorkerBucket); err != nil {
			return err
		}
		_, err = workers.Put(ctx, "w."+w.Name, []byte(time.Now().UTC().Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return err
	}
	for subject, h := range map[string]nats.MsgHandler{DumpSubject: w.dump, SpansSubject: w.answerSpans, PartSubject: w.part, RollupSubject: w.rollups, BoundsSubject: w.bounds} {
		sub, err := w.nc.Subscribe(subject+w.Name, h)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
	}

	done := make(chan struct{})
	go func() { w.commitLoop(); close(done) }()

	tick := time.NewTicker(leaseTTL / 4)
	defer tick.Stop()
	// Retention runs beside the leases: a long pruning must not delay
	// their renewal.
	retained := make(chan struct{})
	go func() {
		defer close(retained)
		t := time.NewTicker(w.retainEvery)
		defer t.Stop()
		for {
			w.retain()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	for {
		w.rebalance(ctx, members, leases)
		select {
		case <-ctx.Done():
			<-retained
			w.mu.Lock()
			for p, l := range w.owned {
				l.cc.Stop()
				delete(w.owned, p)
				dctx, c := context.WithTimeout(context.Background(), time.Second)
				leases.Delete(dctx, leaseKey(p), jetstream.LastRevision(l.rev))
				c()
			}
			w.mu.Unlock()
			dctx, c := context.WithTimeout(context.Background(), time.Second)
			members.Delete(dctx, "w."+w.Name)
			c()
			close(w.quit)
			<-done
			w.log.Info("worker stopped", "stored", w.Stored.Load(), "duplicates", w.Duplicates.Load())
			return nil
		case <-tick.C:
		}
	}
}

func leaseKey(p int) string { return "p." + strconv.Itoa(p) }

// score is the rendezvous hash of partition p and worker name: a
// partition belongs to the live worker with the highest score, so a
// worker joining or leaving moves only its own share. FNV-1a alone
// mixes the last bytes poorly: the scores of names differing in their
// last letter ("wa", "wb") were so correlated that one of two workers
// got 30 of the 32 partitions. The finalizer of MurmurHash3 (fmix64)
// spreads every input bit over the score.
func score(p int, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(p))
	h.Write(b[:])
	h.Write([]byte(name))
	return fmix64(h.Sum64())
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb93fe53e94ce
	k ^= k >> 33
	return k
}

// Assign gives each partition an owner among the live workers: the
// live worker of highest score (rendezvous hashing) that still has room,
// where room is an even share (every worker holds floor(P/n) or
// floor(P/n)+1 partitions). Every worker computes the same assignment
// from the same membership. Plain rendezvous hashing over 32 partitions
// leaves shares as uneven as 4 and 11 for four workers; the bound makes
// them even at the price of a few more moves when a worker joins or
// leaves (measured in TestAssign). nil when live is empty.
func Assign(live []string) []string {
	if len(live) == 0 {
		return nil
	}
	names := slices.Clone(live)
	slices.Sort(names)
	names = slices.Compact(names)
	n := len(names)
	floor, extra := Partitions/n, Partitions%n
	count := make([]int, n)
	full := 0 // workers holding floor+1
	owner := make([]string, Partitions)
	order := make([]int, n)
	for p := 0; p < Partitions; p++ {
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			sa, sb := score(p, names[a]), score(p, names[b])
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return a - b
		})
		for _, i := range order {
			if count[i] < floor || (count[i] == floor && full < extra) {
				if count[i] == floor {
					full++
				}
				count[i]++
				owner[p] = names[i]
				break
			}
		}
	}
	return owner
}

// rebalance renews w's membership and leases, releases the partitions
// another live worker should own and takes those it should own once
// free.
func (w *Worker) rebalance(ctx context.Context, members, leases jetstream.KeyValue) {
	if _, err := members.Put(ctx, "w."+w.Name, nil); err != nil {
		w.log.Warn("membership not renewed", "err", err)
		return
	}
	keys, err := members.ListKeys(ctx)
	if err != nil {
		w.log.Warn("members", "err", err)
		return
	}
	var live []string
	for k := range keys.Keys() {
		live = append(live, strings.TrimPrefix(k, "w."))
	}
	keys.Stop()
	assign := Assign(live)
	mine := func(p int) bool { return assign != nil && assign[p] == w.Name }
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := 0; p < Partitions; p++ {
		l := w.owned[p]
		switch {
		case l != nil && mine(p):
			rev, err := leases.Update(ctx, leaseKey(p), []byte(w.Name), l.rev)
			if err != nil {
				w.log.Warn("lease lost", "partition", p, "err", err)
				l.cc.Stop()
				delete(w.owned, p)
				continue
			}
			l.rev = rev
		case l != nil:
			// Another worker should have it: stop taking its records
			// (those received are still stored and acked) and free it.
			l.cc.Stop()
			delete(w.owned, p)
			leases.Delete(ctx, leaseKey(p), jetstream.LastRevision(l.rev))
			w.log.Info("partition released", "partition", p)
		case mine(p):
			rev, err := leases.Create(ctx, leaseKey(p), []byte(w.Name))
			if errors.Is(err, jetstream.ErrKeyExists) {
				// Held; ours if we held it before a restart.
				e, gerr := leases.Get(ctx, leaseKey(p))
				if gerr != nil || string(e.Value()) != w.Name {
					continue
				}
				rev, err = leases.Update(ctx, leaseKey(p), []byte(w.Name), e.Revision())
			}
			if err != nil {
				continue
			}
			c, err := w.js.Consumer(ctx, FlowStream, consumerName(p))
			if err != nil {
				w.log.Warn("consumer", "partition", p, "err", err)
				leases.Delete(ctx, leaseKey(p), jetstream.LastRevision(rev))
				continue
			}
			cc, err := c.Consume(w.handOver, jetstream.PullMaxMessages(32))
			if err != nil {
				w.log.Warn("consume", "partition", p, "err", err)
				leases.Delete(ctx, leaseKey(p), jetstream.LastRevision(rev))
				continue
			}
			w.owned[p] = &lease{rev: rev, cc: cc}
			w.log.Info("partition taken", "partition", p)
		}
	}
}

// handOver passes a delivered message to the commit loop.
func (w *Worker) handOver(m jetstream.Msg) {
	select {
	case w.in <- m:
	case <-w.quit:
	}
}

// commitBytes is the size of the record batches committed in one
// transaction (about 40 000 records).
const commitBytes = 4 << 20

// commitLoop stores what arrives in batches (one transaction per batch)
// and acknowledges each message once its transaction is committed.
func (w *Worker) commitLoop() {
	var batch []jetstream.Msg
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		var stored, dup uint64
		bad := make([]bool, len(batch))
		var feed, one []liveRecord
		w.smu.Lock()
		defer w.smu.Unlock()
		spans := w.spans
		var dirty [Partitions]bool
		err := w.db.Update(func(tx *bolt.Tx) error {
			b, idx := tx.Bucket(bucketBatches), tx.Bucket(bucketEnds)
			for i, m := range batch {
				key := batchKey(m)
				if b.Get(key) != nil {
					n := 0
					decodeBatch(m.Data(), func(ID, []byte) error { n++; return nil })
					dup += uint64(n)
					continue
				}
				var add [Partitions]Span
				var bs batchSpans
				n := 0
				one = one[:0]
				err := decodeBatchRecords(m.Data(), func(id ID, enc []byte, r *flow.Record) error {
					p := Partition(r.Key, Partitions)
					add[p].add(r)
					bs.add(p, r)
					n++
					if w.live[p] != nil {
						one = append(one, liveRecord{p: p, id: id, first: r.First, last: r.Last, enc: enc})
					}
					return nil
				})
				if errors.Is(err, errBatch) {
					bad[i] = true
					continue
				}
				if err != nil {
					return err
				}
				stored += uint64(n)
				feed = append(feed, one...)
				if err := b.Put(key, m.Data()); err != nil {
					return err
				}
				if len(bs.spans) > 0 {
					if err := idx.Put(endKey(nil, bs.minLast, key), bs.encode()); err != nil {
						return err
					}
				}
				for p := range add {
					if add[p].N > 0 {
						spans[p].merge(add[p])
						dirty[p] = true
					}
				}
			}
			return putSpans(tx, &spans, &dirty)
		})
		if err == nil {
			w.spans = spans
			w.feedLive(feed)
		}
		if err != nil {
			// Not acked: JetStream delivers them again after ackWait.
			w.log.Error("store write failed", "err", err)
			batch = batch[:0]
			return
		}
		w.Stored.Add(stored)
		w.Duplicates.Add(dup)
		for i, m := range batch {
			if bad[i] {
				w.Malformed.Add(1)
				w.log.Warn("malformed record batch dropped", "subject", m.Subject())
				m.Term()
				continue
			}
			m.Ack()
		}
		batch = batch[:0]
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			// What was handed over is stored; messages delivered
			// and not handed over are delivered again after ackWait.
			for {
				select {
				case m := <-w.in:
					batch = append(batch, m)
					continue
				default:
				}
				break
			}
			flush()
			return
		case m := <-w.in:
			batch = append(batch, m)
			size += len(m.Data())
			if size >= commitBytes {
				flush()
				size = 0
			}
		case <-t.C:
			flush()
		}
	}
}

// dumpChunk bounds a dump message's payload (NATS's default maximum is
// 1 MiB).
const dumpChunk = 512 << 10

// dump answers a report's request with every stored record: messages of
// (id, uvarint length, encoding) entries, then an empty message with the
// header Mira-Records (their count) that ends the answer.
func (w *Worker) dump(req *nats.Msg) {
	if req.Reply == "" {
		return
	}
	var n int
	err := w.db.View(func(tx *bolt.Tx) error {
		var buf []byte
		add := func(k, v []byte) error {
			buf = append(buf, k...)
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
			n++
			if len(buf) >= dumpChunk {
				if err := w.nc.Publish(req.Reply, buf); err != nil {
					return err
				}
				buf = nil
			}
			return nil
		}
		var key []byte
		err := tx.Bucket(bucketBatches).ForEach(func(_, v []byte) error {
			return decodeBatch(v, func(id ID, enc []byte) error {
				key = id.key(key[:0])
				return add(key, enc)
			})
		})
		if old := tx.Bucket(bucketRecords); err == nil && old != nil {
			err = old.ForEach(add)
		}
		if err == nil && len(buf) > 0 {
			err = w.nc.Publish(req.Reply, buf)
		}
		return err
	})
	end := &nats.Msg{Subject: req.Reply, Header: nats.Header{}}
	end.Header.Set("Mira-Records", strconv.Itoa(n))
	if err != nil {
		end.Header.Set("Mira-Error", err.Error())
	}
	w.nc.PublishMsg(end)
}

// retry calls fn (each call given 5 s) until it succeeds, ctx ends or a
// minute has passed: a NATS cluster electing leaders (a node just lost
// or restarted) times requests out for a few seconds.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s: %w", what, err)
		}
		log.Warn(what+": trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// batchKey is the key of a batch message in bucketBatches: its JetStream
// message id ("i:" + id), else the SHA-256 of its bytes ("h:" + hash).
func batchKey(m jetstream.Msg) []byte {
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return append([]byte("i:"), id...)
	}
	h := sha256.Sum256(m.Data())
	return append([]byte("h:"), h[:]...)
}
