package image

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/appliance/config"
	collectorconfig "github.com/mira-project/mira/collector/config"
)

func TestProbeConfigAddsStateFile(t *testing.T) {
	for _, in := range []string{
		"capture: {interfaces: [eth1]}\nsnmp_listen: 0.0.0.0:161\nsnmp: {communities: [{name: public, sources: [10.0.2.0/24]}]}\n",
		"capture: {interfaces: [eth1]}\n",
		"",
		"snmp:\n",
	} {
		out, cfg, err := ProbeConfig("probe.yaml", []byte(in), "/data/snmp/engine.state")
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		var doc struct {
			SNMP map[string]any `yaml:"snmp"`
		}
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.SNMP["state_file"] != "/data/snmp/engine.state" {
			t.Errorf("%q: state_file = %v in\n%s", in, doc.SNMP["state_file"], out)
		}
		if strings.Contains(in, "public") && doc.SNMP["communities"] == nil {
			t.Errorf("%q: communities lost:\n%s", in, out)
		}
		if strings.Contains(in, "eth1") && (len(cfg.Capture.Interfaces) != 1 || cfg.Capture.Interfaces[0] != "eth1") {
			t.Errorf("%q: interfaces %v", in, cfg.Capture.Interfaces)
		}
	}
	// A state file the user chose stays.
	out, _, err := ProbeConfig("p.yaml", []byte("snmp: {state_file: /data/mine}\n"), "/data/snmp/engine.state")
	if err != nil || !strings.Contains(string(out), "/data/mine") || strings.Contains(string(out), "engine.state") {
		t.Errorf("user state_file: %v\n%s", err, out)
	}
}

func TestProbeConfigErrorsNameTheFile(t *testing.T) {
	_, _, err := ProbeConfig("boot/mira/probe.yaml", []byte("meter:\n  idle_timeout: soon\n"), "/s")
	if err == nil || !strings.Contains(err.Error(), "boot/mira/probe.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseSystem(t *testing.T) {
	s, err := ParseSystem("system.yaml", nil)
	if err != nil || s.Management.Interface != "eth0" || !s.DHCPEnabled() || !s.WatchdogEnabled() {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	s, err = ParseSystem("system.yaml", []byte("management: {address: 192.0.2.10/24, gateway: 192.0.2.1}\nsyslog: 192.0.2.5\n"))
	if err != nil || s.DHCPEnabled() || s.Syslog != "192.0.2.5:514" {
		t.Fatalf("static: %+v %v", s, err)
	}
	for bad, want := range map[string]string{
		"management: {address: 192.0.2.10}\n":            `sys.yaml:1: key "management.address": netip.ParsePrefix("192.0.2.10"): no '/'`,
		"management: {dhcp: false}\n":                    `sys.yaml:1: key "management": dhcp is off and no address is given`,
		"managment: {}\n":                                `sys.yaml:1: key "managment": unknown key`,
		"management:\n  dns: [192.0.2.53, nameserver]\n": `sys.yaml:2: key "management.dns[1]": ParseAddr("nameserver")`,
		"update:\n  listen: :8443\n  token: short\n":     `sys.yaml:3: key "update.token": at least 16 characters`,
	} {
		if _, err := ParseSystem("sys.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", bad, err, want)
		}
	}
}

// TestProbeConfigSpoolsStreams checks that tcp:// and tls:// exports get a
// spool on the data partition unless they have one, and others do not.
func TestProbeConfigSpoolsStreams(t *testing.T) {
	in := "export:\n  - url: udp://c:4739\n  - {url: tcp://c:4739}\n  - url: tls://c:4740\n    spool: {dir: /data/mine}\n  - url: tcp://d:4739\n"
	out, cfg, err := ProbeConfig("probe.yaml", []byte(in), "/data/snmp/engine.state")
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.ParseProbe("out.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{"", "/data/spool/1", "/data/mine", "/data/spool/3"}
	for i, e := range got.Export {
		dir := ""
		if e.Spool != nil {
			dir = e.Spool.Dir
		}
		if dir != want[i] {
			t.Errorf("export[%d] %s: spool %q, want %q\n%s", i, e.URL, dir, want[i], out)
		}
	}
	if len(cfg.Export) != 4 {
		t.Fatalf("%d exports", len(cfg.Export))
	}
}

func TestCollectorConfigBoundsTheStore(t *testing.T) {
	for _, in := range []string{string(DefaultCollectorYAML), string(defaultCollectorYAML(newPassword())), "", "retention:\n", "db: /data/x.db\nretention: {max_age: 24h}\n"} {
		out, err := CollectorConfig("collector.yaml", []byte(in), 1000<<20)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		c, err := collectorconfig.ParseCollector("out", out)
		if err != nil {
			t.Fatal(err)
		}
		if c.Retention.MaxSize != 750<<20 {
			t.Errorf("%q: max_size %d in\n%s", in, c.Retention.MaxSize, out)
		}
		if strings.Contains(in, "24h") && c.Retention.MaxAge != 24*time.Hour {
			t.Errorf("%q: max_age lost:\n%s", in, out)
		}
		if strings.Contains(in, "8080") && c.HTTP != "0.0.0.0:8080" {
			t.Errorf("%q: http lost:\n%s", in, out)
		}
	}
	// The user's bound stays; bad input names the file.
	out, err := CollectorConfig("c.yaml", []byte("retention: {max_size: 5}\n"), 1000<<20)
	if err != nil || !strings.Contains(string(out), "max_size: 5") {
		t.Errorf("user max_size: %v\n%s", err, out)
	}
	if _, err := CollectorConfig("c.yaml", []byte("retention: 3\n"), 1<<30); err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("bad retention: %v", err)
	}
}
