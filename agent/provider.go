package agent

import "time"

// Provider supplies the statistics the agent serves.
type Provider interface {
	// Snapshot fills s with the current values. s is reused between
	// calls: implementations overwrite every field and reslice (s.X =
	// s.X[:0]) rather than allocate where they can. It is called from the
	// agent's goroutine, never concurrently with itself.
	Snapshot(s *Snapshot)
}

// ProviderFunc adapts a function to Provider.
type ProviderFunc func(s *Snapshot)

// Snapshot implements Provider.
func (f ProviderFunc) Snapshot(s *Snapshot) { f(s) }

// Snapshot is the probe's statistics at one moment.
type Snapshot struct {
	// Identity.
	Name              string
	Version           string
	ObservationDomain uint32
	StartTime         time.Time
	// Configuration reloads since the start: applied, refused, and when
	// the last one was applied (zero: none).
	ReloadsApplied, ReloadsRefused uint64
	LastReload                     time.Time

	Interfaces []CaptureInterface
	Pipeline   Pipeline
	Flows      FlowTable
	Symptoms   []Symptom
	Exporters  []Exporter
}

// CaptureInterface is one capture interface or file. Its row index in
// miraCaptureTable is its position in Snapshot.Interfaces plus one, so
// keep the order stable.
type CaptureInterface struct {
	Name string
	// IfIndex is the kernel interface index (0 for a capture file). The
	// agent serves IF-MIB rows for interfaces with IfIndex > 0.
	IfIndex  int
	LinkType uint16 // pcap LINKTYPE_ value (drivers.LinkType)
	Packets  uint64
	Octets   uint64
	Drops    uint64 // lost by the kernel ring or NIC
	// DecodeErrors are counted by reason; the position plus one is the
	// row index in miraDecodeErrorTable, so keep the order stable.
	DecodeErrors []ReasonCount
}

// ReasonCount is a count of packets for one reason.
type ReasonCount struct {
	Reason string
	Count  uint64
}

// Regulation states (MIRA-PROBE-MIB miraRegulationState).
const (
	RegulationNormal   = 1
	RegulationSampling = 2
	RegulationShedding = 3
)

// Pipeline is the state of the in-box pipeline.
type Pipeline struct {
	RegulationState int    // RegulationNormal, RegulationShedding or RegulationSampling
	SamplingRate    uint32 // 1 in N; 1 (or 0) means every flow
	OverloadEvents  uint64
	Queues          []Queue
	// Packets not metered: outside the capture scope, not selected by
	// the configured sampling, sampled out by self-regulation.
	SelOutOfScope, SelUnsampled, RegulatedOut uint64
	RegulationChanges                         uint64
}

// Queue is one bounded queue between pipeline stages.
type Queue struct {
	Name     string
	Depth    uint32
	Capacity uint32
	Drops    uint64
}

// FlowTable holds the flow meter's counters.
type FlowTable struct {
	Active, Capacity uint32
	Created          uint64
	ExpiredIdle      uint64
	ExpiredActive    uint64
	ExpiredEnd       uint64
	ExpiredForced    uint64
	Evicted          uint64 // expired early: table full (flowEndReason 5)
}

// Symptom is one payload symptom; ID is its miraSymptomTable index (> 0).
type Symptom struct {
	ID           uint32
	Name         string
	Occurrences  uint64
	Flows        uint64
	BytesScanned uint64
}

// Exporter transports (miraExpTransport).
const (
	TransportUDP  = 1
	TransportTCP  = 2
	TransportTLS  = 3
	TransportFile = 4
)

// Exporter states (miraExpState).
const (
	ExporterConnected  = 1
	ExporterConnecting = 2
	ExporterSpooling   = 3
)

// Exporter is one IPFIX exporter; its row index is its position plus one.
type Exporter struct {
	Address    string // URL as configured
	Transport  int    // TransportUDP, ...
	State      int    // ExporterConnected, ...
	Records    uint64
	Messages   uint64
	Templates  uint64
	SpoolDepth uint32
	LastError  string
	Dropped    uint64 // flow records lost by failed sends
	// Unacknowledged counts flow records sent on TCP/TLS connections
	// (without a spool) that ended without the collector confirming it
	// stored them (exporter.Stats.Unacknowledged).
	Unacknowledged uint64
	// SpoolDropped counts flow records dropped from the exporter's full
	// spool (exporter.Stats.SpoolDropped).
	SpoolDropped uint64
}
