package aggregate

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/appliance/decode"
)

const testYAML = `
home: [192.0.2.0/24, 2001:db8::/32]
rules:
  - name: atm-pvc
    vc: ["0/32", "1/*"]
  - name: voice-vlan
    vlan: [100]
  - name: router-mac
    mac: ["02:00:00:00:00:01"]
  - name: uplink2
    interfaces: [eth1]
  - name: campus-in
    direction: [incoming]
  - name: campus-out
    direction: [outgoing]
  - name: web-servers
    id: 42
    dst: [198.51.100.0/24]
    net: [198.51.100.80/32]
scope:
  directions: [incoming, outgoing, internal]
`

func load(t *testing.T, s string) *Classifier {
	t.Helper()
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	c, err := New(&cfg, []string{"eth0", "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestClassify(t *testing.T) {
	c := load(t, testYAML)
	mac1 := [6]byte{2, 0, 0, 0, 0, 1}
	for _, tc := range []struct {
		name  string
		p     decode.Packet
		iface uint32
		want  string
		dir   Direction
		scope bool
	}{
		{"incoming", decode.Packet{Src: ip("203.0.113.5"), Dst: ip("192.0.2.10")}, 0, "campus-in", DirIncoming, true},
		{"outgoing v6", decode.Packet{Src: ip("2001:db8::1"), Dst: ip("2001:4860::8888")}, 0, "campus-out", DirOutgoing, true},
		{"mapped v4 home", decode.Packet{Src: ip("::ffff:192.0.2.9"), Dst: ip("203.0.113.1")}, 0, "campus-out", DirOutgoing, true},
		{"internal", decode.Packet{Src: ip("192.0.2.1"), Dst: ip("192.0.2.2")}, 0, "", DirInternal, true},
		{"transit to web", decode.Packet{Src: ip("203.0.113.5"), Dst: ip("198.51.100.80")}, 0, "web-servers", DirTransit, false},
		{"transit net only", decode.Packet{Src: ip("198.51.100.80"), Dst: ip("203.0.113.5")}, 0, "", DirTransit, false},
		{"vlan first", decode.Packet{Src: ip("203.0.113.5"), Dst: ip("192.0.2.10"), VLAN: 100}, 0, "voice-vlan", DirIncoming, true},
		{"mac either side", decode.Packet{Src: ip("192.0.2.10"), Dst: ip("203.0.113.5"), DstMAC: mac1}, 0, "router-mac", DirOutgoing, true},
		{"interface", decode.Packet{Src: ip("192.0.2.10"), Dst: ip("203.0.113.5")}, 1, "uplink2", DirOutgoing, true},
		{"vc exact", decode.Packet{Src: ip("10.0.0.1"), Dst: ip("10.0.0.2"), HasVC: true, VPI: 0, VCI: 32}, 0, "atm-pvc", DirTransit, false},
		{"vc wildcard", decode.Packet{Src: ip("10.0.0.1"), Dst: ip("10.0.0.2"), HasVC: true, VPI: 1, VCI: 999}, 0, "atm-pvc", DirTransit, false},
		{"vc other", decode.Packet{Src: ip("10.0.0.1"), Dst: ip("10.0.0.2"), HasVC: true, VPI: 2, VCI: 32}, 0, "", DirTransit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := c.Classify(&tc.p, tc.iface)
			if got := c.Names()[id]; got != tc.want {
				t.Errorf("aggregate %d %q, want %q", id, got, tc.want)
			}
			if d := c.Direction(&tc.p); d != tc.dir {
				t.Errorf("direction %v, want %v", d, tc.dir)
			}
			if s := c.InScope(&tc.p, tc.iface); s != tc.scope {
				t.Errorf("in scope %v, want %v", s, tc.scope)
			}
		})
	}
	if c.Names()[42] != "web-servers" || c.Names()[1] != "atm-pvc" {
		t.Fatalf("ids: %v", c.Names())
	}
}

// TestScopeSplit checks that two probes scoped to complementary
// directions together keep every packet exactly once.
func TestScopeSplit(t *testing.T) {
	a := load(t, "home: [192.0.2.0/24]\nscope: {directions: [incoming, transit]}\n")
	b := load(t, "home: [192.0.2.0/24]\nscope: {directions: [outgoing, internal]}\n")
	addrs := []string{"192.0.2.1", "192.0.2.200", "203.0.113.7", "198.51.100.1"}
	for _, s := range addrs {
		for _, d := range addrs {
			p := decode.Packet{Src: ip(s), Dst: ip(d)}
			if a.InScope(&p, 0) == b.InScope(&p, 0) {
				t.Errorf("%s -> %s: kept by both or neither", s, d)
			}
		}
	}
}

func TestScopeAggregates(t *testing.T) {
	c := load(t, "rules:\n  - {name: a, src: [10.0.0.0/8]}\n  - {name: b, src: [11.0.0.0/8]}\nscope: {aggregates: [a, none]}\n")
	for s, want := range map[string]bool{"10.1.1.1": true, "11.1.1.1": false, "12.1.1.1": true} {
		p := decode.Packet{Src: ip(s), Dst: ip("1.1.1.1")}
		if got := c.InScope(&p, 0); got != want {
			t.Errorf("%s: in scope %v, want %v", s, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want, key string }{
		{"rules: [{src: [10.0.0.0/8]}]", "name is required", "aggregates.rules[0]"},
		{"rules: [{name: x, src: [10.0.0.0/8, 10.0.0.0/33]}]", `"10.0.0.0/33" is not a prefix`, "aggregates.rules[0].src[1]"},
		{"rules: [{name: x, mac: [zz]}]", "not an Ethernet address", "aggregates.rules[0].mac[0]"},
		{"rules: [{name: x, vlan: [5000]}]", "not a VLAN id", "aggregates.rules[0].vlan[0]"},
		{"rules: [{name: x, interfaces: [wlan9]}]", `no capture interface "wlan9"`, "aggregates.rules[0].interfaces[0]"},
		{"rules: [{name: x, vc: [\"1\"]}]", "want VPI/VCI", "aggregates.rules[0].vc[0]"},
		{"rules: [{name: x, direction: [incoming]}]", "needs aggregates.home", "aggregates.rules[0].direction[0]"},
		{"home: [10.0.0.0/8]\nrules: [{name: x, direction: [sideways]}]", `unknown direction "sideways"`, "aggregates.rules[0].direction[0]"},
		{"rules: [{name: x, id: 3}, {name: y, id: 3}]", `id 3 already names "x"`, "aggregates.rules[1].id"},
		{"rules: [{name: none}]", "reserved", "aggregates.rules[0].name"},
		{"scope: {aggregates: [nope]}", `no rule named "nope"`, "aggregates.scope.aggregates[0]"},
		{"home: [10.0.0.0/8, nonsense]", `"nonsense" is not a prefix`, "aggregates.home[1]"},
		// Overlapping site prefixes in the wrong order: the lab's traffic
		// was all counted as the campus's, without a word.
		{"rules: [{name: campus, net: [10.16.0.0/16]}, {name: lab, net: [10.16.0.0/24]}]", `never matches: rule "campus" before it`, "aggregates.rules[1]"},
		{"rules: [{name: a, net: [10.0.0.0/8, \"2001:db8::/32\"]}, {name: b, net: [\"2001:db8:1::/48\", 10.1.2.3]}]", `never matches: rule "a"`, "aggregates.rules[1]"},
		{"rules: [{name: all}, {name: v5, vlan: [5]}]", `never matches: rule "all"`, "aggregates.rules[1]"},
		{"home: [10.0.0.0/8]\nrules: [{name: out, direction: [outgoing, internal]}, {name: lab-out, src: [10.1.0.0/16], direction: [outgoing]}]", `never matches: rule "out"`, "aggregates.rules[1]"},
		{"rules: [{name: p1, vc: [\"1/*\"]}, {name: c100, vc: [\"1/100\"], vlan: [3]}]", `never matches: rule "p1"`, "aggregates.rules[1]"},
		{"rules: [{name: v, vlan: [1, 2]}, {name: x, net: [10.0.0.0/8]}, {name: w, vlan: [2]}]", `never matches: rule "v"`, "aggregates.rules[2]"},
	} {
		var cfg Config
		if err := yaml.Unmarshal([]byte(tc.yaml), &cfg); err != nil {
			t.Fatal(err)
		}
		_, err := New(&cfg, []string{"eth0"})
		var ce *ConfigError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%q: error %v, want %q at key %s", tc.yaml, err, tc.want, tc.key)
		}
		// Check finds the same, except unknown interface names (the
		// capture interfaces are known only when the probe starts).
		cerr := Check(&cfg)
		if strings.Contains(tc.yaml, "interfaces") {
			if cerr != nil {
				t.Errorf("%q: Check: %v", tc.yaml, cerr)
			}
		} else if cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("%q: Check: %v, New: %v", tc.yaml, cerr, err)
		}
	}
}

func TestEmpty(t *testing.T) {
	c, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := decode.Packet{Src: ip("10.0.0.1"), Dst: ip("10.0.0.2")}
	if !c.Empty() || c.Classify(&p, 0) != 0 || !c.InScope(&p, 0) || c.Direction(&p) != DirNone {
		t.Fatal("empty classifier labels or drops")
	}
}

func TestAllocs(t *testing.T) {
	c := load(t, testYAML+"  aggregates: [campus-in, campus-out, none]\n")
	p := decode.Packet{Src: ip("203.0.113.5"), Dst: ip("2001:db8::5")}
	if n := testing.AllocsPerRun(1000, func() { c.Classify(&p, 0); c.InScope(&p, 0) }); n != 0 {
		t.Fatalf("%v allocs per packet", n)
	}
}

func BenchmarkClassify(b *testing.B) {
	var cfg Config
	if err := yaml.Unmarshal([]byte(testYAML), &cfg); err != nil {
		b.Fatal(err)
	}
	c, _ := New(&cfg, []string{"eth0", "eth1"})
	p := decode.Packet{Src: ip("203.0.113.5"), Dst: ip("192.0.2.10")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.InScope(&p, 0)
	}
}

// TestEmptyLists: YAML "vlan: []" and the like (as the embedded defaults
// write them) mean "any", not "none".
func TestEmptyLists(t *testing.T) {
	c := load(t, "home: [192.0.2.0/24]\nrules:\n  - {name: a, src: [], dst: [], net: [], mac: [], src_mac: [], dst_mac: [], vlan: [], interfaces: [], vc: [], direction: [outgoing]}\nscope: {aggregates: [], directions: []}\n")
	p := decode.Packet{Src: ip("192.0.2.1"), Dst: ip("203.0.113.1"), VLAN: 7}
	if c.Names()[c.Classify(&p, 0)] != "a" || !c.InScope(&p, 0) {
		t.Fatal("empty lists restrict the rule or the scope")
	}
}

// TestOverlappingRulesInOrder: overlapping rules that each still match
// something load: the narrower first, or an earlier rule that sets a
// criterion the later one does not, or two rules of one aggregate.
func TestOverlappingRulesInOrder(t *testing.T) {
	for _, y := range []string{
		"rules: [{name: lab, net: [10.16.0.0/24]}, {name: campus, net: [10.16.0.0/16]}]",
		"home: [10.0.0.0/8]\nrules: [{name: in, net: [10.16.0.0/16], direction: [incoming]}, {name: campus, net: [10.16.0.0/24]}]",
		"rules: [{name: s, src: [10.0.0.0/8]}, {name: n, net: [10.1.0.0/16]}]",
		"rules: [{name: v, vlan: [1]}, {name: w, vlan: [1, 2]}]",
		"rules: [{name: c100, vc: [\"1/100\"]}, {name: p1, vc: [\"1/*\"]}]",
		"rules: [{name: a, id: 1, net: [10.0.0.0/8]}, {name: a, id: 1, net: [10.1.0.0/16], vlan: [4]}]",
	} {
		var cfg Config
		if err := yaml.Unmarshal([]byte(y), &cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := New(&cfg, nil); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}
