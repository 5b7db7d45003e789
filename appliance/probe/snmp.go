package probe

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/mira-project/mira/agent"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/pipeline"
	"github.com/mira-project/mira/exporter"
)

// Version is the probe software version shown in SNMP and logs.
var Version = "mira-0.1"

// serveSNMP runs the SNMP agent on addr until ctx ends.
func (p *Probe) serveSNMP(ctx context.Context, addr string) (func(), error) {
	// The snmp: section was decoded and checked with the rest of the
	// configuration (config.ParseProbe), errors located in its file.
	a, err := agent.New(&p.cfg.SNMP, agent.ProviderFunc(p.snapshot), p.log)
	if err != nil {
		return nil, fmt.Errorf("probe: snmp: %w", err)
	}
	// Bound here, so that an address the agent cannot have fails the
	// probe's start, as a bad metrics address does: bound in the
	// goroutine, the probe logged "snmp agent listening", then "snmp
	// agent stopped", and ran on without its agent (exit 0).
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe: snmp: %w", err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// ServeConn logs "snmp agent listening" with the engine id.
		if err := a.ServeConn(actx, pc.(*net.UDPConn)); err != nil && actx.Err() == nil {
			p.log.Error("snmp agent stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// snapshot fills the agent's view from the pipeline's published counters.
func (p *Probe) snapshot(s *agent.Snapshot) {
	s.Name = p.name()
	s.Version = Version
	s.ObservationDomain = p.cfg.Probe.ObservationDomain
	s.StartTime = p.start
	s.ReloadsApplied, s.ReloadsRefused, s.LastReload = p.reloadStats()
	pipe := p.pipe.Load()
	if pipe == nil {
		return
	}
	st := pipe.Stats()
	s.Interfaces = s.Interfaces[:0]
	for _, src := range st.Sources {
		// The sockets of one interface's fanout group are one row.
		if n := len(s.Interfaces); n > 0 && s.Interfaces[n-1].Name == src.Name && s.Interfaces[n-1].IfIndex == src.IfIndex {
			ci := &s.Interfaces[n-1]
			ci.Packets += src.Stats.Packets
			ci.Octets += src.Stats.Octets
			ci.Drops += src.Stats.Drops
			continue
		}
		ci := agent.CaptureInterface{Name: src.Name, IfIndex: src.IfIndex, LinkType: uint16(src.Link),
			Packets: src.Stats.Packets, Octets: src.Stats.Octets, Drops: src.Stats.Drops}
		s.Interfaces = append(s.Interfaces, ci)
	}
	if len(s.Interfaces) > 0 {
		// Decode errors are counted per decoder, not per source: shown on
		// the first interface.
		for r, n := range st.DecodeErrors {
			s.Interfaces[0].DecodeErrors = append(s.Interfaces[0].DecodeErrors, agent.ReasonCount{Reason: r, Count: n})
		}
	}
	s.Pipeline = p.pipelineState(&st)
	m := st.Meter
	s.Flows = agent.FlowTable{Active: uint32(m.Active), Capacity: flowCapacity(p.cfg.Meter.MaxFlows, p.cfg.Pipeline.Workers),
		Created: m.Created, ExpiredIdle: m.Expired[1], ExpiredActive: m.Expired[2], ExpiredEnd: m.Expired[3],
		ExpiredForced: m.Expired[4], Evicted: m.Expired[5]}
	s.Symptoms = s.Symptoms[:0]
	if db := p.db.Load(); db != nil {
		for _, sy := range db.Symptoms() {
			row := agent.Symptom{ID: uint32(sy.ID), Name: sy.Name, BytesScanned: m.ScanBytes}
			if int(sy.ID) < len(m.SymptomOccurrences) {
				row.Occurrences = m.SymptomOccurrences[sy.ID]
				row.Flows = m.SymptomFlows[sy.ID]
			}
			s.Symptoms = append(s.Symptoms, row)
		}
	}
	s.Exporters = s.Exporters[:0]
	p.mu.Lock()
	for _, t := range p.all {
		// Connected unless its last export failed (then it is trying
		// to reach the collector again).
		state := agent.ExporterConnected
		if t.lastFailed {
			state = agent.ExporterConnecting
		}
		row := agent.Exporter{Address: t.name, Transport: transportOf(t.name), State: state}
		if x, ok := t.e.(*exporter.Exporter); ok {
			es := x.Stats()
			row.Records, row.Messages, row.Templates, row.LastError, row.Dropped = es.Records, es.Messages, es.Templates, es.LastError, es.Dropped
			row.Unacknowledged, row.SpoolDropped = es.Unacknowledged, es.SpoolDropped
			if es.Spooling {
				// The collector is unreachable: records wait on disk.
				row.State, row.SpoolDepth = agent.ExporterSpooling, uint32(min(es.Spooled, 1<<32-1))
			}
		}
		s.Exporters = append(s.Exporters, row)
	}
	p.mu.Unlock()
}

// name is the configured probe name, or the host name.
func (p *Probe) name() string {
	if p.cfg.Probe.Name != "" {
		return p.cfg.Probe.Name
	}
	h, _ := os.Hostname()
	return h
}

// mibRegulationState numbers a regulation state as miraRegulationState
// does (normal 1, sampling 2, shedding 3); /metrics uses the same numbers.
func mibRegulationState(s int) int {
	switch s {
	case pipeline.RegShedding:
		return agent.RegulationShedding
	case pipeline.RegSampling:
		return agent.RegulationSampling
	}
	return agent.RegulationNormal
}

// pipelineState is the MIB's view of the pipeline: regulation, the
// effective sampling rate, queues and what the selection dropped.
func (p *Probe) pipelineState(st *pipeline.Stats) agent.Pipeline {
	r := st.Regulation
	out := agent.Pipeline{RegulationState: mibRegulationState(r.State), OverloadEvents: r.OverloadEvents,
		RegulatedOut: r.RegulatedOut, RegulationChanges: r.Changes}
	// 1 in N of what the capture saw is metered: configured sampling
	// times regulation.
	out.SamplingRate = max(r.Interval, 1)
	if sel := p.sel.Load(); sel != nil {
		if smp := sel.ExportSampling(); smp != nil {
			out.SamplingRate *= max(smp.Interval, 1)
		}
		sst := p.selStats()
		out.SelOutOfScope, out.SelUnsampled = sst.OutOfScope, sst.Unsampled
	}
	for i, q := range st.Queues {
		row := agent.Queue{Name: q.Name, Depth: uint32(q.Depth), Capacity: uint32(q.Capacity)}
		if i == 0 {
			// Drops are counted for the worker queues together.
			row.Drops = st.QueueDrops
		}
		out.Queues = append(out.Queues, row)
	}
	if len(out.Queues) == 0 {
		out.Queues = []agent.Queue{{Name: "workers", Drops: st.QueueDrops}}
	}
	return out
}

func transportOf(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return agent.TransportUDP
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp":
		return agent.TransportTCP
	case "tls":
		return agent.TransportTLS
	case "file":
		return agent.TransportFile
	}
	return agent.TransportUDP
}

// flowCapacity is the flows the tables hold in all (miraFlowsCapacity):
// max_flows per worker, the meter's default when 0 (the agent said 0
// beside active flows), saturated at the Gauge32 maximum (it wrapped).
func flowCapacity(maxFlows, workers int) uint32 {
	if maxFlows <= 0 {
		maxFlows = meter.DefaultMaxFlows
	}
	return uint32(min(uint64(maxFlows)*uint64(max(1, workers)), math.MaxUint32))
}
