//go:build linux

package vethtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mira-project/mira/tools/peertest"
	"golang.org/x/sys/unix"
)

// Pair is a veth pair joining two new network namespaces. Index 0 and 1
// name the two sides.
type Pair struct {
	NS    [2]string           // namespace names, as in /run/netns
	Iface [2]string           // the veth end in each namespace
	Addr  [2]netip.Addr       // IPv4 address of each end, in 10.99.0.0/24
	MAC   [2]net.HardwareAddr // MAC of each end
}

var seq atomic.Uint32

// New creates a pair and removes it when the test ends. It skips the
// test (through tools/peertest, so it fails instead when
// MIRA_REQUIRE_PEERS=1) when iproute2's ip is missing or when the kernel
// refuses to create a network namespace for lack of privilege.
func New(t testing.TB) *Pair {
	t.Helper()
	peertest.Program(t, "ip") // iproute2
	peertest.NetNamespaces(t)
	id := fmt.Sprintf("m%x%d", os.Getpid(), seq.Add(1))
	p := &Pair{
		NS:    [2]string{id + "a", id + "b"},
		Iface: [2]string{id + "a", id + "b"},
		Addr:  [2]netip.Addr{netip.AddrFrom4([4]byte{10, 99, 0, 1}), netip.AddrFrom4([4]byte{10, 99, 0, 2})},
		MAC:   [2]net.HardwareAddr{{0x02, 0x6d, 0x69, 0x72, 0x61, 0x01}, {0x02, 0x6d, 0x69, 0x72, 0x61, 0x02}},
	}
	if out, err := exec.Command("ip", "netns", "add", p.NS[0]).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", p.NS[0], err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.NS[0]).Run() })
	ip(t, "netns", "add", p.NS[1])
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.NS[1]).Run() })
	for i := range 2 {
		if err := p.Do(i, disableIPv6); err != nil {
			t.Fatalf("namespace %s: %v", p.NS[i], err)
		}
	}
	ip(t, "link", "add", p.Iface[0], "netns", p.NS[0], "type", "veth", "peer", "name", p.Iface[1], "netns", p.NS[1])
	for i := range 2 {
		o := 1 - i
		ip(t, "-n", p.NS[i], "link", "set", "lo", "up")
		ip(t, "-n", p.NS[i], "link", "set", p.Iface[i], "address", p.MAC[i].String())
		ip(t, "-n", p.NS[i], "addr", "add", p.Addr[i].String()+"/24", "dev", p.Iface[i])
		ip(t, "-n", p.NS[i], "neigh", "add", p.Addr[o].String(), "lladdr", p.MAC[o].String(), "dev", p.Iface[i], "nud", "permanent")
	}
	for i := range 2 {
		ip(t, "-n", p.NS[i], "link", "set", p.Iface[i], "up")
	}
	return p
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// disableIPv6 runs inside a namespace: /proc/sys/net shows the sysctls
// of the opening thread's namespace.
func disableIPv6() error {
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Do runs fn on an OS thread switched into namespace side (0 or 1) and
// returns its error. Sockets fn opens belong to that namespace.
func (p *Pair) Do(side int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked only once it is back in its own
		// namespace; otherwise it exits with the goroutine.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vethtest: open own namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+p.NS[side], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vethtest: open namespace %s: %w", p.NS[side], err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vethtest: enter namespace %s: %w", p.NS[side], err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Command returns a command that runs the named program inside namespace
// side (through ip netns exec), for example tcpreplay on p.Iface[1].
func (p *Pair) Command(side int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", p.NS[side], name}, args...)...)
}

// SetMTU sets the MTU of both ends, for replaying captures with frames
// larger than veth's default 1500-byte MTU.
func (p *Pair) SetMTU(mtu int) error {
	for i := range 2 {
		out, err := exec.Command("ip", "-n", p.NS[i], "link", "set", p.Iface[i], "mtu", fmt.Sprint(mtu)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("vethtest: set mtu %d on %s: %v: %s", mtu, p.Iface[i], err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Promiscuity returns the interface's promiscuity count (how many
// sockets or users asked for promiscuous mode), read with ip -d.
func (p *Pair) Promiscuity(side int) (int, error) {
	out, err := exec.Command("ip", "-n", p.NS[side], "-d", "link", "show", p.Iface[side]).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("vethtest: ip link show: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "promiscuity" {
			var n int
			if _, err := fmt.Sscan(f[i+1], &n); err != nil {
				return 0, fmt.Errorf("vethtest: promiscuity %q: %v", f[i+1], err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("vethtest: no promiscuity in %q", out)
}
