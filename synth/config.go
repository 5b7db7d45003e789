package synth

import (
	"fmt"
	"time"
)

// Share is the relative weight of one application in the session mix.
type Share struct {
	App    string
	Weight float64
}

// Applications the mix may name. "ftp" makes a control and a data
// connection; "random" is the control group (TCP or UDP random payload).
var apps = []string{
	"smtp", "http", "mp3-over-http", "video-over-http", "exe-over-http", "ftp", "dns",
	"tls", "ssh", "bittorrent", "bittorrent-dht", "edonkey", "gnutella", "game-udp", "irc",
	"icmp-echo", "random",
}

// Config describes a synthetic trace. Zero Flows, Start, Duration,
// LongDuration, Clients, Servers and BodyScale and nil Mix, VLANs and
// Tunnels take Default's values; Seed 0 is a seed like any other and zero
// shares mean none.
type Config struct {
	Seed int64
	// Flows is the number of sessions (connections or conversations),
	// each giving two unidirectional flows; FTP sessions add a data
	// connection.
	Flows int
	// Start is the capture start; sessions start within Duration.
	// Sessions may run past Start+Duration.
	Start    time.Time
	Duration time.Duration
	// Mix weights the applications; RandomShare of all sessions carry
	// random payload instead (the no-false-symptom control group).
	Mix         []Share
	RandomShare float64
	// IPv6Share of sessions use IPv6; VLANShare are 802.1Q tagged with
	// one of VLANs; TunnelShare are tunnelled with one of Tunnels
	// ("6in4", "ipip", "gre", "vxlan").
	IPv6Share   float64
	VLANShare   float64
	VLANs       []uint16
	TunnelShare float64
	Tunnels     []string
	// FragmentShare of DNS sessions (IPv4, untunnelled) fetch a large TXT
	// answer that travels as IPv4 fragments.
	FragmentShare float64
	// StraddleShare of sessions cut their TCP writes so that markers
	// straddle segment boundaries.
	StraddleShare float64
	// LongFlows sessions (at most Flows) start in the first twentieth of
	// Duration and last LongDuration (to exceed a meter's active
	// timeout): SSH, IRC and game sessions in turn.
	LongFlows    int
	LongDuration time.Duration
	// Clients and Servers size the address pools.
	Clients, Servers int
	// BodyScale multiplies the sizes of bulk transfers (downloads,
	// mails, P2P pieces).
	BodyScale float64
	// Progress, when set, is called every 65536 packets written and at
	// the end with the sessions started so far, the number of sessions
	// and the packets written (it does not change the trace).
	Progress func(started, sessions int, packets uint64)
}

var defaultMix = []Share{
	{"http", 16}, {"dns", 16}, {"tls", 12}, {"smtp", 6}, {"mp3-over-http", 3},
	{"video-over-http", 2}, {"exe-over-http", 2}, {"ftp", 4}, {"ssh", 3}, {"bittorrent", 4},
	{"bittorrent-dht", 4}, {"edonkey", 3}, {"gnutella", 3}, {"game-udp", 2}, {"irc", 3},
	{"icmp-echo", 3},
}

// Default is the built-in sample capture: about 160 sessions of every
// application over 90 seconds, a few thousand packets.
func Default() Config {
	return Config{
		Seed:          1,
		Flows:         160,
		Start:         time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
		Duration:      90 * time.Second,
		Mix:           defaultMix,
		RandomShare:   0.08,
		IPv6Share:     0.14,
		VLANShare:     0.1,
		VLANs:         []uint16{10, 20, 30},
		TunnelShare:   0.06,
		Tunnels:       []string{"6in4", "ipip", "gre", "vxlan"},
		FragmentShare: 0.2,
		StraddleShare: 0.2,
		LongFlows:     3,
		LongDuration:  75 * time.Second,
		Clients:       40,
		Servers:       60,
		BodyScale:     0.005,
	}
}

// Large is the benchmark trace, shaped like the reference trace of
// performance-references.md: 200,000 sessions (about 400,000 flows),
// about 3.7 M packets and 1.68 GB of IP octets over 71 s, 13% of packets
// IPv6, 0.9% tunnelled in 6in4 or IPIP; about 38% of packets carry no
// payload, 22% 40-100 bytes and 22% 1400 bytes or more.
func Large() Config {
	c := Default()
	c.Seed = 7
	c.Flows = 200000
	c.Duration = 71 * time.Second
	c.Mix = []Share{
		{"http", 7}, {"dns", 40}, {"tls", 6}, {"smtp", 1.5}, {"mp3-over-http", 0.6},
		{"video-over-http", 0.3}, {"exe-over-http", 0.3}, {"ftp", 0.3}, {"ssh", 1}, {"bittorrent", 0.5},
		{"bittorrent-dht", 6}, {"edonkey", 0.4}, {"gnutella", 0.7}, {"game-udp", 0.9}, {"irc", 0.8},
		{"icmp-echo", 1.5},
	}
	c.RandomShare = 0.06
	c.VLANShare = 0.05
	c.TunnelShare = 0.009
	c.Tunnels = []string{"6in4", "ipip"}
	c.FragmentShare = 0.01
	c.StraddleShare = 0.05
	c.LongFlows = 40
	c.LongDuration = 68 * time.Second
	c.Clients = 6000
	c.Servers = 20000
	c.BodyScale = 0.022
	return c
}

