package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// maxInFlight bounds the record batches published and not yet resolved
// (acknowledged by JetStream, or given up after PublishRetry), those
// waiting to be published again included: beyond it an ingest node drops
// records and counts them (Ingest.Unpublished) rather than blocking its
// sockets. It bounds the memory a long failover takes (at most
// maxInFlight batches of batchBytes).
const maxInFlight = 8192

// DefaultPublishRetry is how long an ingest node keeps publishing a
// record batch that JetStream did not acknowledge (a NATS node lost, a
// leader election, the connection moving to another node), under the
// same message id (JetStream drops the copy if an earlier one was stored
// after all), before its records count as unpublished; collector.yaml's
// cluster.publish_retry sets it (config.MinPublishRetry to
// config.MaxPublishRetry, well within the flow stream's 2-minute
// duplicate window). On a three-node nats-server cluster whose flow
// stream leader was killed (SIGKILL) the stream answered "no response
// from stream" for ~18 s while the machine was loaded (TestClusterNetns);
// the budget counted in attempts before it (8, 7 s of back-off) gave up
// before the new leader was elected.
const DefaultPublishRetry = 60 * time.Second

// retryWait is the back-off between a failed publication and the next,
// doubled at each failure up to 8 times retryWait (2 s), never past the
// batch's budget.
const retryWait = 250 * time.Millisecond

// Batching: a partition's records are published once batchBytes wait or
// every linger, whichever comes first. At 64 000 records/s a 5 ms linger
// made messages of ~10 records (32 partitions), and JetStream's cost per
// message dominated: 50 ms cut the ingest node's CPU by 2.2x and
// nats-server's by 2.3-3x (BENCHMARKS.md); 50 ms more on the way of a
// flow record, which waited seconds for its flow's timeout, changes
// nothing a report shows.
const (
	batchBytes = 64 << 10
	linger     = 50 * time.Millisecond
)

// optionsMessage is one announcement on OptionsSubject.
type optionsMessage struct {
	Origin   store.Origin            `json:"origin"`
	Names    *store.NameAnnouncement `json:"names,omitempty"`
	Sampling *store.Announcement     `json:"sampling,omitempty"`
	Ledger   *store.Ledger           `json:"ledger,omitempty"`
}

type originKey struct {
	addr   netip.Addr
	domain uint32
}

// Ingest is the collecting process's consumer on an ingest node: it
// publishes each message's records, by partition, to the flow stream, and
// the origins' announcements to the options stream. It never waits for
// JetStream: see maxInFlight.
type Ingest struct {
	js    jetstream.JetStream
	log   *slog.Logger
	epoch uint64
	ID    string // the node's id in StatsBucket

	mu      sync.Mutex
	smp     store.AnnouncementTracker[originKey]
	held    map[originKey][]store.NameAnnouncement
	bufs    [Partitions][]byte // records waiting per partition (batch format)
	counts  [Partitions]int
	batches uint64 // batches published (their ids)
	records uint64 // records of exporters without a spool instance (their ids)
	scratch []byte
	// ledgers follows the exporting processes' ledgers (taken ones are
	// published; see store.LedgerTracker); heldDropped counts origins
	// whose held names were forgotten beyond 4096, posEvicted the
	// sequence positions forgotten beyond maxSeqPos: the
	// mira_collector_* figures a single mira-collector shows.
	ledgers     store.LedgerTracker
	heldDropped uint64
	posEvicted  uint64

	// Sequence positions (seqpos.go).
	seqKV         jetstream.KeyValue
	pos           map[posKey]*ingestPos
	posGen        uint64
	pending       []pendingPos
	unsaved       map[posKey]pendingPos
	resolvedTo    uint64          // every batch up to it acknowledged or given up
	done          map[uint64]bool // batches resolved after a lower one still in flight
	saveNow       chan struct{}
	remote        map[string]savedPos // SeqBucket's positions, by key
	remoteReady   chan struct{}       // closed once SeqBucket's first values are in remote
	remoteGaveUp  atomic.Bool
	lostUnsaved   uint64                    // sequence loss of positions not saved yet (not in the stats)
	statsNow      chan struct{}             // the stats are to be saved now (loss saved with positions)
	connStart     map[netip.AddrPort]uint64 // stream connections: Unpublished at their first message
	seqLogSince   time.Time
	seqLogN       int
	seqLogSkipped int

	// PublishRetry is how long a batch is published again after a
	// failure before its records count as unpublished (NewIngest:
	// DefaultPublishRetry); retryWait the first back-off (the tests
	// shorten it). Set them before the first record.
	PublishRetry time.Duration
	retryWait    time.Duration
	stop         chan struct{} // closed by GiveUp: batches still in flight count as unpublished
	stopOnce     sync.Once

	Published   atomic.Uint64 // records acknowledged by JetStream
	Unpublished atomic.Uint64 // records dropped: too many in flight, or not acknowledged within PublishRetry
	Retried     atomic.Uint64 // publications of a batch again after a failure
	// AnnouncementsUnpublished counts announcements (an exporter's
	// sampling, names, ledgers: messages without records) given up as
	// Unpublished counts records.
	AnnouncementsUnpublished atomic.Uint64
	givenUpLog               logEvery     // "records not published", once a second at most
	longestRetry             atomic.Int64 // longest time from a batch's first publication to its acknowledgement after retries (ns)
	inFlight                 atomic.Int64
}

