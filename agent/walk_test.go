package agent

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/mib"
)

// expectedMIRA lists the MIRA-PROBE-MIB variables a walk must return for
// the snapshot, as snmpwalk -On -OU -Oe prints them with the MIB loaded.
// It is written from the MIB, independently of the agent's view code.
func expectedMIRA(s *Snapshot) []walkLine {
	var out []walkLine
	add := func(oid, idx, typ, val string) {
		out = append(out, walkLine{oid + "." + idx, typ, val})
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	add(mib.MiraProbeName, "0", "STRING", s.Name)
	add(mib.MiraProbeVersion, "0", "STRING", s.Version)
	add(mib.MiraProbeObservationDomain, "0", "Gauge32", u(uint64(s.ObservationDomain)))
	st := s.StartTime.UTC()
	add(mib.MiraProbeStartTime, "0", "STRING", fmt.Sprintf("%d-%d-%d,%d:%d:%d.%d,+0:0", st.Year(), st.Month(), st.Day(), st.Hour(), st.Minute(), st.Second(), st.Nanosecond()/1e8))
	add(mib.MiraProbeReloads, "0", "Counter64", u(s.ReloadsApplied))
	add(mib.MiraProbeReloadsRefused, "0", "Counter64", u(s.ReloadsRefused))
	if lr := s.LastReload.UTC(); s.LastReload.IsZero() {
		add(mib.MiraProbeLastReload, "0", "STRING", "0-1-1,0:0:0.0")
	} else {
		add(mib.MiraProbeLastReload, "0", "STRING", fmt.Sprintf("%d-%d-%d,%d:%d:%d.%d,+0:0", lr.Year(), lr.Month(), lr.Day(), lr.Hour(), lr.Minute(), lr.Second(), lr.Nanosecond()/1e8))
	}
	for i, c := range s.Interfaces {
		x := strconv.Itoa(i + 1)
		add(mib.MiraCapName, x, "STRING", c.Name)
		add(mib.MiraCapIfIndex, x, "INTEGER", strconv.Itoa(c.IfIndex))
		add(mib.MiraCapLinkType, x, "Gauge32", u(uint64(c.LinkType)))
		add(mib.MiraCapPackets, x, "Counter64", u(c.Packets))
		add(mib.MiraCapOctets, x, "Counter64", u(c.Octets))
		add(mib.MiraCapKernelDrops, x, "Counter64", u(c.Drops))
		var tot uint64
		for j, d := range c.DecodeErrors {
			tot += d.Count
			y := x + "." + strconv.Itoa(j+1)
			add(mib.MiraDecErrReason, y, "STRING", d.Reason)
			add(mib.MiraDecErrPackets, y, "Counter64", u(d.Count))
		}
		add(mib.MiraCapDecodeErrors, x, "Counter64", u(tot))
	}
	p := s.Pipeline
	add(mib.MiraRegulationState, "0", "INTEGER", strconv.Itoa(p.RegulationState))
	add(mib.MiraSamplingRate, "0", "Gauge32", u(uint64(p.SamplingRate)))
	add(mib.MiraOverloadEvents, "0", "Counter64", u(p.OverloadEvents))
	for i, q := range p.Queues {
		x := strconv.Itoa(i + 1)
		add(mib.MiraQueueName, x, "STRING", q.Name)
		add(mib.MiraQueueDepth, x, "Gauge32", u(uint64(q.Depth)))
		add(mib.MiraQueueCapacity, x, "Gauge32", u(uint64(q.Capacity)))
		add(mib.MiraQueueDrops, x, "Counter64", u(q.Drops))
	}
	add(mib.MiraSelOutOfScope, "0", "Counter64", u(p.SelOutOfScope))
	add(mib.MiraSelUnsampled, "0", "Counter64", u(p.SelUnsampled))
	add(mib.MiraRegulatedOut, "0", "Counter64", u(p.RegulatedOut))
	add(mib.MiraRegulationChanges, "0", "Counter64", u(p.RegulationChanges))
	f := s.Flows
	add(mib.MiraFlowsActive, "0", "Gauge32", u(uint64(f.Active)))
	add(mib.MiraFlowsCapacity, "0", "Gauge32", u(uint64(f.Capacity)))
	add(mib.MiraFlowsCreated, "0", "Counter64", u(f.Created))
	add(mib.MiraFlowsExpiredIdle, "0", "Counter64", u(f.ExpiredIdle))
	add(mib.MiraFlowsExpiredActive, "0", "Counter64", u(f.ExpiredActive))
	add(mib.MiraFlowsExpiredEnd, "0", "Counter64", u(f.ExpiredEnd))
	add(mib.MiraFlowsExpiredForced, "0", "Counter64", u(f.ExpiredForced))
	add(mib.MiraFlowsEvicted, "0", "Counter64", u(f.Evicted))
	for _, sy := range s.Symptoms {
		x := u(uint64(sy.ID))
		add(mib.MiraSymptomName, x, "STRING", sy.Name)
		add(mib.MiraSymptomOccurrences, x, "Counter64", u(sy.Occurrences))
		add(mib.MiraSymptomFlows, x, "Counter64", u(sy.Flows))
		add(mib.MiraSymptomBytesScanned, x, "Counter64", u(sy.BytesScanned))
	}
	for i, e := range s.Exporters {
		x := strconv.Itoa(i + 1)
		add(mib.MiraExpAddress, x, "STRING", e.Address)
		add(mib.MiraExpTransport, x, "INTEGER", strconv.Itoa(e.Transport))
		add(mib.MiraExpState, x, "INTEGER", strconv.Itoa(e.State))
		add(mib.MiraExpRecords, x, "Counter64", u(e.Records))
		add(mib.MiraExpMessages, x, "Counter64", u(e.Messages))
		add(mib.MiraExpTemplates, x, "Counter64", u(e.Templates))
		add(mib.MiraExpSpoolDepth, x, "Gauge32", u(uint64(e.SpoolDepth)))
		add(mib.MiraExpLastError, x, "STRING", e.LastError)
		add(mib.MiraExpDropped, x, "Counter64", u(e.Dropped))
		add(mib.MiraExpUnacknowledged, x, "Counter64", u(e.Unacknowledged))
		add(mib.MiraExpSpoolDropped, x, "Counter64", u(e.SpoolDropped))
	}
	sort.Slice(out, func(i, j int) bool {
		return oidCompare(mib.MustOID(out[i].oid), mib.MustOID(out[j].oid)) < 0
	})
	return out
}

func compareWalk(t *testing.T, what string, got, want []walkLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d variables, want %d", what, len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("%s: line %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// wireType is how snmpwalk names a base type.
var wireType = map[string]string{
	"Counter64": "Counter64", "Gauge32": "Gauge32", "Integer": "INTEGER", "OctetString": "STRING",
}

var v3AuthPriv = []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "ops-auth-pass", "-x", "AES", "-X", "ops-priv-pass"}

func testConfig() *Config {
	return &Config{
		Communities: []Community{{Name: "public", Sources: []string{"127.0.0.0/8"}}},
		Users: []User{
			{Name: "ops", Auth: "SHA-256", AuthPassword: "ops-auth-pass", Priv: "AES", PrivPassword: "ops-priv-pass"},
			{Name: "sha1", Auth: "SHA", AuthPassword: "sha1-auth-pass", Priv: "AES", PrivPassword: "sha1-priv-pass"},
			{Name: "sha224", Auth: "SHA-224", AuthPassword: "sha224-auth-pass", Priv: "AES", PrivPassword: "sha224-priv-pass"},
			{Name: "sha384", Auth: "SHA-384", AuthPassword: "sha384-auth-pass", Priv: "AES", PrivPassword: "sha384-priv-pass"},
			{Name: "sha512", Auth: "SHA-512", AuthPassword: "sha512-auth-pass", Priv: "AES", PrivPassword: "sha512-priv-pass"},
			{Name: "monitor", Auth: "SHA-512", AuthPassword: "monitor-auth-pass"},
		},
	}
}

// TestWalkMatchesProbe walks MIRA-PROBE-MIB with snmpwalk, snmpbulkwalk
// (v2c and v3 authPriv) while a capture is being processed and checks
// every variable, type and value against the probe's counters.
func TestWalkMatchesProbe(t *testing.T) {
	p := newFakeProbe(t)
	a, err := New(testConfig(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startAgent(t, a)
	opts := []string{"-On", "-OU", "-Oe"}
	for step := 0; step < 3; step++ {
		if !p.Advance(t, 500) {
			t.Fatal("capture ended too early")
		}
		var s Snapshot
		p.Snapshot(&s)
		want := expectedMIRA(&s)
		for _, tc := range []struct {
			tool string
			args []string
		}{
			{"snmpwalk", []string{"-v2c", "-c", "public"}},
			{"snmpbulkwalk", []string{"-v2c", "-c", "public", "-Cr7"}},
			{"snmpwalk", v3AuthPriv},
			{"snmpbulkwalk", append(append([]string{}, v3AuthPriv...), "-Cr50")},
		} {
			args := append(append(append([]string{}, tc.args...), opts...), addr, "MIRA-PROBE-MIB::miraProbeMIB")
			r := snmpCmd(t, tc.tool, args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("%s %v: rc=%d %s", tc.tool, tc.args, r.code, r.stderr)
			}
			compareWalk(t, fmt.Sprintf("step %d %s %s", step, tc.tool, tc.args[0]), walkLines(t, r.stdout), want)
		}
		if step == 0 {
			checkEveryObject(t, want)
		}
	}
}

// checkEveryObject checks that the walk covers every accessible object
// of the MIB with its base type.
func checkEveryObject(t *testing.T, lines []walkLine) {
	t.Helper()
	for _, o := range mib.Objects {
		if (o.Kind != mib.KindScalar && o.Kind != mib.KindColumn) || o.Access == "not-accessible" {
			continue
		}
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l.oid, o.OID+".") {
				found = true
				if l.typ != wireType[o.Base] {
					t.Errorf("%s served as %s, MIB says %s", o.Name, l.typ, o.Base)
				}
				break
			}
		}
		if !found {
			t.Errorf("%s not served", o.Name)
		}
	}
}

// TestGetFollowsCapture polls counters by name with snmpget while the
// capture advances.
func TestGetFollowsCapture(t *testing.T) {
	p := newFakeProbe(t)
	a, err := New(testConfig(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startAgent(t, a)
	names := []string{"MIRA-PROBE-MIB::miraCapPackets.1", "MIRA-PROBE-MIB::miraCapOctets.1",
		"MIRA-PROBE-MIB::miraFlowsCreated.0", "MIRA-PROBE-MIB::miraSymptomOccurrences.7"}
	last := uint64(0)
	for p.Advance(t, 700) {
		var s Snapshot
		p.Snapshot(&s)
		want := []uint64{s.Interfaces[0].Packets, s.Interfaces[0].Octets, s.Flows.Created, s.Symptoms[0].Occurrences}
		for _, args := range [][]string{{"-v2c", "-c", "public"}, v3AuthPriv} {
			r := snmpCmd(t, "snmpget", append(append(append([]string{}, args...), "-Oqv", "-OU", addr), names...)...)
			if r.code != 0 {
				t.Fatalf("snmpget: rc=%d %s", r.code, r.stderr)
			}
			got := strings.Fields(r.stdout)
			if len(got) != len(want) {
				t.Fatalf("snmpget output %q", r.stdout)
			}
			for i := range want {
				if got[i] != strconv.FormatUint(want[i], 10) {
					t.Errorf("%s = %s, probe has %d", names[i], got[i], want[i])
				}
			}
		}
		if s.Interfaces[0].Packets <= last {
			t.Fatalf("packets did not advance: %d", s.Interfaces[0].Packets)
		}
		last = s.Interfaces[0].Packets
		if last > 5000 {
			break
		}
	}
}

func TestSnmpTable(t *testing.T) {
	p := newFakeProbe(t)
	p.Advance(t, 1000)
	p.setExporter(1, ExporterSpooling, "dial tcp 192.0.2.11:4739: connection refused")
	a, err := New(testConfig(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := startAgent(t, a)
	var s Snapshot
	p.Snapshot(&s)
	for _, args := range [][]string{{"-v2c", "-c", "public"}, v3AuthPriv} {
		r := snmpCmd(t, "snmptable", append(append([]string{}, args...), "-Cf", "|", "-CH", "-OU", addr, "MIRA-PROBE-MIB::miraExporterTable")...)
		if r.code != 0 {
			t.Fatalf("snmptable: rc=%d %s", r.code, r.stderr)
		}
		var rows []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "|") {
				rows = append(rows, l)
			}
		}
		if len(rows) != len(s.Exporters) {
			t.Fatalf("snmptable rows:\n%s", r.stdout)
		}
		for i, e := range s.Exporters {
			state := map[int]string{1: "connected", 2: "connecting", 3: "spooling"}[e.State]
			want := strings.Join([]string{e.Address, map[int]string{1: "udp", 2: "tcp"}[e.Transport], state,
				strconv.FormatUint(e.Records, 10), strconv.FormatUint(e.Messages, 10), strconv.FormatUint(e.Templates, 10),
				strconv.FormatUint(uint64(e.SpoolDepth), 10), e.LastError, strconv.FormatUint(e.Dropped, 10),
				strconv.FormatUint(e.Unacknowledged, 10), strconv.FormatUint(e.SpoolDropped, 10)}, "|")
			if rows[i] != want {
				t.Errorf("row %d = %q, want %q", i, rows[i], want)
			}
		}
	}
}

// TestV3AuthProtocols polls with every supported authentication protocol
// (and AES-128 privacy), plus an authNoPriv user.
func TestV3AuthProtocols(t *testing.T) {
	a := testAgent(t, testConfig())
	addr := startAgent(t, a)
	for _, u := range testConfig().Users {
		level := "authPriv"
		if u.Priv == "" {
			level = "authNoPriv"
		}
		t.Run(u.Name, func(t *testing.T) {
			args := []string{"-v3", "-l", level, "-u", u.Name, "-a", u.Auth, "-A", u.AuthPassword}
			if u.Priv != "" {
				args = append(args, "-x", "AES", "-X", u.PrivPassword)
			}
			r := snmpCmd(t, "snmpget", append(args, "-Oqv", "-OU", addr, "MIRA-PROBE-MIB::miraProbeName.0", "MIRA-PROBE-MIB::miraCapPackets.1")...)
			if r.code != 0 || r.stdout != "probe-test\n300\n" {
				t.Errorf("rc=%d %q %s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
