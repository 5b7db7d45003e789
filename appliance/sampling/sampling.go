package sampling

import (
	"fmt"
	"net/netip"

	"github.com/mira-project/mira/appliance/decode"
)

// Mode is a selection method.
type Mode uint8

// Selection methods.
const (
	None   Mode = iota // every packet
	Count              // systematic count-based: the first of every N packets
	Random             // uniform probabilistic: each packet with probability 1/N
	Flow               // RFC 5475 hash-based flow selection: 1/N of connections, whole
)

var modeNames = [...]string{"none", "count", "random", "flow"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode-%d", m)
}

// ParseMode parses a mode name as used in probe.yaml.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "none", "off":
		return None, nil
	case "count", "deterministic", "systematic":
		return Count, nil
	case "random":
		return Random, nil
	case "flow", "hash", "flow-hash":
		return Flow, nil
	}
	return None, fmt.Errorf("sampling: unknown mode %q (want none, count, random or flow)", s)
}

// IANA PSAMP selector algorithms (IANA "IPFIX Information Elements"
// registry, selectorAlgorithm sub-registry, RFC 5477).
const (
	AlgCountSystematic = 1 // Systematic count-based Sampling
	AlgRandomNOutOfN   = 3 // Random n-out-of-N Sampling
	AlgUniformProb     = 4 // Uniform probabilistic Sampling
	AlgHashBOB         = 6 // Hash-based Filtering using BOB
	AlgHashIPSX        = 7 // Hash-based Filtering using IPSX
	AlgHashCRC         = 8 // Hash-based Filtering using CRC
)

// Legacy NetFlow v9 samplingAlgorithm (IE 35) values, which nfdump reads.
const (
	LegacyDeterministic = 1
	LegacyRandom        = 2
)

// Config configures a Sampler; the zero value selects everything.
type Config struct {
	// Mode is none (default), count, random or flow.
	Mode string `yaml:"mode"`
	// Interval is N in "1 in N" (default 1: everything).
	Interval uint32 `yaml:"interval"`
	// Seed feeds the random generator (random) and the selection hash
	// (flow). Probes that must keep the same connections share it.
	Seed uint64 `yaml:"seed"`
}

// Sampler selects packets. The zero value is not usable; call New.
type Sampler struct {
	mode     Mode
	interval uint32
	seed     uint64
	// count: packets since the last selected one.
	count uint32
	// random: xorshift64* state.
	rnd uint64
	// flow: keep when BOB(key, init) <= selMax.
	init, selMax uint32

	seen, kept uint64
}

// New returns a Sampler for cfg (nil: select everything).
func New(cfg *Config) (*Sampler, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	m, err := ParseMode(c.Mode)
	if err != nil {
		return nil, err
	}
	n := c.Interval
	if n == 0 {
		n = 1
	}
	if m == None {
		n = 1
	}
	if n == 1 {
		m = None
	}
	s := &Sampler{mode: m, interval: n, seed: c.Seed}
	s.rnd = mix64(c.Seed ^ 0x9e3779b97f4a7c15)
	if s.rnd == 0 {
		s.rnd = 1
	}
	s.init = HashInitialiser(c.Seed)
	s.selMax = uint32(SelectedRangeSize(n) - 1)
	return s, nil
}

// Clone returns an independent Sampler with the same configuration for
// another worker. Random streams are decorrelated by worker index.
func (s *Sampler) Clone(worker int) *Sampler {
	c := *s
	c.count, c.seen, c.kept = 0, 0, 0
	c.rnd = mix64(s.rnd + uint64(worker+1)*0xbf58476d1ce4e5b9)
	if c.rnd == 0 {
		c.rnd = 1
	}
	return &c
}

// Mode returns the selection method.
func (s *Sampler) Mode() Mode { return s.mode }

// Interval returns N (1 when unsampled).
func (s *Sampler) Interval() uint32 { return s.interval }

// Probability returns the selection probability: 1/N for packet
// sampling; for flow selection the share of the hash output range that
// is selected, which is 1/N rounded to a multiple of 2^-32.
func (s *Sampler) Probability() float64 {
	if s.mode == Flow {
		return float64(uint64(s.selMax)+1) / HashOutputRangeSize
	}
	return 1 / float64(s.interval)
}

// HashRange describes flow selection as RFC 5477 announces it: the BOB
// initialiser and the selected part of the output range [0, 2^32-1].
// ok is false unless the mode is flow.
func (s *Sampler) HashRange() (init uint32, selMin, selMax uint32, ok bool) {
	if s.mode != Flow {
		return 0, 0, 0, false
	}
	return s.init, 0, s.selMax, true
}

// PacketInterval is the value for flow.Record.SamplingPacketInterval:
// N for packet sampling, 0 otherwise.
func (s *Sampler) PacketInterval() uint32 {
	if s.mode == Count || s.mode == Random {
		return s.interval
	}
	return 0
}

