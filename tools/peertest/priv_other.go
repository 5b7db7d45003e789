//go:build !linux

package peertest

import "testing"

// NetNamespaces skips the test (fails it under MIRA_REQUIRE_PEERS=1):
// network namespaces are Linux's.
func NetNamespaces(t testing.TB) {
	t.Helper()
	missing(t, "network namespaces need Linux")
}

// RawSockets skips the test (fails it under MIRA_REQUIRE_PEERS=1): the
// packet sockets the tests use are Linux's.
func RawSockets(t testing.TB) {
	t.Helper()
	missing(t, "AF_PACKET sockets need Linux")
}

// FUSE skips the test (fails it under MIRA_REQUIRE_PEERS=1): the FUSE
// devices the tests serve are Linux's.
func FUSE(t testing.TB) {
	t.Helper()
	missing(t, "FUSE devices need Linux")
}

// Tmpfs skips the test (fails it under MIRA_REQUIRE_PEERS=1): the tmpfs
// mounts the tests make are Linux's.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	missing(t, "tmpfs mounts need Linux")
	return ""
}