// NewIngest prepares an ingest consumer publishing through js.
func NewIngest(js jetstream.JetStream, log *slog.Logger) *Ingest {
	var b [8]byte
	rand.Read(b[:])
	epoch := binary.BigEndian.Uint64(b[:]) | 1<<63 // never 0, never a small spool instance
	if log == nil {
		log = slog.Default()
	}
	return &Ingest{js: js, log: log, epoch: epoch, ID: strconv.FormatUint(epoch, 36), saveNow: make(chan struct{}, 1),
		statsNow: make(chan struct{}, 1), PublishRetry: DefaultPublishRetry, retryWait: retryWait, stop: make(chan struct{})}
}

// Consume implements collector.Consumer.
func (g *Ingest) Consume(o collector.Origin, recs []flow.Record) {
	k := originKey{o.Exporter.Addr(), o.Domain}
	id := ID{Exporter: k.addr, Domain: o.Domain, Instance: o.Instance}
	g.mu.Lock()
	g.smp.Records(k, recs)
	if h, ok := g.held[k]; ok {
		delete(g.held, k)
		for i := range h {
			g.publishOptions(optionsMessage{Origin: id.Origin(), Names: &h[i]})
		}
	}
	for i := range recs {
		p := Partition(recs[i].Key, Partitions)
		if o.Instance != 0 {
			id.Seq = o.Sequence + uint32(i)
		} else {
			// Never deduplicated, as mira-collector never
			// deduplicates an exporter that announces no spool
			// instance: the record's identity is this node's.
			id.Instance, id.Seq = g.epoch^(g.records>>32), uint32(g.records)
			g.records++
		}
		g.bufs[p], g.scratch = appendBatchRecord(g.bufs[p], id, &recs[i], g.scratch)
		g.counts[p]++
		if len(g.bufs[p]) >= batchBytes {
			g.flush(p)
		}
	}
	g.notePos(o, true)
	g.mu.Unlock()
}

// flush publishes partition p's buffered records; g.mu held.
func (g *Ingest) flush(p int) {
	if g.counts[p] == 0 {
		return
	}
	data := append([]byte(nil), g.bufs[p]...)
	n := g.counts[p]
	g.bufs[p], g.counts[p] = g.bufs[p][:0], 0
	if g.inFlight.Load() >= maxInFlight {
		g.Unpublished.Add(uint64(n))
		return
	}
	g.batches++
	m := &nats.Msg{Subject: FlowSubject(p), Data: data, Header: nats.Header{}}
	// The id JetStream's duplicate window knows a retried batch by.
	m.Header.Set(jetstream.MsgIDHeader, g.ID+"."+strconv.FormatUint(g.batches, 36))
	g.send(m, g.batches, n)
}

// FlushAll publishes every buffered record (the linger timer and
// shutdown call it).
func (g *Ingest) FlushAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := range g.bufs {
		g.flush(p)
	}
	g.stampPending()
}

