package agent

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/tools/peertest"
)

func TestIfRowFromLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   linkStats
		want ifRow
	}{
		{"loopback", linkStats{Index: 1, Name: "lo", EncapType: "loopback", MTU: 65536, Up: true, OperState: "unknown",
			HardwareAddr: make([]byte, 6), RxBytes: 100, RxPackets: 10, TxBytes: 100, TxPackets: 10},
			ifRow{Index: 1, Name: "lo", Type: 24, MTU: 65536, AdminStatus: 1, OperStatus: 1,
				InOctets: 100, InUcast: 10, OutOctets: 100, OutUcast: 10}},
		{"ethernet down", linkStats{Index: 3, Name: "eth1", EncapType: "ether", MTU: 1500, SpeedMbps: 1000, Up: true, OperState: "down",
			HardwareAddr: []byte{2, 0, 0, 0, 0, 1}, RxPackets: 10, RxMulticast: 4, RxDropped: 2, RxErrors: 1, Promisc: true},
			ifRow{Index: 3, Name: "eth1", Type: 6, MTU: 1500, SpeedBPS: 1e9, PhysAddress: "\x02\x00\x00\x00\x00\x01",
				AdminStatus: 1, OperStatus: 2, InUcast: 6, InMulticast: 4, InDiscards: 2, InErrors: 1, Promisc: true}},
		{"admin down", linkStats{Index: 4, Name: "x", EncapType: "ether", OperState: "unknown"},
			ifRow{Index: 4, Name: "x", Type: 6, AdminStatus: 2, OperStatus: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ifRowFromLink(&tc.in); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestIfTableMatchesSnmpd serves IF-MIB for the loopback interface and
// compares its static columns with what net-snmp's snmpd reports for it.
func TestIfTableMatchesSnmpd(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var lo *net.Interface
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 {
			lo = &ifs[i]
			break
		}
	}
	if lo == nil {
		peertest.Missing(t, "no loopback interface among %d", len(ifs))
	}
	ref := startSnmpd(t, "")
	p := newFakeProbe(t)
	p.ifIndex = lo.Index
	a, err := New(testConfig(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := startAgent(t, a)
	x := "." + strconv.Itoa(lo.Index)
	static := []string{"IF-MIB::ifIndex" + x, "IF-MIB::ifDescr" + x, "IF-MIB::ifType" + x, "IF-MIB::ifMtu" + x,
		"IF-MIB::ifPhysAddress" + x, "IF-MIB::ifAdminStatus" + x, "IF-MIB::ifOperStatus" + x,
		"IF-MIB::ifName" + x, "IF-MIB::ifPromiscuousMode" + x, "IF-MIB::ifConnectorPresent" + x}
	get := func(addr string, names ...string) string {
		r := snmpCmd(t, "snmpget", append([]string{"-v2c", "-c", "public", addr}, names...)...)
		if r.code != 0 {
			t.Fatalf("snmpget %s: %s", addr, r.stderr)
		}
		return r.stdout
	}
	if got, want := get(ours, static...), get(ref, static...); got != want {
		t.Errorf("ifTable static columns differ\nagent:\n%s\nsnmpd:\n%s", got, want)
	}
	// Counters: ours is read after snmpd's and before the kernel's own
	// statistics, and loopback counters only grow, so ours lies between
	// the two (other tests may be busy on loopback meanwhile).
	counters := []string{"IF-MIB::ifHCInOctets" + x, "IF-MIB::ifHCOutUcastPkts" + x}
	kernel := []string{"rx_bytes", "tx_packets"}
	want := strings.Fields(get(ref, counters...))
	got := strings.Fields(get(ours, counters...))
	for i := 3; i < len(want) && i < len(got); i += 4 {
		w, _ := strconv.ParseUint(want[i], 10, 64)
		g, _ := strconv.ParseUint(got[i], 10, 64)
		raw, err := os.ReadFile(filepath.Join("/sys/class/net", lo.Name, "statistics", kernel[i/4]))
		if err != nil {
			t.Fatal(err)
		}
		k, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if g < w || g > k {
			t.Errorf("%s: agent %d, not between snmpd's %d and the kernel's later %d", counters[i/4], g, w, k)
		}
	}
	if len(got) != 8 || len(want) != 8 {
		t.Errorf("counter output: agent %q snmpd %q", got, want)
	}
	r := snmpCmd(t, "snmpget", "-v2c", "-c", "public", "-Oqv", ours, "IF-MIB::ifNumber.0")
	if strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("ifNumber = %q, want 1", r.stdout)
	}
	r = snmpCmd(t, "snmptable", "-v2c", "-c", "public", "-Cf", "|", "-CH", ours, "IF-MIB::ifXTable")
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "lo|") {
		t.Errorf("snmptable ifXTable: rc=%d %q %s", r.code, r.stdout, r.stderr)
	}
}
