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
	mReloads   = prometheus.NewDesc("mira_probe_reloads_total", "Configuration reloads (SIGHUP), by result: applied or refused.", []string{"result"}, nil)
	mExpErr    = prometheus.NewDesc("mira_probe_export_failures_total", "Export calls that failed, by target.", []string{"target"}, nil)
	mSrcPkts   = prometheus.NewDesc("mira_probe_source_packets_total", "Packets delivered by a capture source.", []string{"source", "index"}, nil)
	mSrcDrops  = prometheus.NewDesc("mira_probe_source_drops_total", "Packets lost by the capture mechanism (kernel ring) before MIRA saw them.", []string{"source", "index"}, nil)
	mSrcErrs   = prometheus.NewDesc("mira_probe_source_errors_total", "Capture records that could not be read.", []string{"source", "index"}, nil)
	mExpUnack  = prometheus.NewDesc("mira_probe_export_unacknowledged_records_total", "Flow records sent over TCP or TLS without a spool on connections that ended without the collector confirming it stored them (may be lost; the collector counts what it lost as sequence loss).", []string{"target"}, nil)
	mPaceWait  = prometheus.NewDesc("mira_probe_export_pace_wait_seconds_total", "Time UDP pacing held an export target's sends (its collector's receive queue full, or its rate reached).", []string{"target"}, nil)
	mUnpaced   = prometheus.NewDesc("mira_probe_export_unpaced_messages_total", "UDP messages sent without the wait their pace asked for (a live probe waits at most 250 ms a second).", []string{"target"}, nil)
	mExpDrop   = prometheus.NewDesc("mira_probe_export_dropped_records_total", "Flow records an exporter lost (failed sends, oversize).", []string{"target"}, nil)
	mOutScope  = prometheus.NewDesc("mira_probe_out_of_scope_packets_total", "Packets not metered: outside the capture scope (aggregates, direction).", nil, nil)
	mUnsampled = prometheus.NewDesc("mira_probe_unsampled_packets_total", "Packets not metered: not selected by the configured sampling.", nil, nil)
	mRegOut    = prometheus.NewDesc("mira_probe_regulated_out_packets_total", "Packets not metered: their connection was sampled out by self-regulation.", nil, nil)
	mRegState  = prometheus.NewDesc("mira_probe_regulation_state", "Self-regulation state, numbered as MIRA-PROBE-MIB miraRegulationState: 1 normal, 2 sampling, 3 shedding (encrypted payload not scanned).", nil, nil)
	mRegIv     = prometheus.NewDesc("mira_probe_regulation_sampling_interval", "Connections metered: 1 in this many, by self-regulation (1: all).", nil, nil)
	mRegChg    = prometheus.NewDesc("mira_probe_regulation_changes_total", "Changes of the regulation state or rate.", nil, nil)
	mOverload  = prometheus.NewDesc("mira_probe_overload_events_total", "Times self-regulation started sampling.", nil, nil)
	mAppFound  = prometheus.NewDesc("mira_probe_app_metadata_found_total", "Flow directions whose HTTP host, TLS/QUIC server name or DNS question name was found.", nil, nil)
	mFTPData   = prometheus.NewDesc("mira_probe_ftp_data_ports_total", "FTP data ports found announced (PORT, EPRT, 227, 229) on control connections.", nil, nil)
	mShed      = prometheus.NewDesc("mira_probe_scan_shed_directions_total", "Flow directions no longer scanned because self-regulation shed them (encrypted).", nil, nil)
	mBypass    = prometheus.NewDesc("mira_probe_scan_bypassed_directions_total", "Flow directions no longer scanned because TLS application data followed a handshake the symptom database saw.", nil, nil)
	mQDepth    = prometheus.NewDesc("mira_probe_queue_depth", "Items waiting in a capture queue (worker queue batches or ring blocks).", []string{"queue"}, nil)
	mQCap      = prometheus.NewDesc("mira_probe_queue_capacity", "Capacity of a capture queue.", []string{"queue"}, nil)
	mSpooled   = prometheus.NewDesc("mira_probe_spool_records", "Flow records held in an export target's spool (delivery not yet known).", []string{"target"}, nil)
	mLoss      = prometheus.NewDesc("mira_probe_loss_total", "The probe's loss ledger: packets or records lost, by stage (flow.LossStages).", []string{"stage"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPackets, mOctets, mDecoded, mNonIP, mDecodeErr, mQDrops, mActive, mCreated, mExpired, mRecords, mReloads, mExpErr, mSrcPkts, mSrcDrops, mSrcErrs,
		mExpDrop, mExpUnack, mPaceWait, mUnpaced, mOutScope, mUnsampled, mRegOut, mRegState, mRegIv, mRegChg, mOverload, mShed, mAppFound, mFTPData, mBypass, mQDepth, mQCap, mSpooled, mLoss} {
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
	applied, refused := m.p.Reloads()
	c(mReloads, applied, "applied")
	c(mReloads, refused, "refused")
	for t, n := range fails {
		c(mExpErr, n, t)
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for t, n := range m.p.ExportDropped() {
		c(mExpDrop, n, t)
	}
	if m.p.sel.Load() != nil {
		sst := m.p.selStats()
		c(mOutScope, sst.OutOfScope)
		c(mUnsampled, sst.Unsampled)
	}
	r := s.Regulation
	c(mRegOut, r.RegulatedOut)
	g(mRegState, float64(mibRegulationState(r.State)))
	g(mRegIv, float64(max(r.Interval, 1)))
	c(mRegChg, r.Changes)
	c(mOverload, r.OverloadEvents)
	c(mShed, s.Meter.ScanShed)
	c(mAppFound, s.Meter.AppFound)
	c(mFTPData, s.Meter.FTPData)
	c(mBypass, s.Meter.ScanBypassed)
	for _, q := range s.Queues {
		g(mQDepth, float64(q.Depth), q.Name)
		g(mQCap, float64(q.Capacity), q.Name)
	}
	for i, src := range s.Sources {
		idx := strconv.Itoa(i)
		c(mSrcPkts, src.Stats.Packets, src.Name, idx)
		c(mSrcDrops, src.Stats.Drops, src.Name, idx)
		c(mSrcErrs, src.Stats.Errors, src.Name, idx)
	}
	m.p.mu.Lock()
	spooled, unacked, unpaced := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	paceWait := map[string]float64{}
	for _, t := range m.p.all {
		if x, ok := t.e.(exportStatser); ok {
			st := x.Stats()
			spooled[t.name] += st.Spooled
			unacked[t.name] += st.Unacknowledged
			unpaced[t.name] += st.Unpaced
			paceWait[t.name] += st.PaceWait.Seconds()
		}
	}
	m.p.mu.Unlock()
	for name, n := range unpaced {
		c(mUnpaced, n, name)
	}
	for name, v := range paceWait {
		ch <- prometheus.MustNewConstMetric(mPaceWait, prometheus.CounterValue, v, name)
	}
	for name, n := range unacked {
		c(mExpUnack, n, name)
	}
	for name, n := range spooled {
		ch <- prometheus.MustNewConstMetric(mSpooled, prometheus.GaugeValue, float64(n), name)
	}
	loss := m.p.Loss()
	for i, v := range loss.Counts() {
		c(mLoss, v, flow.LossStages[i])
	}
}