// FlowInterval is N for flow sampling, 0 otherwise.
func (s *Sampler) FlowInterval() uint32 {
	if s.mode == Flow {
		return s.interval
	}
	return 0
}

// SelectorAlgorithm returns the IANA PSAMP selector algorithm, 0 when
// unsampled.
func (s *Sampler) SelectorAlgorithm() uint16 {
	switch s.mode {
	case Count:
		return AlgCountSystematic
	case Random:
		return AlgUniformProb
	case Flow:
		return AlgHashBOB
	}
	return 0
}

// LegacyAlgorithm returns the NetFlow v9 samplingAlgorithm (IE 35):
// 1 deterministic for count-based, 2 random otherwise (flow selection is
// random with respect to the traffic); 0 when unsampled.
func (s *Sampler) LegacyAlgorithm() uint8 {
	switch s.mode {
	case Count:
		return LegacyDeterministic
	case Random, Flow:
		return LegacyRandom
	}
	return 0
}

// Stats returns how many packets Keep saw and kept.
func (s *Sampler) Stats() (seen, kept uint64) { return s.seen, s.kept }

// Keep says whether the packet is selected.
func (s *Sampler) Keep(p *decode.Packet) bool {
	s.seen++
	var k bool
	switch s.mode {
	case None:
		k = true
	case Count:
		k = s.count == 0
		s.count++
		if s.count == s.interval {
			s.count = 0
		}
	case Random:
		k = s.next()%uint64(s.interval) == 0
	case Flow:
		k = s.KeepFlow(p.Src, p.Dst, p.Sport, p.Dport, p.Proto)
	}
	if k {
		s.kept++
	}
	return k
}

// KeepFlow says whether hash-based selection keeps the connection; it is
// the same for both directions. It does not touch the counters.
func (s *Sampler) KeepFlow(src, dst netip.Addr, sport, dport uint16, proto uint8) bool {
	if s.mode != Flow {
		return true
	}
	return FlowHash(s.init, src, dst, sport, dport, proto) <= s.selMax
}

func (s *Sampler) next() uint64 {
	x := s.rnd
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	s.rnd = x
	return x * 0x2545f4914f6cdd1d
}

// HashOutputRangeSize is the size of BOB's output range [0, 2^32-1].
const HashOutputRangeSize = 1 << 32

// SelectedRangeSize is how many of BOB's 2^32 outputs select a flow at
// 1 in n: 2^32/n rounded to the nearest integer, at least 1.
func SelectedRangeSize(n uint32) uint64 {
	if n <= 1 {
		return HashOutputRangeSize
	}
	return max((HashOutputRangeSize+uint64(n)/2)/uint64(n), 1)
}

// HashInitialiser folds the configured 64-bit seed into BOB's 32-bit
// initval; seeds below 2^32 are used as they are.
func HashInitialiser(seed uint64) uint32 { return uint32(seed) ^ uint32(seed>>32) }

// FlowHash is the RFC 5475 BOB hash of the canonical 5-tuple with
// initialiser init. Of the two endpoints (address, port), the one that
// sorts first is "low"; the key is low's address, the other address
// (4 or 16 bytes each), low's port, the other port (big-endian), then
// the protocol: 13 bytes for IPv4, 37 for IPv6. Both directions of a
// connection give the same key. ICMP and ICMPv6 are keyed with ports 0,
// as the type differs between request and reply.
func FlowHash(init uint32, src, dst netip.Addr, sport, dport uint16, proto uint8) uint32 {
	if proto == 1 || proto == 58 {
		sport, dport = 0, 0
	}
	// Order the endpoints on the 16-byte forms: for two addresses of one
	// family that is netip.Addr.Compare's order, without its cost.
	a, b := src.As16(), dst.As16()
	ah, al, bh, bl := be64(a[:8]), be64(a[8:]), be64(b[:8]), be64(b[8:])
	if ah > bh || ah == bh && (al > bl || al == bl && sport > dport) {
		a, b = b, a
		sport, dport = dport, sport
	}
	if src.Is4() && dst.Is4() {
		// BOB of the 13-byte key, unrolled: one 12-byte block (the two
		// addresses and the ports), then the protocol as the tail.
		x, y, z := uint32(0x9e3779b9)+le32(a[12:]), uint32(0x9e3779b9)+le32(b[12:]), init
		z += uint32(sport>>8) | uint32(sport&0xff)<<8 | uint32(dport>>8)<<16 | uint32(dport&0xff)<<24
		x, y, z = bobMix(x, y, z)
		_, _, z = bobMix(x+uint32(proto), y, z+13)
		return z
	}
	var k [37]byte
	copy(k[:16], a[:])
	copy(k[16:32], b[:])
	k[32], k[33], k[34], k[35], k[36] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport), proto
	return BOB(k[:], init)
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// mix64 is the splitmix64 finaliser: a bijection with full avalanche. It
// seeds and decorrelates the random samplers' generators.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
