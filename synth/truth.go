package synth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mira-project/mira/flow"
)

// Truth is the ground truth of a generated trace.
type Truth struct {
	Flows []TruthFlow `json:"flows"`
	// Packets and Octets total the trace (Octets: IP octets on the link).
	Packets uint64 `json:"packets"`
	Octets  uint64 `json:"octets"`
	// Payloads counts the packets by transport payload length (a later
	// IPv4 fragment: its data; the first: its data less the UDP header).
	Payloads PayloadSizes `json:"payloads"`
}

// PayloadSizes counts packets by transport payload length, in the classes
// the benchmark traces are described by.
type PayloadSizes struct {
	Empty  uint64 `json:"empty"`   // 0 bytes
	Small  uint64 `json:"le_100"`  // 1-100 bytes
	Medium uint64 `json:"mid"`     // 101-1399 bytes
	Large  uint64 `json:"ge_1400"` // 1400 bytes or more
}

// Add counts one packet with n payload bytes.
func (p *PayloadSizes) Add(n int) {
	switch {
	case n == 0:
		p.Empty++
	case n <= 100:
		p.Small++
	case n < 1400:
		p.Medium++
	default:
		p.Large++
	}
}

// String gives the classes as shares of all packets counted.
func (p PayloadSizes) String() string {
	total := p.Empty + p.Small + p.Medium + p.Large
	if total == 0 {
		return "no packets"
	}
	pc := func(n uint64) float64 { return 100 * float64(n) / float64(total) }
	return fmt.Sprintf("%.1f %% empty, %.1f %% 1-100 B, %.1f %% 101-1399 B, %.1f %% >= 1400 B",
		pc(p.Empty), pc(p.Small), pc(p.Medium), pc(p.Large))
}

// TruthFlow is one unidirectional flow: its flow.Key as the meter builds
// it (innermost addresses and ports, protocol and VLAN; for ICMP, Sport
// is 0 and Dport type<<8|code) and what the generator planted in it.
type TruthFlow struct {
	flow.Key
	// Packets and Octets: Octets are IP octets as carried on the link
	// (outermost IP header's total length, summed; no Ethernet padding).
	Packets uint64 `json:"packets"`
	Octets  uint64 `json:"octets"`
	// InnerOctets sums the innermost IP datagrams' lengths (equal to
	// Octets unless tunnelled).
	InnerOctets uint64 `json:"inner_octets"`
	// TCPFlags is the union of the flow's TCP flags.
	TCPFlags uint8     `json:"tcp_flags,omitempty"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	// App names the application, Category the ground-truth usage
	// category of the session (both directions share it), in the names
	// of collector/classify's default rules: Mail, Web, FTP, P2P, DNS,
	// Secure, Leisure, Games, Chat, Network, Unclassified (random payload).
	App      string `json:"app"`
	Category string `json:"category"`
	// Symptoms counts the planted markers (see Markers) by symptom.
	Symptoms map[string]int `json:"symptoms,omitempty"`
	// Straddles counts planted markers split across two TCP segments.
	Straddles int `json:"straddles,omitempty"`
	// Tunnel is "", "6in4", "ipip", "gre" or "vxlan" (flow.TunnelType
	// names); TunnelSrc and TunnelDst are the outer addresses.
	Tunnel    string     `json:"tunnel,omitempty"`
	TunnelSrc netip.Addr `json:"tunnel_src,omitzero"`
	TunnelDst netip.Addr `json:"tunnel_dst,omitzero"`
	// Initiator is set on the direction that opened the session.
	Initiator bool `json:"initiator"`
	// Session numbers the session; both directions share it.
	Session int `json:"session"`
	// End is "fin" or "rst" for TCP flows that saw that teardown.
	End string `json:"end,omitempty"`
	// Fragments counts IP fragments among the packets.
	Fragments int `json:"fragments,omitempty"`
}

// ByKey indexes the flows by key; keys are unique within a trace.
func (t *Truth) ByKey() map[flow.Key]*TruthFlow {
	m := make(map[flow.Key]*TruthFlow, len(t.Flows))
	for i := range t.Flows {
		m[t.Flows[i].Key] = &t.Flows[i]
	}
	return m
}

// WriteJSON writes the truth as indented JSON.
func (t *Truth) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(t); err != nil {
		return fmt.Errorf("synth: write truth: %w", err)
	}
	return nil
}
