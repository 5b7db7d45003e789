package agent

import (
	"crypto"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"
)

// RFC 3414 A.3.2: "maplesyrup" localized for engine 00..02 with SHA-1.
func TestPasswordToKeyRFC3414(t *testing.T) {
	eng, _ := hex.DecodeString("000000000000000000000002")
	got := hex.EncodeToString(passwordToKey(crypto.SHA1, "maplesyrup", eng))
	if want := "6695febc9288e36282235fc7151f128497b38f3f"; got != want {
		t.Fatalf("key %s, want %s", got, want)
	}
}

func TestEngineBootsPersist(t *testing.T) {
	state := filepath.Join(t.TempDir(), "snmp.state")
	p := ProviderFunc(func(*Snapshot) {})
	var id []byte
	for want := uint32(1); want <= 3; want++ {
		a, err := New(&Config{StateFile: state}, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.EngineBoots(); got != want {
			t.Fatalf("start %d: boots %d", want, got)
		}
		if id != nil && string(a.EngineID()) != string(id) {
			t.Fatalf("engine id changed across restarts: %x then %x", id, a.EngineID())
		}
		id = a.EngineID()
	}
	// The value is served as snmpEngineBoots.0.
	a, err := New(&Config{StateFile: state}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startAgent(t, a)
	r := snmpCmd(t, "snmpget", "-v2c", "-c", "public", "-Oqv", addr, "SNMP-FRAMEWORK-MIB::snmpEngineBoots.0")
	if strings.TrimSpace(r.stdout) != "4" {
		t.Fatalf("snmpEngineBoots = %q (%s)", r.stdout, r.stderr)
	}
	// A corrupt state file is an error, not a silent reset of boots.
	if err := os.WriteFile(state, []byte("engine-id zz\nboots 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&Config{StateFile: state}, p, nil); err == nil || !strings.Contains(err.Error(), "bad engine-id") {
		t.Fatalf("corrupt state: err = %v", err)
	}
}

// TestV3AfterRestart checks a manager that cached the engine's boots and
// time before a restart is resynchronised by the notInTimeWindow report.
func TestV3AfterRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "snmp.state")
	cfg := testConfig()
	cfg.StateFile = state
	p := newFakeProbe(t)
	a1, err := New(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := New(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a2.EngineBoots() != a1.EngineBoots()+1 {
		t.Fatalf("boots %d then %d", a1.EngineBoots(), a2.EngineBoots())
	}
	addr := startAgent(t, a2)
	// -Z gives the old boots: the first request is out of the window.
	args := append(append([]string{}, v3AuthPriv...), "-Z", "1,10", "-e", "0x"+hex.EncodeToString(a1.EngineID()), "-t", "1", "-r", "1", addr, "SNMPv2-MIB::sysName.0")
	r := snmpCmd(t, "snmpget", args...)
	if a2.stats.usm[usmNotInTimeWindows].Load() == 0 {
		t.Fatalf("no notInTimeWindow report was sent (rc=%d %s %s)", r.code, r.stdout, r.stderr)
	}
}

func testAgent(t testing.TB, cfg *Config) *Agent {
	t.Helper()
	p := newFakeProbe(t)
	p.Advance(t, 300)
	a, err := New(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestV1Counter64(t *testing.T) {
	a := testAgent(t, testConfig())
	addr := startAgent(t, a)
	// GET of a Counter64 over v1 is noSuchName (RFC 3584 4.2.2.1).
	r := snmpCmd(t, "snmpget", "-v1", "-c", "public", addr, "MIRA-PROBE-MIB::miraCapPackets.1")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "noSuchName") {
		t.Errorf("v1 get Counter64: rc=%d %q %q", r.code, r.stdout, r.stderr)
	}
	// GETNEXT skips Counter64 objects: a v1 walk of the capture table
	// has no Counter64 in it but still has the other columns.
	r = snmpCmd(t, "snmpwalk", "-v1", "-c", "public", "-On", addr, "MIRA-PROBE-MIB::miraCaptureTable")
	if r.code != 0 || strings.Contains(r.stdout, "Counter64") || !strings.Contains(r.stdout, "Gauge32") {
		t.Errorf("v1 walk: rc=%d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = snmpCmd(t, "snmpwalk", "-v2c", "-c", "public", "-On", addr, "MIRA-PROBE-MIB::miraCaptureTable")
	if !strings.Contains(r.stdout, "Counter64") {
		t.Errorf("v2c walk has no Counter64:\n%s", r.stdout)
	}
}

func TestGetBulkSemantics(t *testing.T) {
	a := testAgent(t, testConfig())
	addr := startAgent(t, a)
	// One non-repeater (sysName) and two repeaters, 3 repetitions.
	r := snmpCmd(t, "snmpbulkget", "-v2c", "-c", "public", "-On", "-Cn1", "-Cr3", addr,
		"SNMPv2-MIB::sysContact.0", "MIRA-PROBE-MIB::miraQueueName", "MIRA-PROBE-MIB::miraFlowsEvicted.0")
	if r.code != 0 {
		t.Fatalf("snmpbulkget: %s", r.stderr)
	}
	lines := walkLines(t, r.stdout)
	oids := make([]string, len(lines))
	for i, l := range lines {
		oids[i] = l.oid
	}
	got := strings.Join(oids, " ")
	exp := "1.3.6.1.2.1.1.5.0 " +
		"1.3.6.1.4.1.32473.1.1.3.4.1.2.1 1.3.6.1.4.1.32473.1.1.5.1.1.2.3 " +
		"1.3.6.1.4.1.32473.1.1.3.4.1.2.2 1.3.6.1.4.1.32473.1.1.5.1.1.2.7 " +
		"1.3.6.1.4.1.32473.1.1.3.4.1.3.1 1.3.6.1.4.1.32473.1.1.5.1.1.3.3"
	if got != exp {
		t.Errorf("bulk OIDs\n got %s\nwant %s", got, exp)
	}
	// Past the end of the MIB view: one endOfMibView, then the response
	// stops because every repeater has ended (as snmpd does).
	r = snmpCmd(t, "snmpbulkget", "-v2c", "-c", "public", "-On", "-Cn0", "-Cr2", addr, ".1.3.6.1.6.3.15.1.1.6.0")
	if c := strings.Count(r.stdout, "No more variables left in this MIB View"); c != 1 || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("endOfMibView count %d:\n%s", c, r.stdout)
	}
}

// TestTooBig checks responses never exceed the size limit: GETBULK is
// cut short, a GET that cannot fit gets tooBig.
func TestTooBig(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 484
	a := testAgent(t, cfg)
	src := netip.MustParseAddrPort("127.0.0.1:1161")
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public"}
	req, err := g.SnmpEncodePacket(gosnmp.GetBulkRequest, []gosnmp.SnmpPDU{{Name: ".1.3.6.1.4.1.32473", Type: gosnmp.Null}}, 0, 200)
	if err != nil {
		t.Fatal(err)
	}
	resp := a.Handle(req, src)
	if resp == nil || len(resp) > 484 {
		t.Fatalf("bulk response of %d octets", len(resp))
	}
	pkt, err := g.SnmpDecodePacket(resp)
	if err != nil {
		t.Fatal(err)
	}
	if pkt.Error != gosnmp.NoError || len(pkt.Variables) < 5 {
		t.Fatalf("bulk: error %v with %d variables", pkt.Error, len(pkt.Variables))
	}
	var names []gosnmp.SnmpPDU
	for i := 0; i < 40; i++ {
		names = append(names, gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null})
	}
	req, err = g.SnmpEncodePacket(gosnmp.GetRequest, names, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp = a.Handle(req, src)
	pkt, err = g.SnmpDecodePacket(resp)
	if err != nil {
		t.Fatal(err)
	}
	if pkt.Error != gosnmp.TooBig || len(pkt.Variables) != 0 || len(resp) > 484 {
		t.Fatalf("get: error %v, %d variables, %d octets; want tooBig, none", pkt.Error, len(pkt.Variables), len(resp))
	}
}

func TestCommunitySourceRestriction(t *testing.T) {
	cfg := &Config{Communities: []Community{{Name: "lab", Sources: []string{"192.0.2.0/24"}}}}
	a := testAgent(t, cfg)
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "lab"}
	req, err := g.SnmpEncodePacket(gosnmp.GetRequest, []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.5.0", Type: gosnmp.Null}}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if resp := a.Handle(req, netip.MustParseAddrPort("192.0.2.7:5000")); resp == nil {
		t.Error("allowed source got no answer")
	}
	if resp := a.Handle(req, netip.MustParseAddrPort("[::ffff:192.0.2.8]:5000")); resp == nil {
		t.Error("allowed source (v4-mapped) got no answer")
	}
	if resp := a.Handle(req, netip.MustParseAddrPort("198.51.100.1:5000")); resp != nil {
		t.Error("source outside the prefix got an answer")
	}
	if n := a.stats.InBadCommunityNames.Load(); n != 1 {
		t.Errorf("InBadCommunityNames = %d, want 1", n)
	}
}

func TestConfig(t *testing.T) {
	good := `
sys_name: probe-1
communities:
  - name: public
    sources: [127.0.0.0/8, "::1/128"]
users:
  - name: ops
    auth: SHA-256
    auth_password: secret-auth
    priv: AES
    priv_password: secret-priv
state_file: /var/lib/mira/snmp.state
notification_targets:
  - address: 192.0.2.1:162
    version: v3
    user: ops
    inform: true
poll_interval: 2s
`
	c, err := ParseConfig("probe.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Users[0].Auth != "SHA-256" || c.Targets[0].User != "ops" || c.PollInterval.Seconds() != 2 {
		t.Fatalf("parsed %+v", c)
	}
	if _, err := ParseConfig("empty.yaml", nil); err != nil {
		t.Fatalf("empty config: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "sys_nam: x\n", `probe.yaml:1: key "sys_nam": unknown key`},
		{"bad prefix", "communities:\n  - name: c\n    sources: [300.1.1.1/8]\n", `probe.yaml:3: key "communities[0].sources[0]"`},
		{"no sources", "communities:\n  - name: c\n", `key "communities[0].sources": no source prefixes`},
		{"bad auth", "users:\n  - name: u\n    auth: MD5\n    auth_password: 12345678\n", `probe.yaml:3: key "users[0].auth": unknown auth protocol`},
		{"short password", "users:\n  - name: u\n    auth: SHA\n    auth_password: short\n", `key "users[0].auth_password"`},
		{"bad priv", "users:\n  - name: u\n    auth: SHA\n    auth_password: 12345678\n    priv: DES\n    priv_password: 12345678\n", `key "users[0].priv": unknown privacy protocol`},
		{"target user", "notification_targets:\n  - address: h:162\n    version: v3\n    user: nobody\n", `probe.yaml:4: key "notification_targets[0].user"`},
		{"engine id", "engine_id: 80ab\n", `key "engine_id": 2 octets`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("probe.yaml", []byte(tc.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want *ConfigError containing %q", err, tc.want)
			}
		})
	}
}

// TestSegmentsOrdered checks the segments are disjoint and in OID order,
// and that each builder emits its variables already sorted (the sort in
// seg is only a safety net).
func TestSegmentsOrdered(t *testing.T) {
	a := testAgent(t, testConfig())
	a.mu.Lock()
	defer a.mu.Unlock()
	a.beginRequest()
	for k, sg := range segments {
		if k > 0 {
			prev := segments[k-1].prefix
			if oidCompare(prev, sg.prefix) >= 0 || hasPrefix(sg.prefix, prev) {
				t.Errorf("segment %v does not follow %v", sg.prefix, prev)
			}
		}
		var v view
		sg.build(a, &v)
		if !v.sorted() {
			t.Errorf("segment %v built out of order", sg.prefix)
		}
		for i := range v.vars {
			if !hasPrefix(v.oid(i), sg.prefix) {
				t.Errorf("segment %v holds %v", sg.prefix, v.oid(i))
			}
		}
	}
}

// TestViewBuildNoAllocs: once warm, building every segment from a
// provider that reuses its slices allocates nothing, so polling does not
// churn the heap of the probe process.
func TestViewBuildNoAllocs(t *testing.T) {
	a, err := New(testConfig(), benchProbe(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	run := func() {
		a.beginRequest()
		for k := range segments {
			a.seg(k)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("building the view allocates %.1f times", n)
	}
}
