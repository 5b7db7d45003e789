package exporter

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// needPeer finds a peer program: it skips when it is absent, or fails
// when peers are required (peertest.Required).
func needPeer(t testing.TB, name string) string {
	t.Helper()
	return peertest.Program(t, name)
}

// freeUDPPort asks the kernel for a free UDP port on 127.0.0.1.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// nfcapd runs a real nfcapd on 127.0.0.1:port writing into dir.
type nfcapd struct {
	log  strings.Builder
	cmd  *exec.Cmd
	port int
	dir  string
}

func startNfcapd(t *testing.T) *nfcapd {
	t.Helper()
	bin := needPeer(t, "nfcapd")
	needPeer(t, "nfdump")
	n := &nfcapd{port: freeUDPPort(t), dir: t.TempDir()}
	n.cmd = exec.Command(bin, "-b", "127.0.0.1", "-p", strconv.Itoa(n.port), "-w", n.dir, "-t", "3600", "-I", "mira")
	n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Kill()
			n.cmd.Wait()
		}
	})
	peertest.WaitUntil(t, 10*time.Second, "nfcapd to bind its port", func() bool { _, ok := peertest.UDPQueue(n.port); return ok })
	return n
}

// stop waits until nfcapd has read every queued datagram, then stops it
// with SIGTERM, which flushes and renames its current file.
func (n *nfcapd) stop(t *testing.T) {
	t.Helper()
	peertest.WaitUntil(t, 10*time.Second, "nfcapd to drain its socket", func() bool { q, _ := peertest.UDPQueue(n.port); return q == 0 })
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
}

func (n *nfcapd) dump(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("nfdump", append([]string{"-R", n.dir}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nfdump %v: %v\n%s", args, err, out)
	}
	return string(out)
}
