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
