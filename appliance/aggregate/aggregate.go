package aggregate

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/mira-project/mira/appliance/decode"
)

// Direction is a packet's direction relative to the home networks.
type Direction uint8

// Directions. DirNone means no home networks are configured.
const (
	DirNone     Direction = iota
	DirIncoming           // from outside to home
	DirOutgoing           // from home to outside
	DirTransit            // neither end at home
	DirInternal           // both ends at home
	numDirections
)

var dirNames = [numDirections]string{"none", "incoming", "outgoing", "transit", "internal"}

func (d Direction) String() string {
	if d < numDirections {
		return dirNames[d]
	}
	return "direction-" + strconv.Itoa(int(d))
}

// ParseDirection parses a direction name.
func ParseDirection(s string) (Direction, error) {
	for i := DirIncoming; i < numDirections; i++ {
		if s == dirNames[i] {
			return i, nil
		}
	}
	switch s {
	case "in":
		return DirIncoming, nil
	case "out":
		return DirOutgoing, nil
	}
	return DirNone, fmt.Errorf("unknown direction %q (want incoming, outgoing, transit or internal)", s)
}

// Rule is one aggregate definition as written in probe.yaml.
type Rule struct {
	// Name names the aggregate in reports.
	Name string `yaml:"name"`
	// ID is the aggregate id carried in IPFIX (default: position + 1).
	ID uint32 `yaml:"id"`
	// Src, Dst and Net are prefixes the source, the destination or
	// either address must fall in.
	Src []string `yaml:"src"`
	Dst []string `yaml:"dst"`
	Net []string `yaml:"net"`
	// SrcMAC, DstMAC and MAC are Ethernet addresses (either side for MAC).
	SrcMAC []string `yaml:"src_mac"`
	DstMAC []string `yaml:"dst_mac"`
	MAC    []string `yaml:"mac"`
	// VLAN ids (outermost tag).
	VLAN []uint16 `yaml:"vlan"`
	// Interfaces are capture interface names, or their index in the
	// source's interface list.
	Interfaces []string `yaml:"interfaces"`
	// VC are ATM circuits "VPI/VCI"; "VPI/*" matches every VCI.
	VC []string `yaml:"vc"`
	// Direction relative to the home networks.
	Direction []string `yaml:"direction"`
}

// Config is the aggregate section of probe.yaml. The zero value labels
// nothing and keeps everything.
type Config struct {
	// Home lists the networks "incoming" and "outgoing" refer to.
	Home  []string `yaml:"home"`
	Rules []Rule   `yaml:"rules"`
	// Scope restricts what the probe meters.
	Scope Scope `yaml:"scope"`
}

// Scope selects the packets a probe meters. Empty lists keep everything.
type Scope struct {
	// Aggregates are rule names; "none" keeps packets no rule matched.
	Aggregates []string `yaml:"aggregates"`
	// Directions relative to the home networks.
	Directions []string `yaml:"directions"`
}

type vc struct {
	vpi, vci uint16
	anyVCI   bool
}

type rule struct {
	name          string
	id            uint32
	src, dst, net *bart.Lite
	// srcP, dstP and netP are the prefixes of src, dst and net, for
	// shadowed; ifNames the interfaces as written.
	srcP, dstP, netP []netip.Prefix
	ifNames          []string
	srcMAC           [][6]byte
	dstMAC           [][6]byte
	mac              [][6]byte
	vlan             []uint16
	ifaces           []uint32
	vcs              []vc
	dirs             uint8 // bit per Direction
}

// Classifier applies a Config.
type Classifier struct {
	home      *bart.Lite
	rules     []rule
	names     map[uint32]string
	scopeAgg  map[uint32]bool
	scopeDirs uint8
}

// ConfigError is an error in the aggregates section of probe.yaml; Key
// is the value's path (aggregates.rules[2].src[0]).
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func keyErr(key, format string, a ...any) error {
	return &ConfigError{Key: key, Err: fmt.Errorf(format, a...)}
}

// Check checks cfg as New does, except for the capture interface names
// of rules (known only when the probe starts): for configuration
// loading, where errors are located in the file.
func Check(cfg *Config) error {
	_, err := compile(cfg, nil, false)
	return err
}

func prefixes(field string, in []string) (*bart.Lite, []netip.Prefix, error) {
	if len(in) == 0 {
		return nil, nil, nil
	}
	l := new(bart.Lite)
	var ps []netip.Prefix
	for i, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, nil, keyErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a prefix or address", s)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		l.Insert(p.Masked())
		ps = append(ps, p.Masked())
	}
	return l, ps, nil
}

func macs(field string, in []string) ([][6]byte, error) {
	var out [][6]byte
	for i, s := range in {
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return nil, keyErr(fmt.Sprintf("%s[%d]", field, i), "%q is not an Ethernet address", s)
		}
		out = append(out, [6]byte(hw))
	}
	return out, nil
}

// New compiles cfg. ifNames are the capture interfaces in source order
// (their position is the interface index Classify receives); they resolve
// interface names in rules.
func New(cfg *Config, ifNames []string) (*Classifier, error) {
	return compile(cfg, ifNames, true)
}

