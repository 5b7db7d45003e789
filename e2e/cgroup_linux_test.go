//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// cpuQuota creates a CPU cgroup whose processes together get quota of
// CPU time in every period (a slower machine, reproducibly), and returns
// the cgroup.procs file a process writes its PID into to join it. It
// uses the cgroup v1 cpu controller (cpu.cfs_quota_us) where it is
// mounted, otherwise cgroup v2 (cpu.max). It skips through
// tools/peertest when neither can be used. The cgroup is removed when
// the test ends, after the processes left in it are moved to its parent.
func cpuQuota(t testing.TB, quota, period time.Duration) string {
	t.Helper()
	us := func(d time.Duration) string { return fmt.Sprint(d.Microseconds()) }
	name := fmt.Sprintf("mira-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	var parent string
	var files [][2]string
	for _, v1 := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(v1, "cpu.cfs_quota_us")); err == nil {
			parent = v1
			files = [][2]string{{"cpu.cfs_period_us", us(period)}, {"cpu.cfs_quota_us", us(quota)}}
			break
		}
	}
	if parent == "" {
		ctl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err != nil || !strings.Contains(" "+strings.TrimSpace(string(ctl))+" ", " cpu ") {
			peertest.Missing(t, "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cgroup.controllers): %v %q", err, ctl)
		}
		parent = "/sys/fs/cgroup"
		sub, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
		if !strings.Contains(" "+strings.TrimSpace(string(sub))+" ", " cpu ") {
			if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+cpu"), 0); err != nil {
				peertest.Missing(t, "cgroup v2: enable the cpu controller for children of %s: %v", parent, err)
			}
		}
		files = [][2]string{{"cpu.max", us(quota) + " " + us(period)}}
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "read-only") {
			peertest.Missing(t, "cgroup: %v", err)
		}
		t.Fatalf("cgroup: %v", err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			// A process that is exiting may still be listed: move what is
			// left to the parent, then remove the directory.
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, pid := range strings.Fields(string(procs)) {
				os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0)
			}
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("cgroup %s not removed: %v (processes: %q)", dir, err, procs)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0); err != nil {
			t.Fatalf("cgroup %s: %s = %s: %v", dir, f[0], f[1], err)
		}
	}
	return filepath.Join(dir, "cgroup.procs")
}

// inCgroup returns a command line (program and arguments, for start)
// that joins the cgroup whose cgroup.procs file is procs and then execs
// name with args: every thread the program starts is in the cgroup.
func inCgroup(procs, name string, args ...string) (string, []string) {
	return "sh", append([]string{"-c", `echo $$ >"$0" && exec "$@"`, procs, name}, args...)
}
