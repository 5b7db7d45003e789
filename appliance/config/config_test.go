package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaults(t *testing.T) {
	p, err := LoadProbe("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Meter.ActiveTimeout != 120*time.Second || p.Meter.MaxFlows != 262144 || p.Probe.ObservationDomain != 1 {
		t.Errorf("defaults not applied: %+v", p.Meter)
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
		// Export URLs are checked at load, with their place.
		{"export:\n  - url: udp://127.0.0.1:4739\n  - url: htp://collector:4739\n", `p.yaml:3: key "export[1].url": export target "htp://collector:4739": unsupported scheme "htp"`},
		{"export:\n  - url: tcp://collector\n", `p.yaml:2: key "export[0].url": export target "tcp://collector": want tcp://host:port`},
		{"log:\n  format: xml\n", `p.yaml:2: key "log.format": invalid value "xml"`},
		// The aggregates and sampling sections are checked at load too.
		{"aggregates:\n  home: [10.0.0.0/8]\n  rules:\n    - name: campus\n      src:\n        - 10.1.0.0/16\n        - 10.2.0.0/33\n", `p.yaml:7: key "aggregates.rules[0].src[1]": "10.2.0.0/33" is not a prefix or address`},
		{"aggregates:\n  rules:\n    - {name: a, id: 3}\n    - {name: b, id: 3}\n", `p.yaml:4: key "aggregates.rules[1].id": id 3 already names "a"`},
		{"sampling:\n  mode: sometimes\n", `p.yaml:2: key "sampling.mode": sampling: unknown mode "sometimes"`},
		// The snmp: section is decoded with the file, errors located in it.
		{"probe:\n  name: p\nsnmp:\n  communities:\n    - name: c\n      sourcez: [127.0.0.0/8]\n", `p.yaml:6: key "snmp.communities[0].sourcez": unknown key`},
		{"snmp:\n  users:\n    - name: u\n      auth: MD5\n      auth_password: 12345678\n", `p.yaml:4: key "snmp.users[0].auth": unknown auth protocol "MD5"`},
		{"snmp:\n  communities:\n    - name: c\n", `p.yaml:3: key "snmp.communities[0].sources": no source prefixes`},
		// Values the probe cannot run with: the Go runtime's fatal "out
		// of memory" (100000 workers) and a panic (the flow index) before.
		{"pipeline:\n  workers: 100000\n", `p.yaml:2: key "pipeline.workers": 100000 is more than 1024`},
		{"meter:\n  max_flows: 100000000000\n", `p.yaml:2: key "meter.max_flows": 100000000000 is more than a flow table holds (2147483648)`},
		// Negative durations and sizes silently meant the defaults.
		{"meter:\n  idle_timeout: -5s\n", `p.yaml:2: key "meter.idle_timeout": must not be negative`},
		{"meter: {active_timeout: -1m}\n", `p.yaml:1: key "meter.active_timeout": must not be negative`},
		{"drain_timeout: -1s\n", `p.yaml:1: key "drain_timeout": must not be negative`},
		{"capture:\n  snaplen: -1\n", `p.yaml:2: key "capture.snaplen": must not be negative`},
		{"symptoms:\n  scan_limit: -1\n", `p.yaml:2: key "symptoms.scan_limit": must not be negative`},
		{"export:\n  - url: udp://127.0.0.1:4739\n    mtu: -1\n", `p.yaml:3: key "export[0].mtu": must not be negative`},
		{"export:\n  - {url: tcp://127.0.0.1:4739, spool: {dir: /tmp/s, window: -1s}}\n", `p.yaml:2: key "export[0].spool.window": must not be negative`},
		// yaml names no line for a syntax error on the first line.
		{"meter: idle_timeout: 30s\n", `p.yaml:1: mapping values are not allowed in this context`},
		// An MTU below a message with a template and a record: each
		// record went out alone, in a message over it.
		{"export:\n  - url: udp://127.0.0.1:4739\n    mtu: 20\n", `p.yaml:3: key "export[0].mtu": 20 is less than a message with a flow template and one record needs (435)`},
		// Pacing: bytes a second, -1 unpaced; UDP only.
		{"export:\n  - url: udp://127.0.0.1:4739\n    rate: -2\n", `p.yaml:3: key "export[0].rate": -2: want bytes a second, 0 for the default or -1 for unpaced`},
		{"export:\n  - url: udp://127.0.0.1:4739\n    burst: -1\n", `p.yaml:3: key "export[0].burst": must not be negative`},
		{"export:\n  - url: tcp://127.0.0.1:4739\n    rate: 1000000\n", `p.yaml:3: key "export[0].rate": tcp://127.0.0.1:4739: only udp:// targets are paced (streams have flow control)`},
		{"export:\n  - url: file:///tmp\n    burst: 65536\n", `p.yaml:3: key "export[0].burst": file:///tmp: only udp:// targets are paced (streams have flow control)`},
		// A sampling mode with interval 0 sampled nothing, silently.
		{"sampling:\n  mode: random\n  interval: 0\n", `p.yaml:3: key "sampling.interval": 0 with mode random: want N >= 1`},
		{"sampling: {mode: flow, interval: 0}\n", `p.yaml:1: key "sampling.interval": 0 with mode flow: want N >= 1`},
	} {
		_, err := ParseProbe("p.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseProbe(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

// TestEveryError: every problem in a file is reported, each with its
// file, line and key, not the first and a count of the others.
func TestEveryError(t *testing.T) {
	in := "meter:\n  max_flows: lots\n  bogus: 1\npipeline:\n  workers: many\nexport:\n  - url: htp://x:1\nlog:\n  level: loud\n"
	_, err := ParseProbe("p.yaml", []byte(in))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`p.yaml:2: key "meter.max_flows": invalid value "lots"`,
		`p.yaml:3: key "meter.bogus": unknown key`,
		`p.yaml:5: key "pipeline.workers": invalid value "many"`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("error %d: %q, want %q", i, got[i], w)
		}
	}
	if strings.Contains(err.Error(), "more errors") {
		t.Errorf("errors counted, not listed: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Key != "meter.max_flows" {
		t.Errorf("errors.As: %+v", e)
	}
	// The file decodes; validation then lists every problem it finds.
	_, err = ParseProbe("p.yaml", []byte("export:\n  - url: htp://x:1\n  - template_refresh: 1s\nlog:\n  level: loud\n"))
	want = []string{
		`p.yaml:2: key "export[0].url": export target "htp://x:1": unsupported scheme "htp"`,
		`p.yaml:3: key "export[1].url": missing`,
		`p.yaml:5: key "log.level": invalid value "loud"`,
	}
	if err == nil || len(strings.Split(err.Error(), "\n")) != len(want) {
		t.Fatalf("validation errors: %v, want %d", err, len(want))
	}
	for i, g := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(g, want[i]) {
			t.Errorf("validation error %d: %q, want %q", i, g, want[i])
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add(defaultProbe)
	f.Add([]byte("meter: {idle_timeout: 1s}"))
	f.Add([]byte("export:\n  - url: htp://x\nsnmp: {users: [{name: u}]}\n"))
	// Invariants: every error is located in the file it came from (each
	// line of a joined error is "fuzz.yaml...", and errors.As finds it);
	// a configuration that parses, marshalled to YAML and parsed again,
	// is the same configuration.
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseProbe("fuzz.yaml", b)
		if err == nil {
			out, err := yaml.Marshal(c)
			if err != nil {
				t.Fatalf("marshal a parsed configuration: %v", err)
			}
			c2, err := ParseProbe("again.yaml", out)
			if err != nil {
				t.Fatalf("the marshalled configuration does not parse: %v\n%s", err, out)
			}
			// Compared as YAML, every field of which is a tagged exported
			// field: a list absent (nil) and an empty one are the same.
			out2, err := yaml.Marshal(c2)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the configuration:\n%s\nbecame\n%s", out, out2)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "fuzz.yaml" {
			t.Fatalf("error without its place: %v", err)
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(l, "fuzz.yaml") {
				t.Fatalf("error line %q does not name the file (%v)", l, err)
			}
		}
	})
}

// TestExportPace: a udp:// target takes a rate (bytes a second, -1
// unpaced) and a burst.
func TestExportPace(t *testing.T) {
	c, err := ParseProbe("p.yaml", []byte("export:\n  - {url: udp://127.0.0.1:4739, rate: 2000000, burst: 65536}\n  - {url: udp://127.0.0.1:4740, rate: -1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Export[0]; e.Rate != 2000000 || e.Burst != 65536 {
		t.Errorf("export[0]: rate %d burst %d, want 2000000 65536", e.Rate, e.Burst)
	}
	if e := c.Export[1]; e.Rate != -1 || e.Burst != 0 {
		t.Errorf("export[1]: rate %d burst %d, want -1 0", e.Rate, e.Burst)
	}
}
