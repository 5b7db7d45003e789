package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

// statsDelta is what the collector counted between two snapshots, in the
// store's terms (the store accumulates deltas across restarts).
func statsDelta(prev, cur collector.Stats) store.Stats {
	d := store.Stats{
		Messages: cur.Messages - prev.Messages,
		Records:  cur.Records - prev.Records,
		// Lost (sequence gaps) is not taken from here: the server
		// commits each gap with the records that came after it
		// (seqpos.go), so a crash neither loses nor repeats it.
		// Dropped is filled in by the caller: it is the server's count.
		SocketDrops: cur.SocketDrops - prev.SocketDrops,
		Malformed:   map[string]uint64{},
		Evicted:     map[string]uint64{},
	}
	for k, n := range map[string][2]uint64{
		"templates":         {prev.TemplatesEvicted, cur.TemplatesEvicted},
		"templates-expired": {prev.TemplatesExpired, cur.TemplatesExpired},
		"domains":           {prev.DomainsEvicted, cur.DomainsEvicted},
		"exporters":         {prev.SessionsEvicted, cur.SessionsEvicted},
	} {
		if n[1] > n[0] {
			d.Evicted[k] = n[1] - n[0]
		}
	}
	for k, v := range cur.Malformed {
		if n := v - prev.Malformed[k]; n > 0 {
			d.Malformed[k] = n
		}
	}
	return d
}

// statsEmpty says whether d counts nothing.
func statsEmpty(d store.Stats) bool {
	return d.Messages == 0 && d.Records == 0 && d.Lost == 0 && d.SocketDrops == 0 && d.Dropped == 0 &&
		len(d.Malformed) == 0 && len(d.Evicted) == 0 && len(d.DecodeErrors) == 0
}

type metrics struct{ s *Server }

