package agent

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

func needPeer(t testing.TB, name string) string {
	t.Helper()
	return peertest.Program(t, name)
}

// mibDirs returns the -M path holding MIRA-PROBE-MIB and the IETF MIBs
// it and the tests import (shipped beside it in mib/).
func mibDirs(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../mib")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

const mibList = "SNMPv2-MIB:IF-MIB:SNMP-FRAMEWORK-MIB:SNMP-USER-BASED-SM-MIB:MIRA-PROBE-MIB"

// startAgent serves a on a loopback port and returns host:port.
func startAgent(t testing.TB, a *Agent) string {
	t.Helper()
	addr, stop := serveAgent(t, a)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	})
	return addr
}

// serveAgent runs a on a loopback port; stop ends it and returns what
// ServeConn returned.
func serveAgent(t testing.TB, a *Agent) (addr string, stop func() error) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.ServeConn(ctx, conn) }()
	return conn.LocalAddr().String(), func() error {
		cancel()
		return <-done
	}
}

type cmdResult struct {
	stdout, stderr string
	code           int
}

// snmpCmd runs a net-snmp tool with the MIBs loaded by name.
func snmpCmd(t testing.TB, tool string, args ...string) cmdResult {
	t.Helper()
	bin := needPeer(t, tool)
	full := append([]string{"-M", mibDirs(t), "-m", mibList}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH=/nonexistent", "HOME=/nonexistent")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", tool, err)
	}
	return cmdResult{so.String(), se.String(), code}
}

// walkLines parses "OID = TYPE: VALUE" lines of -On output.
func walkLines(t testing.TB, out string) []walkLine {
	t.Helper()
	var ls []walkLine
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		oid, rest, ok := strings.Cut(line, " = ")
		if !ok {
			// continuation of a multi-line string
			if len(ls) > 0 {
				ls[len(ls)-1].value += "\n" + line
				continue
			}
			t.Fatalf("bad walk line %q", line)
		}
		typ, val, ok := strings.Cut(rest, ": ")
		if !ok {
			typ, val = rest, ""
		}
		ls = append(ls, walkLine{strings.TrimPrefix(oid, "."), typ, val})
	}
	return ls
}

type walkLine struct{ oid, typ, value string }
