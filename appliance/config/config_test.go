package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	p, err := LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Meter.ActiveTimeout != 120*time.Second || p.Meter.MaxFlows != 262144 || p.Probe.ObservationDomain != 1 {
		t.Errorf("defaults not applied: %+v", p.Meter)
	}
	c, err := LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 2 || c.DB != "mira.db" {
		t.Errorf("collector defaults: %+v", c)
	}
}

func TestOverlay(t *testing.T) {
	p, err := ParseProbe("p.yaml", []byte("meter:\n  idle_timeout: 5s\nexport:\n  - url: udp://127.0.0.1:4739\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Meter.IdleTimeout != 5*time.Second || p.Meter.ActiveTimeout != 120*time.Second {
		t.Errorf("overlay: %+v", p.Meter)
	}
	if len(p.Export) != 1 || p.Export[0].URL != "udp://127.0.0.1:4739" {
		t.Errorf("export: %+v", p.Export)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"meter:\n  idle_timeout: 5s\n  bogus: 1\n", `p.yaml:3: key "meter.bogus": unknown key`},
		{"probe:\n  name: x\nfrobnicate: true\n", `p.yaml:3: key "frobnicate": unknown key`},
		{"meter:\n  max_flows: lots\n", `p.yaml:2: key "meter.max_flows": invalid value "lots"`},
		{"meter:\n  idle_timeout: [1\n", `p.yaml:`},
		{"log:\n  level: loud\n", `key "log.level"`},
		{"export:\n  - template_refresh: 5s\n", `key "export[0].url": missing`},
		// Flow mappings: the key yaml refused, not the first on the line.
		{"aggregates:\n  rules:\n    - {name: campus, id: 1, net: 10.16.0.0/16}\n", `p.yaml:3: key "aggregates.rules[0].net": invalid value`},
		{"aggregates:\n  rules:\n    - {name: campus, id: 1, netz: [10.0.0.0/8]}\n", `p.yaml:3: key "aggregates.rules[0].netz": unknown key`},
		{"meter: {idle_timeout: 5s, max_flows: lots}\n", `p.yaml:1: key "meter.max_flows": invalid value "lots"`},
	} {
		_, err := ParseProbe("p.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseProbe(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add(defaultProbe)
	f.Add([]byte("meter: {idle_timeout: 1s}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseProbe("fuzz.yaml", b)
	})
}

func TestCollectorAllow(t *testing.T) {
	c, err := ParseCollector("c.yaml", []byte("allow: [192.0.2.9, 10.0.0.0/8, \"2001:db8::/32\", \"::ffff:198.51.100.1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.AllowPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.9/32", "10.0.0.0/8", "2001:db8::/32", "198.51.100.1/32"}
	if len(ps) != len(want) {
		t.Fatalf("prefixes %v", ps)
	}
	for i, p := range ps {
		if p.String() != want[i] {
			t.Errorf("allow[%d] = %v, want %s", i, p, want[i])
		}
	}
	_, err = ParseCollector("c.yaml", []byte("allow: [192.0.2.9, example.org]\n"))
	if err == nil || !strings.Contains(err.Error(), `c.yaml: key "allow[1]"`) {
		t.Errorf("bad allow entry: %v", err)
	}
}