func compile(cfg *Config, ifNames []string, resolveIfaces bool) (*Classifier, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	cl := &Classifier{names: map[uint32]string{}}
	var err error
	if cl.home, _, err = prefixes("aggregates.home", c.Home); err != nil {
		return nil, err
	}
	byName := map[string]uint32{}
	for i, r := range c.Rules {
		at := fmt.Sprintf("aggregates.rules[%d]", i)
		if r.Name == "" {
			return nil, keyErr(at, "name is required")
		}
		if r.Name == "none" {
			return nil, keyErr(at+".name", "%q is reserved for unmatched traffic", r.Name)
		}
		x := rule{name: r.Name, id: r.ID}
		if x.id == 0 {
			x.id = uint32(i + 1)
		}
		if old, ok := cl.names[x.id]; ok && old != r.Name {
			return nil, keyErr(at+".id", "id %d already names %q", x.id, old)
		}
		if old, ok := byName[r.Name]; ok && old != x.id {
			return nil, keyErr(at+".name", "%q already has id %d", r.Name, old)
		}
		cl.names[x.id] = r.Name
		byName[r.Name] = x.id
		if x.src, x.srcP, err = prefixes(at+".src", r.Src); err != nil {
			return nil, err
		}
		if x.dst, x.dstP, err = prefixes(at+".dst", r.Dst); err != nil {
			return nil, err
		}
		if x.net, x.netP, err = prefixes(at+".net", r.Net); err != nil {
			return nil, err
		}
		x.ifNames = r.Interfaces
		if x.srcMAC, err = macs(at+".src_mac", r.SrcMAC); err != nil {
			return nil, err
		}
		if x.dstMAC, err = macs(at+".dst_mac", r.DstMAC); err != nil {
			return nil, err
		}
		if x.mac, err = macs(at+".mac", r.MAC); err != nil {
			return nil, err
		}
		if len(r.VLAN) > 0 {
			x.vlan = r.VLAN
		}
		for j, v := range r.VLAN {
			if v > 4095 {
				return nil, keyErr(fmt.Sprintf("%s.vlan[%d]", at, j), "%d is not a VLAN id (0-4095)", v)
			}
		}
		for j, s := range r.Interfaces {
			if !resolveIfaces {
				continue
			}
			idx := -1
			for j, n := range ifNames {
				if n == s {
					idx = j
					break
				}
			}
			if idx < 0 {
				n, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return nil, keyErr(fmt.Sprintf("%s.interfaces[%d]", at, j), "no capture interface %q (have %s)", s, strings.Join(ifNames, ", "))
				}
				idx = int(n)
			}
			x.ifaces = append(x.ifaces, uint32(idx))
		}
		for j, s := range r.VC {
			v, err := parseVC(s)
			if err != nil {
				return nil, &ConfigError{Key: fmt.Sprintf("%s.vc[%d]", at, j), Err: err}
			}
			x.vcs = append(x.vcs, v)
		}
		for j, s := range r.Direction {
			d, err := ParseDirection(s)
			if err != nil {
				return nil, &ConfigError{Key: fmt.Sprintf("%s.direction[%d]", at, j), Err: err}
			}
			if cl.home == nil {
				return nil, keyErr(fmt.Sprintf("%s.direction[%d]", at, j), "needs aggregates.home networks")
			}
			x.dirs |= 1 << d
		}
		for _, y := range cl.rules {
			if y.id != x.id && shadowed(&x, &y) {
				return nil, keyErr(at, "never matches: rule %q before it matches all its traffic (the first rule that matches a packet names it; put the narrower rule first)", y.name)
			}
		}
		cl.rules = append(cl.rules, x)
	}
	if len(c.Scope.Aggregates) > 0 {
		cl.scopeAgg = map[uint32]bool{}
		for j, n := range c.Scope.Aggregates {
			if n == "none" {
				cl.scopeAgg[0] = true
				continue
			}
			id, ok := byName[n]
			if !ok {
				return nil, keyErr(fmt.Sprintf("aggregates.scope.aggregates[%d]", j), "no rule named %q", n)
			}
			cl.scopeAgg[id] = true
		}
	}
	for j, s := range c.Scope.Directions {
		key := fmt.Sprintf("aggregates.scope.directions[%d]", j)
		d, err := ParseDirection(s)
		if err != nil {
			return nil, &ConfigError{Key: key, Err: err}
		}
		if cl.home == nil {
			return nil, keyErr(key, "needs aggregates.home networks")
		}
		cl.scopeDirs |= 1 << d
	}
	return cl, nil
}

// shadowed says whether rule y, before x, matches every packet x matches:
// each criterion y sets, x sets too, within y's (x may set more).
func shadowed(x, y *rule) bool {
	return within(x.srcP, y.srcP) && within(x.dstP, y.dstP) && within(x.netP, y.netP) &&
		subset(x.srcMAC, y.srcMAC) && subset(x.dstMAC, y.dstMAC) && subset(x.mac, y.mac) &&
		subset(x.vlan, y.vlan) && subset(x.ifNames, y.ifNames) && vcsWithin(x.vcs, y.vcs) &&
		(y.dirs == 0 || x.dirs != 0 && x.dirs&^y.dirs == 0)
}