// send publishes m (n records; record batch b, 0 for announcements) and
// follows it until it is resolved: acknowledged, or given up once
// PublishRetry has passed since now (or at GiveUp), its records then
// counted unpublished. Between failures it waits (retryWait, doubled up to
// 8 times retryWait); meanwhile the batch counts in flight (maxInFlight).
//
// nats.go retries an asynchronous publication by itself only on "no
// responders", a number of times (jetstream.WithRetryAttempts), not when
// the acknowledgement times out or the connection moves to another node
// (nats.ErrDisconnected): all three happen when a stream's leader is
// lost, so the library's retry is off (0 attempts) and this loop retries
// every failure within one budget of time.
func (g *Ingest) send(m *nats.Msg, b uint64, n int) {
	g.inFlight.Add(1)
	first := time.Now()
	f, err := g.publish(m)
	go g.follow(m, b, n, first, f, err)
}

// publish is one attempt at m.
func (g *Ingest) publish(m *nats.Msg) (jetstream.PubAckFuture, error) {
	// A copy: the library keeps the message of a pending publication.
	return g.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header},
		jetstream.WithStallWait(time.Millisecond), jetstream.WithRetryAttempts(0))
}

// follow is send's loop for one batch, from its first attempt (f or err).
func (g *Ingest) follow(m *nats.Msg, b uint64, n int, first time.Time, f jetstream.PubAckFuture, err error) {
	wait := g.retryWait
	for retries := 0; ; retries++ {
		if err == nil {
			select {
			case <-f.Ok():
				if retries > 0 {
					d := int64(time.Since(first))
					for l := g.longestRetry.Load(); d > l && !g.longestRetry.CompareAndSwap(l, d); l = g.longestRetry.Load() {
					}
				}
				g.inFlight.Add(-1)
				g.Published.Add(uint64(n))
				if b != 0 {
					g.resolved(b)
				}
				return
			case err = <-f.Err():
			case <-g.stop:
				err = errGivenUp
			}
		}
		left := g.PublishRetry - time.Since(first)
		if err != errGivenUp && left > 0 {
			t := time.NewTimer(min(wait, left))
			select {
			case <-t.C:
			case <-g.stop:
				t.Stop()
				err = errGivenUp
			}
		}
		if err == errGivenUp || left <= 0 {
			g.inFlight.Add(-1)
			g.Unpublished.Add(uint64(n))
			if b == 0 {
				g.AnnouncementsUnpublished.Add(1)
			}
			// A long outage gives up thousands of batches: one line a
			// second, with how many went since the last.
			if more, ok := g.givenUpLog.due(time.Now()); ok {
				g.log.Warn("records not published", "subject", m.Subject, "records", n, "retries", retries,
					"for", time.Since(first).Round(time.Millisecond), "err", err, "batches_since_last_line", more)
			}
			if b != 0 {
				g.resolved(b) // counted: the positions may pass it
			}
			return
		}
		wait = min(2*wait, 8*g.retryWait)
		g.Retried.Add(1)
		f, err = g.publish(m)
	}
}

// errGivenUp: GiveUp was called while the batch was in flight.
var errGivenUp = errors.New("cluster: publication given up at shutdown")

// GiveUp resolves every batch still in flight at once, its records
// counted unpublished (RunIngest's shutdown, once its wait is over): no
// record leaves the node uncounted.
func (g *Ingest) GiveUp() { g.stopOnce.Do(func() { close(g.stop) }) }

// publishOptions publishes an announcement; g.mu held. Announcements are
// rare and small: they are published whatever the records in flight,
// retried like records.
func (g *Ingest) publishOptions(om optionsMessage) {
	b, err := json.Marshal(om)
	if err != nil {
		g.log.Error("options announcement", "err", err)
		return
	}
	g.send(&nats.Msg{Subject: OptionsSubject, Data: b}, 0, 0)
}

