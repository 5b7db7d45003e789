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

// Testdata returns the path of a file or directory under the
// repository's testdata folder. The folder ships with the repository, so
// an absent file fails the test: it is a bug, not a missing peer.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Root(), "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testdata: %v", err)
	}
	return p
}

// CorpusFile returns the path of one of the captures (or its expected
// results) that tests read by name. They ship in testdata/corpus with the
// layout of ../shared/corpus (testdata/README.md lists each file's source
// and licence); an absent one fails the test.
func CorpusFile(t testing.TB, elem ...string) string {
	t.Helper()
	return Testdata(t, append([]string{"corpus"}, elem...)...)
}
