package probe

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mira-project/mira/flow"
)

// metrics exposes the pipeline's counters on scrape: it reads a snapshot,
// so the packet path pays nothing for it.
type metrics struct{ p *Probe }

var (
	mPackets   = prometheus.NewDesc("mira_probe_packets_total", "Packets read from capture sources.", nil, nil)
	mOctets    = prometheus.NewDesc("mira_probe_octets_total", "Wire octets read from capture sources.", nil, nil)
	mDecoded   = prometheus.NewDesc("mira_probe_decoded_packets_total", "Packets decoded to an IP flow key.", nil, nil)
	mNonIP     = prometheus.NewDesc("mira_probe_non_ip_packets_total", "Valid frames that carry no IP (ARP, LLDP...).", nil, nil)
	mDecodeErr = prometheus.NewDesc("mira_probe_decode_errors_total", "Packets that could not be decoded, by reason.", []string{"reason"}, nil)
	mQDrops    = prometheus.NewDesc("mira_probe_queue_drops_total", "Live packets dropped because a worker queue was full.", nil, nil)
	mActive    = prometheus.NewDesc("mira_probe_flows_active", "Flows in the flow tables.", nil, nil)
	mCreated   = prometheus.NewDesc("mira_probe_flows_created_total", "Flows created.", nil, nil)
	mExpired   = prometheus.NewDesc("mira_probe_flows_expired_total", "Flows ended, by flowEndReason.", []string{"reason"}, nil)
	mRecords   = prometheus.NewDesc("mira_probe_records_exported_total", "Flow records handed to the exporters.", nil, nil)
	mExpErr    = prometheus.NewDesc("mira_probe_export_failures_total", "Export calls that failed, by target.", []string{"target"}, nil)
	mSrcPkts   = prometheus.NewDesc("mira_probe_source_packets_total", "Packets delivered by a capture source.", []string{"source", "index"}, nil)
	mSrcDrops  = prometheus.NewDesc("mira_probe_source_drops_total", "Packets lost by the capture mechanism (kernel ring) before MIRA saw them.", []string{"source", "index"}, nil)
	mSrcErrs   = prometheus.NewDesc("mira_probe_source_errors_total", "Capture records that could not be read.", []string{"source", "index"}, nil)
	mLoss      = prometheus.NewDesc("mira_probe_loss_total", "The probe's loss ledger: packets or records lost, by stage (flow.LossStages).", []string{"stage"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPackets, mOctets, mDecoded, mNonIP, mDecodeErr, mQDrops, mActive, mCreated, mExpired, mRecords, mExpErr, mSrcPkts, mSrcDrops, mSrcErrs, mLoss} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	pipe := m.p.pipe.Load()
	if pipe == nil {
		return
	}
	s := pipe.Stats()
	c := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	c(mPackets, s.Packets)
	c(mOctets, s.Octets)
	c(mDecoded, s.Decoded)
	c(mNonIP, s.NonIP)
	for r, n := range s.DecodeErrors {
		c(mDecodeErr, n, r)
	}
	c(mQDrops, s.QueueDrops)
	ch <- prometheus.MustNewConstMetric(mActive, prometheus.GaugeValue, float64(s.Meter.Active))
	c(mCreated, s.Meter.Created)
	for r := flow.EndIdle; r <= flow.EndResource; r++ {
		c(mExpired, s.Meter.Expired[r], r.String())
	}
	recs, fails := m.p.ExportStats()
	c(mRecords, recs)
	for t, n := range fails {
		c(mExpErr, n, t)
	}
	for i, src := range s.Sources {
		idx := strconv.Itoa(i)
		c(mSrcPkts, src.Stats.Packets, src.Name, idx)
		c(mSrcDrops, src.Stats.Drops, src.Name, idx)
		c(mSrcErrs, src.Stats.Errors, src.Name, idx)
	}
	loss := m.p.Loss()
	for i, v := range loss.Counts() {
		c(mLoss, v, flow.LossStages[i])
	}
}