// ConsumeOptions implements collector.OptionsConsumer: names, sampling
// and ledgers are announced as mira-collector stores them (names held
// until the origin sends a record).
func (g *Ingest) ConsumeOptions(o collector.Origin, opts ipfix.DomainOptions) {
	k := originKey{o.Exporter.Addr(), o.Domain}
	so := store.Origin{Exporter: k.addr.String(), Domain: o.Domain}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if opts.HaveSampling {
		if a, changed := g.smp.Sampling(k, opts.Sampling.Interval, opts.Sampling.Flow, now); changed {
			g.publishOptions(optionsMessage{Origin: so, Sampling: &a})
		}
	}
	if opts.HaveLedger {
		l := opts.Ledger
		sl := store.Ledger{Origin: so, SystemInit: l.SystemInit,
			Messages: l.Messages, Records: l.Records, Loss: l.Loss, RegulationChanges: l.RegulationChanges, QueueScaled: l.QueueScaled, Updated: now}
		// As mira-collector: a stale, backwards or overflowing ledger
		// is counted, not published.
		if g.ledgers.Take(sl) {
			g.publishOptions(optionsMessage{Origin: so, Ledger: &sl})
		}
	}
	n := store.Names{Aggregates: opts.Aggregates, Symptoms: opts.Symptoms, Categories: opts.Categories}
	if a, changed := g.smp.Names(k, n, now); changed {
		if g.smp.HasRecords(k) {
			g.publishOptions(optionsMessage{Origin: so, Names: &a})
			return
		}
		if g.held == nil {
			g.held = map[originKey][]store.NameAnnouncement{}
		}
		if _, ok := g.held[k]; !ok && len(g.held) >= 4096 {
			for x := range g.held {
				delete(g.held, x)
				g.heldDropped++
				break
			}
		}
		if l := g.held[k]; len(l) > 0 && l[len(l)-1].Since == a.Since {
			l[len(l)-1] = a
			return
		}
		g.held[k] = append(g.held[k], a)
	}
}

// Pending is the number of batches published and not yet resolved
// (acknowledged, or given up).
func (g *Ingest) Pending() int64 { return g.inFlight.Load() }

// stats are c's counters in the store's terms, with the records this
// node could not publish as Dropped, less the sequence loss waiting for
// its positions to be saved (seqpos.go).
func (g *Ingest) stats(c collector.Stats) store.Stats {
	g.mu.Lock()
	held, heldNames, posEvicted := g.lostUnsaved, g.heldDropped, g.posEvicted
	backwards, full := g.ledgers.Backwards, g.ledgers.Full
	g.mu.Unlock()
	d := store.Stats{Messages: c.Messages, Records: c.Records, Lost: c.LostRecords - min(held, c.LostRecords), SocketDrops: c.SocketDrops,
		Dropped: g.Unpublished.Load(), Malformed: map[string]uint64{}, Evicted: map[string]uint64{}, Updated: time.Now()}
	for k, n := range map[string]uint64{"templates": c.TemplatesEvicted, "templates-expired": c.TemplatesExpired,
		"domains": c.DomainsEvicted, "exporters": c.SessionsEvicted, "held-names": heldNames, "sequence-positions": posEvicted} {
		if n > 0 {
			d.Evicted[k] = n
		}
	}
	for k, v := range c.Malformed {
		d.Malformed[k] = v
	}
	for k, n := range map[string]uint64{"ledger-backwards": backwards, "ledger-overflow": full} {
		if n > 0 {
			d.Malformed[k] = n
		}
	}
	return d
}

// RunIngest is `mira-collector --listen URL --nats NATS_URL`: the
// collecting process on cfg.Listen, publishing to js, until ctx ends;
// then it waits for JetStream to acknowledge what it published (up to
// cfg.Cluster.PublishRetry and 10 s; what is still in flight then counts
// as unpublished). addrs, when not nil, receives the bound addresses.
func RunIngest(ctx context.Context, cfg *config.Collector, js jetstream.JetStream, log *slog.Logger, addrs chan<- []net.Addr) error {
	return RunIngestMetrics(ctx, cfg, js, log, addrs, nil)
}