var (
	cMessages    = prometheus.NewDesc("mira_collector_messages_total", "IPFIX messages received.", nil, nil)
	cRecords     = prometheus.NewDesc("mira_collector_records_total", "Flow records decoded.", nil, nil)
	cLost        = prometheus.NewDesc("mira_collector_lost_records_total", "Records lost in transit, from IPFIX sequence numbers.", nil, nil)
	cMalformed   = prometheus.NewDesc("mira_collector_malformed_total", "Malformed IPFIX input, by reason.", []string{"reason"}, nil)
	cTemplates   = prometheus.NewDesc("mira_collector_templates", "Templates currently known.", nil, nil)
	cEvicted     = prometheus.NewDesc("mira_collector_evicted_total", "Collector state dropped to stay within its limits, by kind (templates, templates-expired, domains, exporters, held-names: names of origins that never sent a record, sequence-positions: exporters' sequence positions forgotten beyond 4096).", []string{"kind"}, nil)
	cSessions    = prometheus.NewDesc("mira_collector_sessions", "Live exporter sessions.", nil, nil)
	cStored      = prometheus.NewDesc("mira_collector_stored_records_total", "Records committed to the store.", nil, nil)
	cStoreErrs   = prometheus.NewDesc("mira_collector_store_errors_total", "Failed store commits.", nil, nil)
	cSockDrops   = prometheus.NewDesc("mira_collector_socket_drops_total", "UDP datagrams the kernel dropped: socket receive buffer full.", nil, nil)
	cBusy        = prometheus.NewDesc("mira_collector_store_busy_total", "Commits deferred because another process held the store open.", nil, nil)
	cDropped     = prometheus.NewDesc("mira_collector_dropped_records_total", "Records dropped because the store stayed unavailable too long.", nil, nil)
	cPending     = prometheus.NewDesc("mira_collector_pending_records", "Records received and not yet committed.", nil, nil)
	cLedgerStale = prometheus.NewDesc("mira_collector_ledgers_stale_total", "Ledger options older than one already taken (resent after a reconnect), ignored.", nil, nil)
	cLoss        = prometheus.NewDesc("mira_collector_loss_total", "The loss ledger: packets or records lost, by stage (flow.LossStages); the probes' stages as their ledger options said since this collector started, the collector's own counted here.", []string{"stage"}, nil)
	cSeqRestarts = prometheus.NewDesc("mira_collector_sequence_restarts_total", "Transport sessions whose first message in a domain was behind the sequence position earlier sessions left (a restarted exporter or a spool's replay): re-seeded, not counted lost.", nil, nil)
	cShared      = prometheus.NewDesc("mira_collector_shared_domains_total", "Exporter sessions that sent under an observation domain another session from the same address was sending under at the same time (TCP, TLS, or UDP from two ports: two exporters with one domain, whose records are taken as one probe's); each is logged.", nil, nil)
	cSkewed      = prometheus.NewDesc("mira_collector_clock_skewed_total", "Exporter sessions whose clock, by their messages' export times, was more than 5 s off the collector's (ahead, or behind in every message of a 10 s period); each is logged.", nil, nil)
	cDups        = prometheus.NewDesc("mira_collector_duplicate_records_total", "Records a spooling exporter resent that were already stored (dropped: exactly-once).", nil, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cMessages, cRecords, cLost, cMalformed, cEvicted, cTemplates, cSessions, cStored, cStoreErrs, cSockDrops, cBusy, cDropped, cPending, cDups, cLoss, cLedgerStale, cSeqRestarts, cShared, cSkewed} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	if m.s.coll == nil {
		return
	}
	st := m.s.coll.Stats()
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	c(cMessages, st.Messages)
	c(cRecords, st.Records)
	c(cLost, st.LostRecords)
	c(cSeqRestarts, st.SeqRestarts)
	c(cShared, st.SharedDomains)
	c(cSkewed, st.ClockSkewed)
	c(cSockDrops, st.SocketDrops)
	for r, n := range st.Malformed {
		c(cMalformed, n, r)
	}
	c(cEvicted, st.TemplatesEvicted, "templates")
	c(cEvicted, st.TemplatesExpired, "templates-expired")
	c(cEvicted, st.DomainsEvicted, "domains")
	c(cEvicted, st.SessionsEvicted, "exporters")
	m.s.mu.Lock()
	held, posEvicted := m.s.heldDropped, m.s.posEvicted
	m.s.mu.Unlock()
	c(cEvicted, held, "held-names")
	c(cEvicted, posEvicted, "sequence-positions")
	ch <- prometheus.MustNewConstMetric(cTemplates, prometheus.GaugeValue, float64(st.Templates))
	ch <- prometheus.MustNewConstMetric(cSessions, prometheus.GaugeValue, float64(st.Sessions))
	m.s.mu.Lock()
	stored, werrs := m.s.stored, m.s.werrs
	busy, dropped, pending, dups := m.s.busy, m.s.dropped, m.s.pending.n+m.s.inflight, m.s.duplicates
	loss := m.s.ledgerSeen.Loss()
	backwards, full, stale := m.s.ledgerSeen.Backwards, m.s.ledgerSeen.Full, m.s.ledgerSeen.Stale
	m.s.mu.Unlock()
	c(cMalformed, backwards, "ledger-backwards")
	c(cMalformed, full, "ledger-overflow")
	c(cLedgerStale, stale)
	loss.Malformed += backwards + full
	loss.Socket += st.SocketDrops
	loss.Sequence += st.LostRecords
	for _, n := range st.Malformed {
		loss.Malformed += n
	}
	loss.Store += dropped
	for i, v := range loss.Counts() {
		c(cLoss, v, flow.LossStages[i])
	}
	c(cDups, dups)
	c(cBusy, busy)
	c(cDropped, dropped)
	ch <- prometheus.MustNewConstMetric(cPending, prometheus.GaugeValue, float64(pending))
	c(cStored, stored)
	c(cStoreErrs, werrs)
}
