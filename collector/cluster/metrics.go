package cluster

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/flow"
)

// Metrics is the Prometheus collector of a mira-collector in cluster
// mode: the ingest node's collector counters (the names a single
// mira-collector uses) and publication counters, and the worker's
// storage counters and partitions, each once its role has started
// (SetIngest, SetWorker).
type Metrics struct {
	ingest atomic.Pointer[ingestNode]
	worker atomic.Pointer[Worker]
}

type ingestNode struct {
	g    *Ingest
	coll *collector.Collector
}

// SetIngest makes m report the ingest node g with its collecting
// process coll.
func (m *Metrics) SetIngest(g *Ingest, coll *collector.Collector) {
	m.ingest.Store(&ingestNode{g, coll})
}

// SetWorker makes m report worker w.
func (m *Metrics) SetWorker(w *Worker) { m.worker.Store(w) }

var (
	mMessages    = prometheus.NewDesc("mira_collector_messages_total", "IPFIX messages received.", nil, nil)
	mRecords     = prometheus.NewDesc("mira_collector_records_total", "Flow records decoded.", nil, nil)
	mLost        = prometheus.NewDesc("mira_collector_lost_records_total", "Records lost in transit, from IPFIX sequence numbers.", nil, nil)
	mMalformed   = prometheus.NewDesc("mira_collector_malformed_total", "Malformed IPFIX input, by reason.", []string{"reason"}, nil)
	mSockDrops   = prometheus.NewDesc("mira_collector_socket_drops_total", "UDP datagrams the kernel dropped: socket receive buffer full.", nil, nil)
	mSessions    = prometheus.NewDesc("mira_collector_sessions", "Live exporter sessions.", nil, nil)
	mTemplates   = prometheus.NewDesc("mira_collector_templates", "Templates currently known.", nil, nil)
	mEvicted     = prometheus.NewDesc("mira_collector_evicted_total", "Collector state dropped to stay within its limits, by kind (templates, templates-expired, domains, exporters, held-names: names of origins that never sent a record, sequence-positions: exporters' sequence positions forgotten beyond 4096).", []string{"kind"}, nil)
	mLedgerStale = prometheus.NewDesc("mira_collector_ledgers_stale_total", "Ledger options older than one already taken (resent after a reconnect), ignored.", nil, nil)
	mLoss        = prometheus.NewDesc("mira_collector_loss_total", "The loss ledger: packets or records lost, by stage (flow.LossStages); the probes' stages as their ledger options said since this ingest node started, the node's own counted here (store: its unpublished records).", []string{"stage"}, nil)
	mSeqRestarts = prometheus.NewDesc("mira_collector_sequence_restarts_total", "Transport sessions whose first message in a domain was behind the sequence position earlier sessions left (a restarted exporter or a spool's replay): re-seeded, not counted lost.", nil, nil)
	mShared      = prometheus.NewDesc("mira_collector_shared_domains_total", "Exporter sessions that sent under an observation domain another session from the same address was sending under at the same time (TCP, TLS, or UDP from two ports: two exporters with one domain, whose records are taken as one probe's); each is logged.", nil, nil)
	mSkewed      = prometheus.NewDesc("mira_collector_clock_skewed_total", "Exporter sessions whose clock, by their messages' export times, was more than 5 s off the collector's (ahead, or behind in every message of a 10 s period); each is logged.", nil, nil)
	mPublished   = prometheus.NewDesc("mira_cluster_published_records_total", "Records of this ingest node JetStream acknowledged.", nil, nil)
	mUnpublished = prometheus.NewDesc("mira_cluster_unpublished_records_total", "Records this ingest node dropped: too many batches in flight, or not acknowledged by JetStream within cluster.publish_retry (the report's dropped records).", nil, nil)
	mAnnUnpub    = prometheus.NewDesc("mira_cluster_unpublished_announcements_total", "Announcements (an exporter's sampling, names, loss ledger: messages without records) this ingest node gave up publishing, as mira_cluster_unpublished_records_total counts records.", nil, nil)
	mRetried     = prometheus.NewDesc("mira_cluster_retried_batches_total", "Publications of a record batch again after a failed one.", nil, nil)
	mInFlight    = prometheus.NewDesc("mira_cluster_batches_in_flight", "Record batches published and not yet acknowledged.", nil, nil)
	mUnsaved     = prometheus.NewDesc("mira_cluster_sequence_positions_unsaved", "Exporters' sequence position moves not yet saved to the positions bucket (waiting for their records' acknowledgements).", nil, nil)
	mStored      = prometheus.NewDesc("mira_cluster_worker_stored_records_total", "Records this worker stored.", nil, nil)
	mDuplicates  = prometheus.NewDesc("mira_cluster_worker_duplicate_records_total", "Records of batches delivered again that this worker had stored already.", nil, nil)
	mBadBatches  = prometheus.NewDesc("mira_cluster_worker_malformed_batches_total", "Record batches this worker could not decode (dropped).", nil, nil)
	mOwned       = prometheus.NewDesc("mira_cluster_worker_partitions", "Partitions this worker holds now.", nil, nil)
	mHeld        = prometheus.NewDesc("mira_cluster_worker_partition_records", "Records this worker holds, by partition (duplicates included; less those retention deleted).", []string{"partition"}, nil)
	mPruned      = prometheus.NewDesc("mira_cluster_worker_pruned_records_total", "Records this worker's retention deleted, by reason (age: retention max_age, size: max_size).", []string{"reason"}, nil)
	mPrunedBat   = prometheus.NewDesc("mira_cluster_worker_pruned_batches_total", "Stored record batches this worker's retention emptied and deleted.", nil, nil)
	mPrunedCells = prometheus.NewDesc("mira_cluster_worker_pruned_rollup_cells_total", "Rollup cells this worker's retention deleted.", nil, nil)
	mDataBytes   = prometheus.NewDesc("mira_cluster_worker_data_bytes", "Bytes this worker's records occupy in its store's pages (what retention max_size bounds), at the last retention pass.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mMessages, mRecords, mLost, mMalformed, mSockDrops, mSessions, mTemplates, mEvicted, mLedgerStale, mLoss, mSeqRestarts, mShared, mSkewed, mPublished, mUnpublished,
		mAnnUnpub, mRetried, mInFlight, mUnsaved, mStored, mDuplicates, mBadBatches, mOwned, mHeld, mPruned, mPrunedBat, mPrunedCells, mDataBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	if n := m.ingest.Load(); n != nil {
		st := n.coll.Stats()
		c(mMessages, st.Messages)
		c(mRecords, st.Records)
		c(mLost, st.LostRecords)
		c(mSeqRestarts, st.SeqRestarts)
		c(mShared, st.SharedDomains)
		c(mSkewed, st.ClockSkewed)
		c(mSockDrops, st.SocketDrops)
		for r, v := range st.Malformed {
			c(mMalformed, v, r)
		}
		f := n.g.lossFigures()
		c(mMalformed, f.backwards, "ledger-backwards")
		c(mMalformed, f.full, "ledger-overflow")
		c(mLedgerStale, f.stale)
		c(mEvicted, st.TemplatesEvicted, "templates")
		c(mEvicted, st.TemplatesExpired, "templates-expired")
		c(mEvicted, st.DomainsEvicted, "domains")
		c(mEvicted, st.SessionsEvicted, "exporters")
		c(mEvicted, f.held, "held-names")
		c(mEvicted, f.posEvicted, "sequence-positions")
		g(mTemplates, float64(st.Templates))
		g(mSessions, float64(st.Sessions))
		// The loss ledger as mira-collector adds it up (server
		// metrics.go), the node's unpublished records in the store
		// stage as the report counts them (its dropped records).
		loss := f.loss
		loss.Malformed += f.backwards + f.full
		loss.Socket += st.SocketDrops
		loss.Sequence += st.LostRecords
		for _, v := range st.Malformed {
			loss.Malformed += v
		}
		loss.Store += n.g.Unpublished.Load()
		for i, v := range loss.Counts() {
			c(mLoss, v, flow.LossStages[i])
		}
		c(mPublished, n.g.Published.Load())
		c(mUnpublished, n.g.Unpublished.Load())
		c(mAnnUnpub, n.g.AnnouncementsUnpublished.Load())
		c(mRetried, n.g.Retried.Load())
		g(mInFlight, float64(n.g.inFlight.Load()))
		g(mUnsaved, float64(n.g.PositionsUnsaved()))
	}
	if w := m.worker.Load(); w != nil {
		c(mStored, w.Stored.Load())
		c(mDuplicates, w.Duplicates.Load())
		c(mBadBatches, w.Malformed.Load())
		g(mOwned, float64(len(w.Owned())))
		for _, sp := range w.Spans() {
			g(mHeld, float64(sp.N), strconv.Itoa(sp.P))
		}
		c(mPruned, w.PrunedByAge.Load(), "age")
		c(mPruned, w.PrunedBySize.Load(), "size")
		c(mPrunedBat, w.PrunedBatches.Load())
		c(mPrunedCells, w.PrunedCells.Load())
		if n := w.dataBytes.Load(); n >= 0 {
			g(mDataBytes, float64(n))
		}
	}
}

// lossFigures are an ingest node's own loss-related counters (those not
// in collector.Stats).
type lossFigures struct {
	loss                   flow.Loss // the ledgers taken
	stale, backwards, full uint64
	held, posEvicted       uint64
}

func (g *Ingest) lossFigures() lossFigures {
	g.mu.Lock()
	defer g.mu.Unlock()
	return lossFigures{loss: g.ledgers.Loss(), stale: g.ledgers.Stale, backwards: g.ledgers.Backwards, full: g.ledgers.Full,
		held: g.heldDropped, posEvicted: g.posEvicted}
}