// RunIngestMetrics is RunIngest reporting its counters to m (when not
// nil).
func RunIngestMetrics(ctx context.Context, cfg *config.Collector, js jetstream.JetStream, log *slog.Logger, addrs chan<- []net.Addr, m *Metrics) error {
	g := NewIngest(js, log)
	g.remoteReady = make(chan struct{})
	if cfg.Cluster.PublishRetry > 0 {
		g.PublishRetry = cfg.Cluster.PublishRetry
	}
	allow, err := cfg.AllowPrefixes()
	if err != nil {
		return err
	}
	lim := cfg.Limits
	coll := collector.New(g, &collector.Config{Allow: allow, Logger: g.log,
		MaxSessionTemplates: lim.TemplatesPerExporter, MaxTemplates: lim.Templates,
		MaxSessionDomains: lim.DomainsPerExporter, MaxUDPSessions: lim.UDPExporters,
		TemplateLifetime: lim.TemplateLifetime, MaxConnections: lim.TCPConnections})
	if m != nil {
		m.SetIngest(g, coll)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bound []net.Addr
	for _, raw := range cfg.Listen {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return fmt.Errorf("cluster: bad listen URL %q", raw)
		}
		var a net.Addr
		switch u.Scheme {
		case "udp":
			a, err = coll.ListenUDP(lctx, u.Host)
		case "tcp":
			a, err = coll.ListenTCP(lctx, u.Host)
		case "tls":
			t, terr := cfg.TLS.Server()
			if terr != nil {
				return fmt.Errorf("cluster: listen %s: %w", raw, terr)
			}
			a, err = coll.ListenTLS(lctx, u.Host, t)
		default:
			err = fmt.Errorf("unsupported scheme %q", u.Scheme)
		}
		if err != nil {
			return fmt.Errorf("cluster: listen %s: %w", raw, err)
		}
		g.log.Info("ingest listening", "url", raw, "addr", a.String(), "node", g.ID)
		bound = append(bound, a)
	}
	if addrs != nil {
		addrs <- bound
	}
	var kv jetstream.KeyValue
	if err := retry(ctx, g.log, "stats bucket "+StatsBucket, func(ctx context.Context) (err error) {
		kv, err = js.KeyValue(ctx, StatsBucket)
		return err
	}); err != nil {
		return err
	}
	if err := retry(ctx, g.log, "sequence positions bucket "+SeqBucket, func(ctx context.Context) error {
		kv, err := js.KeyValue(ctx, SeqBucket)
		if err == nil {
			g.mu.Lock()
			g.seqKV = kv
			g.mu.Unlock()
		}
		return err
	}); err != nil {
		return err
	}
	go g.followPositions(lctx, g.seqKV)
	saverDone := make(chan struct{})
	sctx, stopSaver := context.WithCancel(context.Background())
	go func() {
		defer close(saverDone)
		t := time.NewTicker(time.Second) // retries of failed writes
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-g.saveNow:
			case <-t.C:
			}
			g.savePositions(sctx)
		}
	}()
	defer func() { stopSaver(); <-saverDone }()
	saveStats := func() {
		b, _ := json.Marshal(g.stats(coll.Stats()))
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		if _, err := kv.Put(sctx, "i."+g.ID, b); err != nil {
			g.log.Warn("ingest stats not saved", "err", err)
		}
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lt := time.NewTicker(linger)
	defer lt.Stop()
	for {
		select {
		case <-lt.C:
			g.FlushAll()
		case <-ctx.Done():
			cancel()
			coll.Wait()
			g.FlushAll()
			// Every batch is resolved within its PublishRetry and
			// one acknowledgement timeout (Connect: 5 s); whatever
			// is still in flight after that is counted unpublished.
			deadline := time.Now().Add(g.PublishRetry + 10*time.Second)
			for g.Pending() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			g.GiveUp()
			for deadline = time.Now().Add(5 * time.Second); g.Pending() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			stopSaver()
			<-saverDone
			g.savePositions(context.Background())
			saveStats()
			g.log.Info("ingest stopped", "published", g.Published.Load(), "unpublished", g.Unpublished.Load(),
				"retried", g.Retried.Load(), "longest_retry", time.Duration(g.longestRetry.Load()).Round(time.Millisecond))
			return nil
		case <-tick.C:
			saveStats()
		case <-g.statsNow:
			saveStats()
		}
	}
}

// logEvery lets a repeated log line through once a second at most and
// says how many were held back meanwhile.
type logEvery struct {
	mu      sync.Mutex
	last    time.Time
	skipped uint64
}

// due says whether a line may be written at now and, if so, how many
// events since the last line (this one included).
func (l *logEvery) due(now time.Time) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skipped++
	if !l.last.IsZero() && now.Sub(l.last) < time.Second {
		return 0, false
	}
	n := l.skipped
	l.last, l.skipped = now, 0
	return n, true
}
