package peertest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// effectiveCaps reads the effective capability set from /proc/self/status.
func effectiveCaps(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return 0
}

// TestPrivileges: each check passes exactly when the process holds the
// capability it stands for, and otherwise skips (fails when required).
func TestPrivileges(t *testing.T) {
	caps := effectiveCaps(t)
	_, err := os.Stat("/dev/fuse")
	fuse := err == nil
	for _, tc := range []struct {
		name  string
		cap   uint
		dev   bool // the device it needs is there
		check func(testing.TB)
	}{
		{"NetNamespaces", unix.CAP_SYS_ADMIN, true, NetNamespaces},
		{"RawSockets", unix.CAP_NET_RAW, true, RawSockets},
		{"FUSE", unix.CAP_SYS_ADMIN, fuse, FUSE},
		{"Tmpfs", unix.CAP_SYS_ADMIN, true, func(tb testing.TB) { Tmpfs(tb, 1<<20) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := caps&(1<<tc.cap) != 0 && tc.dev
			for _, required := range []string{"", "1"} {
				t.Setenv("MIRA_REQUIRE_PEERS", required)
				ended, msg, _ := run(t, func(tb testing.TB) string { tc.check(tb); return "" })
				want := ""
				if !held {
					want = map[string]string{"": "skip", "1": "fatal"}[required]
				}
				if ended != want {
					t.Fatalf("capability held %v, MIRA_REQUIRE_PEERS=%q: ended %q (%s), want %q", held, required, ended, msg, want)
				}
			}
		})
	}
}
