package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeUDPPort returns a loopback UDP port that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startSnmpd runs net-snmp's snmpd with the same communities and users as
// testConfig and returns its address once it has finished starting.
func startSnmpd(t testing.TB, extra string) string {
	t.Helper()
	bin := needPeer(t, "snmpd")
	dir := t.TempDir()
	port := freeUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`agentAddress udp:%s
rocommunity public 127.0.0.1
createUser ops SHA-256 "ops-auth-pass" AES "ops-priv-pass"
rouser ops priv
createUser monitor SHA-512 "monitor-auth-pass"
rouser monitor auth
master no
sysName snmpd-reference
%s
`, addr, extra)
	cf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-f", "-Lo", "-C", "-c", cf, "--persistentDir="+dir, "-M", mibDirs(t), "-m", "SNMPv2-MIB:IF-MIB")
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+dir, "HOME="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var log []string
		for sc.Scan() {
			log = append(log, sc.Text())
			if strings.HasPrefix(sc.Text(), "NET-SNMP version") {
				ready <- ""
				for sc.Scan() {
				}
				return
			}
		}
		ready <- strings.Join(log, "\n")
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			t.Fatalf("snmpd did not start:\n%s", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("snmpd did not start within 20s")
	}
	return addr
}

// TestRejectionsMatchSnmpd sends the same bad requests to net-snmp's
// snmpd and to the agent and checks that the client reports the same
// thing for both.
func TestRejectionsMatchSnmpd(t *testing.T) {
	ref := startSnmpd(t, "")
	p := newFakeProbe(t)
	cfg := testConfig()
	a, err := New(cfg, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := startAgent(t, a)
	quick := []string{"-t", "1", "-r", "0"}
	cases := []struct {
		name string
		tool string
		args []string
	}{
		{"wrong community", "snmpget", []string{"-v2c", "-c", "wrong"}},
		{"v1 wrong community", "snmpget", []string{"-v1", "-c", "private"}},
		{"wrong auth password", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "not-the-pass", "-x", "AES", "-X", "ops-priv-pass"}},
		{"wrong auth protocol", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA", "-A", "ops-auth-pass", "-x", "AES", "-X", "ops-priv-pass"}},
		{"wrong privacy key", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "ops-auth-pass", "-x", "AES", "-X", "not-the-priv-pass"}},
		{"authNoPriv for a priv user", "snmpget", []string{"-v3", "-l", "authNoPriv", "-u", "ops", "-a", "SHA-256", "-A", "ops-auth-pass"}},
		{"noAuthNoPriv for a priv user", "snmpget", []string{"-v3", "-l", "noAuthNoPriv", "-u", "ops"}},
		{"unknown user", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "nobody", "-a", "SHA-256", "-A", "ops-auth-pass", "-x", "AES", "-X", "ops-priv-pass"}},
		{"authPriv for an auth-only user", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "monitor", "-a", "SHA-512", "-A", "monitor-auth-pass", "-x", "AES", "-X", "monitor-priv-pass"}},
		{"stale time window", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "ops-auth-pass", "-x", "AES", "-X", "ops-priv-pass", "-Z", "1,99999"}},
		{"boots from the future", "snmpget", []string{"-v3", "-l", "authNoPriv", "-u", "monitor", "-a", "SHA-512", "-A", "monitor-auth-pass", "-Z", "7,5"}},
		{"unknown engine id", "snmpget", []string{"-v3", "-l", "authPriv", "-u", "ops", "-a", "SHA-256", "-A", "ops-auth-pass", "-x", "AES", "-X", "ops-priv-pass", "-e", "0x80001f8880aabbccddeeff0011", "-Z", "1,10"}},
		{"set v2c", "snmpset", []string{"-v2c", "-c", "public"}},
		{"set v1", "snmpset", []string{"-v1", "-c", "public"}},
		{"set v3", "snmpset", append([]string{}, v3AuthPriv[:2]...)},
		{"no such instance", "snmpget", []string{"-v2c", "-c", "public", "SNMPv2-MIB::sysName.1"}},
		{"no such object", "snmpget", []string{"-v2c", "-c", "public", ".1.3.6.1.2.1.1.99.0"}},
		{"v1 no such name", "snmpget", []string{"-v1", "-c", "public", ".1.3.6.1.2.1.1.99.0"}},
		{"v3 no such object", "snmpget", append(append([]string{}, v3AuthPriv...), ".1.3.6.1.2.1.1.99.0")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{}, tc.args...)
			if tc.name == "set v3" {
				args = append([]string{}, v3AuthPriv...)
			}
			target := []string{"SNMPv2-MIB::sysName.0"}
			if strings.HasPrefix(args[len(args)-1], ".") || strings.HasSuffix(args[len(args)-1], ".1") {
				target = args[len(args)-1:]
				args = args[:len(args)-1]
			}
			if tc.tool == "snmpset" {
				target = append(target, "s", "x")
			}
			run := func(addr string) cmdResult {
				full := append(append(append(append([]string{}, quick...), args...), addr), target...)
				r := snmpCmd(t, tc.tool, full...)
				r.stderr = strings.ReplaceAll(r.stderr, addr, "ADDR")
				r.stdout = strings.ReplaceAll(r.stdout, addr, "ADDR")
				return r
			}
			want := run(ref)
			got := run(ours)
			if got != want {
				t.Errorf("agent:  rc=%d stdout=%q stderr=%q\nsnmpd:  rc=%d stdout=%q stderr=%q",
					got.code, got.stdout, got.stderr, want.code, want.stdout, want.stderr)
			}
			if want.code == 0 && want.stderr == "" && !strings.Contains(want.stdout, "No Such") {
				t.Errorf("case does not exercise a rejection: snmpd answered %q", want.stdout)
			}
		})
	}
}