// within says whether y sets no prefixes, or x sets some and each is
// inside one of y's.
func within(x, y []netip.Prefix) bool {
	if len(y) == 0 {
		return true
	}
	if len(x) == 0 {
		return false
	}
	for _, p := range x {
		in := false
		for _, q := range y {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// subset says whether y lists nothing, or x lists some and all are y's.
func subset[T comparable](x, y []T) bool {
	if len(y) == 0 {
		return true
	}
	if len(x) == 0 {
		return false
	}
	for _, v := range x {
		if !slices.Contains(y, v) {
			return false
		}
	}
	return true
}

// vcsWithin is subset for circuits, "VPI/*" holding every VCI.
func vcsWithin(x, y []vc) bool {
	if len(y) == 0 {
		return true
	}
	if len(x) == 0 {
		return false
	}
	for _, v := range x {
		in := false
		for _, w := range y {
			if w.vpi == v.vpi && (w.anyVCI || !v.anyVCI && w.vci == v.vci) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

func parseVC(s string) (vc, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return vc{}, fmt.Errorf("%q: want VPI/VCI", s)
	}
	p, err := strconv.ParseUint(a, 10, 12)
	if err != nil {
		return vc{}, fmt.Errorf("%q: bad VPI", s)
	}
	if b == "*" {
		return vc{vpi: uint16(p), anyVCI: true}, nil
	}
	c, err := strconv.ParseUint(b, 10, 16)
	if err != nil {
		return vc{}, fmt.Errorf("%q: bad VCI", s)
	}
	return vc{vpi: uint16(p), vci: uint16(c)}, nil
}

// Names returns aggregate id -> name, for the options records.
func (c *Classifier) Names() map[uint32]string {
	out := make(map[uint32]string, len(c.names))
	for k, v := range c.names {
		out[k] = v
	}
	return out
}

// Empty says whether c labels nothing and keeps everything.
func (c *Classifier) Empty() bool {
	return len(c.rules) == 0 && c.scopeAgg == nil && c.scopeDirs == 0
}

// Direction returns p's direction relative to the home networks.
func (c *Classifier) Direction(p *decode.Packet) Direction {
	if c.home == nil {
		return DirNone
	}
	s := c.home.Lookup(p.Src.Unmap())
	d := c.home.Lookup(p.Dst.Unmap())
	switch {
	case s && d:
		return DirInternal
	case s:
		return DirOutgoing
	case d:
		return DirIncoming
	}
	return DirTransit
}

func hasMAC(list [][6]byte, m [6]byte) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func (r *rule) match(p *decode.Packet, ifIndex uint32, dir Direction) bool {
	src, dst := p.Src.Unmap(), p.Dst.Unmap()
	if r.src != nil && !r.src.Lookup(src) {
		return false
	}
	if r.dst != nil && !r.dst.Lookup(dst) {
		return false
	}
	if r.net != nil && !r.net.Lookup(src) && !r.net.Lookup(dst) {
		return false
	}
	if r.srcMAC != nil && !hasMAC(r.srcMAC, p.SrcMAC) {
		return false
	}
	if r.dstMAC != nil && !hasMAC(r.dstMAC, p.DstMAC) {
		return false
	}
	if r.mac != nil && !hasMAC(r.mac, p.SrcMAC) && !hasMAC(r.mac, p.DstMAC) {
		return false
	}
	if r.vlan != nil {
		ok := false
		for _, v := range r.vlan {
			if v == p.VLAN {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.ifaces != nil {
		ok := false
		for _, v := range r.ifaces {
			if v == ifIndex {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.vcs != nil {
		if !p.HasVC {
			return false
		}
		ok := false
		for _, v := range r.vcs {
			if v.vpi == p.VPI && (v.anyVCI || v.vci == p.VCI) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.dirs != 0 && r.dirs&(1<<dir) == 0 {
		return false
	}
	return true
}

// Classify returns the aggregate id of the first rule p matches, 0 if
// none. Its signature suits meter.Config.Label.
func (c *Classifier) Classify(p *decode.Packet, ifIndex uint32) uint32 {
	if len(c.rules) == 0 {
		return 0
	}
	dir := c.Direction(p)
	for i := range c.rules {
		if c.rules[i].match(p, ifIndex, dir) {
			return c.rules[i].id
		}
	}
	return 0
}

// InScope says whether the probe meters p: its aggregate and direction
// are among the configured scope (an empty scope keeps everything).
func (c *Classifier) InScope(p *decode.Packet, ifIndex uint32) bool {
	if c.scopeDirs != 0 && c.scopeDirs&(1<<c.Direction(p)) == 0 {
		return false
	}
	if c.scopeAgg != nil && !c.scopeAgg[c.Classify(p, ifIndex)] {
		return false
	}
	return true
}