// Realistic is Large with the payload mix of today's access links: the
// same 200,000 sessions over 71 s with the reference trace's payload
// sizes (about 38 % of packets without payload, 30 % with 1-100 bytes,
// 22 % with 1400 or more), but most bytes are TLS (web and video over
// HTTPS) as they are on the Internet now, next to plain HTTP pages and
// media downloads, DNS, mail, SSH, P2P, games and chat, all with their
// protocols' real content, so the default symptom database fires where
// it would in practice. `mira synth --payload-mix realistic` writes it.
func Realistic() Config {
	c := Large()
	c.Seed = 13
	c.Mix = []Share{
		{"http", 5}, {"dns", 48}, {"tls", 18}, {"smtp", 1}, {"mp3-over-http", 0.15},
		{"video-over-http", 0.15}, {"exe-over-http", 0.1}, {"ftp", 0.1}, {"ssh", 0.8}, {"bittorrent", 0.3},
		{"bittorrent-dht", 4}, {"edonkey", 0.2}, {"gnutella", 0.3}, {"game-udp", 1.1}, {"irc", 0.5},
		{"icmp-echo", 1.5},
	}
	c.RandomShare = 0.025
	c.BodyScale = 0.028
	return c
}

// PayloadMixes names the application mixes `mira synth --payload-mix`
// offers: "synthetic" keeps the preset's, "realistic" is Realistic's.
var PayloadMixes = []string{"synthetic", "realistic"}

// WithPayloadMix returns c with the named payload mix (see PayloadMixes):
// "realistic" takes Realistic's applications, random share, body scale
// and seed, keeping c's session count and shape.
func (c Config) WithPayloadMix(name string) (Config, error) {
	switch name {
	case "", "synthetic":
		return c, nil
	case "realistic":
		r := Realistic()
		c.Mix, c.RandomShare, c.BodyScale, c.Seed = r.Mix, r.RandomShare, r.BodyScale, r.Seed
		return c, nil
	}
	return c, fmt.Errorf("synth: unknown payload mix %q (want synthetic or realistic)", name)
}

// withDefaults fills zero fields from Default and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := Default()
	if c.Flows == 0 {
		c.Flows = d.Flows
	}
	if c.Start.IsZero() {
		c.Start = d.Start
	}
	if c.Duration == 0 {
		c.Duration = d.Duration
	}
	if c.Mix == nil {
		c.Mix = d.Mix
	}
	if c.VLANs == nil {
		c.VLANs = d.VLANs
	}
	if c.Tunnels == nil {
		c.Tunnels = d.Tunnels
	}
	if c.LongDuration == 0 {
		c.LongDuration = d.LongDuration
	}
	if c.Clients == 0 {
		c.Clients = d.Clients
	}
	if c.Servers == 0 {
		c.Servers = d.Servers
	}
	if c.BodyScale == 0 {
		c.BodyScale = d.BodyScale
	}
	// A small --flows keeps working: long sessions are a share of them.
	c.LongFlows = min(c.LongFlows, c.Flows)
	switch {
	case c.Flows < 0:
		return c, fmt.Errorf("synth: flows %d is negative", c.Flows)
	case c.Duration < 0:
		return c, fmt.Errorf("synth: duration %v is negative", c.Duration)
	case c.LongFlows < 0:
		return c, fmt.Errorf("synth: long flows %d is negative", c.LongFlows)
	case c.Clients < 1 || c.Servers < 1 || c.Clients > 1<<16 || c.Servers > 1<<16:
		return c, fmt.Errorf("synth: clients %d and servers %d must be within 1..65536", c.Clients, c.Servers)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"random share", c.RandomShare}, {"ipv6 share", c.IPv6Share}, {"vlan share", c.VLANShare},
		{"tunnel share", c.TunnelShare}, {"fragment share", c.FragmentShare}, {"straddle share", c.StraddleShare}} {
		if f.v < 0 || f.v > 1 {
			return c, fmt.Errorf("synth: %s %v not within 0..1", f.name, f.v)
		}
	}
	total := 0.0
	for _, s := range c.Mix {
		known := false
		for _, a := range apps {
			known = known || a == s.App
		}
		if !known {
			return c, fmt.Errorf("synth: unknown application %q in mix", s.App)
		}
		if s.Weight < 0 {
			return c, fmt.Errorf("synth: application %q has negative weight %v", s.App, s.Weight)
		}
		total += s.Weight
	}
	if total == 0 && c.RandomShare < 1 {
		return c, fmt.Errorf("synth: mix has no weight")
	}
	for _, t := range c.Tunnels {
		if _, ok := tunnelKinds[t]; !ok {
			return c, fmt.Errorf("synth: unknown tunnel %q (want 6in4, ipip, gre or vxlan)", t)
		}
	}
	if c.VLANShare > 0 && len(c.VLANs) == 0 {
		return c, fmt.Errorf("synth: vlan share %v with no vlans", c.VLANShare)
	}
	for _, v := range c.VLANs {
		if v == 0 || v > 4094 {
			return c, fmt.Errorf("synth: vlan %d not within 1..4094", v)
		}
	}
	return c, nil
}
