package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/collector"
	"github.com/mira-project/mira/collector/store"
)

// statsDelta is what the collector counted between two snapshots, in the
// store's terms (the store accumulates deltas across restarts).
func statsDelta(prev, cur collector.Stats) store.Stats {
	d := store.Stats{
		Messages:  cur.Messages - prev.Messages,
		Records:   cur.Records - prev.Records,
		Lost:      cur.LostRecords - prev.LostRecords,
		Malformed: map[string]uint64{},
	}
	for k, v := range cur.Malformed {
		if n := v - prev.Malformed[k]; n > 0 {
			d.Malformed[k] = n
		}
	}
	return d
}

type metrics struct{ s *Server }

var (
	cMessages  = prometheus.NewDesc("mira_collector_messages_total", "IPFIX messages received.", nil, nil)
	cRecords   = prometheus.NewDesc("mira_collector_records_total", "Flow records decoded.", nil, nil)
	cLost      = prometheus.NewDesc("mira_collector_lost_records_total", "Records lost in transit, from IPFIX sequence numbers.", nil, nil)
	cMalformed = prometheus.NewDesc("mira_collector_malformed_total", "Malformed IPFIX input, by reason.", []string{"reason"}, nil)
	cTemplates = prometheus.NewDesc("mira_collector_templates", "Templates currently known.", nil, nil)
	cSessions  = prometheus.NewDesc("mira_collector_sessions", "Live exporter sessions.", nil, nil)
	cStored    = prometheus.NewDesc("mira_collector_stored_records_total", "Records committed to the store.", nil, nil)
	cStoreErrs = prometheus.NewDesc("mira_collector_store_errors_total", "Failed store commits.", nil, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cMessages, cRecords, cLost, cMalformed, cTemplates, cSessions, cStored, cStoreErrs} {
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
	for r, n := range st.Malformed {
		c(cMalformed, n, r)
	}
	ch <- prometheus.MustNewConstMetric(cTemplates, prometheus.GaugeValue, float64(st.Templates))
	ch <- prometheus.MustNewConstMetric(cSessions, prometheus.GaugeValue, float64(st.Sessions))
	m.s.mu.Lock()
	stored, werrs := m.s.stored, m.s.werrs
	m.s.mu.Unlock()
	c(cStored, stored)
	c(cStoreErrs, werrs)
}
