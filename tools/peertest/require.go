package peertest

import (
	"os"
	"path/filepath"
	"testing"
)

// Missing skips the test for a missing peer, file or capability, or
// fails it when MIRA_REQUIRE_PEERS=1. Call it on the condition observed
// (a lookup that failed, an errors.Is(err, os.ErrPermission)), never on
// a guess.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	missing(t, format, args...)
}

// File returns path when it exists, or skips (fails under
// MIRA_REQUIRE_PEERS=1) naming what provides it, such as a package.
func File(t testing.TB, path, what string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%s not installed: %v", what, err)
	}
	return path
}

// SharedFile returns the path of a file or directory inside ../shared
// (for example "mibs", "ietf"), or skips (fails under
// MIRA_REQUIRE_PEERS=1) when it is absent.
func SharedFile(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Shared(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		missing(t, "../shared/%s absent: %v", filepath.Join(elem...), err)
	}
	return p
}

// CorpusFile returns the path of a file or directory inside
// ../shared/corpus, or skips (fails under MIRA_REQUIRE_PEERS=1) when it
// is absent.
func CorpusFile(t testing.TB, elem ...string) string {
	t.Helper()
	return SharedFile(t, append([]string{"corpus"}, elem...)...)
}
