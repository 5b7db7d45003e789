package peertest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNamespaces skips the test (fails it under MIRA_REQUIRE_PEERS=1)
// when this process may not create network namespaces (CAP_SYS_ADMIN):
// it creates one on a locked thread, which is then discarded, and decides
// on the error the kernel returns.
func NetNamespaces(t testing.TB) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine, and
		// the namespace with it.
		runtime.LockOSThread()
		errc <- unix.Unshare(unix.CLONE_NEWNET)
	}()
	switch err := <-errc; {
	case errors.Is(err, os.ErrPermission):
		missing(t, "creating network namespaces needs CAP_SYS_ADMIN: unshare(CLONE_NEWNET): %v", err)
	case err != nil:
		t.Fatalf("unshare(CLONE_NEWNET): %v", err)
	}
}

// RawSockets skips the test (fails it under MIRA_REQUIRE_PEERS=1) when
// this process may not open packet sockets (CAP_NET_RAW), as capture
// programs such as tcpdump must: it opens one and decides on the error.
func RawSockets(t testing.TB) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	switch {
	case errors.Is(err, os.ErrPermission):
		missing(t, "packet sockets need CAP_NET_RAW: socket(AF_PACKET): %v", err)
	case err != nil:
		t.Fatalf("socket(AF_PACKET): %v", err)
	}
	unix.Close(fd)
}

// FUSE skips the test (fails it under MIRA_REQUIRE_PEERS=1) unless this
// process can serve a FUSE file system: it opens /dev/fuse and mounts,
// then detaches, an empty one, deciding on the errors the kernel returns
// (no /dev/fuse; no permission to open it or, without CAP_SYS_ADMIN, to
// mount).
func FUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing(t, "FUSE unavailable: %v", err)
	case errors.Is(err, os.ErrPermission):
		missing(t, "FUSE: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	// No request is ever answered: nothing may touch dir until it is
	// detached.
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d", f.Fd(), os.Getuid(), os.Getgid())
	err = unix.Mount("mira-peertest", dir, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts)
	switch {
	case errors.Is(err, os.ErrPermission):
		missing(t, "mounting FUSE needs CAP_SYS_ADMIN: mount: %v", err)
	case err != nil:
		t.Fatalf("mount fuse on %s: %v", dir, err)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount %s: %v", dir, err)
	}
}

// Tmpfs mounts a tmpfs of size bytes on a new directory, unmounted when
// the test ends, and returns the directory: a small file system that
// fills up. It skips the test (fails it under MIRA_REQUIRE_PEERS=1)
// when this process may not mount (CAP_SYS_ADMIN).
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mira-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Mount("mira-peertest", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d", size))
	switch {
	case errors.Is(err, os.ErrPermission):
		os.Remove(dir)
		missing(t, "mounting a tmpfs needs CAP_SYS_ADMIN: mount: %v", err)
	case err != nil:
		os.Remove(dir)
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}
