// Package peertest helps tests that talk to real peer programs (tshark,
// nfcapd, ipfixDump, ...) or need a privilege: it finds them, and skips
// the test when one is absent, or fails it when the environment sets
// MIRA_REQUIRE_PEERS=1 (as CI does), so a skip never hides a missing
// installation there. It also locates the captures tests read: those
// shipped in testdata/corpus (CorpusFile), and the wide corpus in
// ../shared/corpus that sweeps use when it is there (Corpus).
package peertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Required reports whether missing peers must fail tests.
func Required() bool { return os.Getenv("MIRA_REQUIRE_PEERS") == "1" }

// Program returns the path of a peer program, or skips (fails under
// MIRA_REQUIRE_PEERS=1) when it is not installed.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "peer program %s not installed: %v", name, err)
	}
	return p
}

// Root returns the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SharedCorpus returns the wide capture corpus, $MIRA_SHARED/corpus or
// else ../shared/corpus beside the repository, and whether it is there.
func SharedCorpus() (string, bool) {
	for _, d := range []string{os.Getenv("MIRA_SHARED"), filepath.Join(Root(), "..", "shared")} {
		if d == "" {
			continue
		}
		c := filepath.Join(d, "corpus")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c, true
		}
	}
	return "", false
}

// Corpus returns a path inside the corpus that sweeps walk (every capture
// of a folder): the wide corpus when there is one (SharedCorpus), else
// the captures shipped in testdata/corpus, which have the same layout.
// Tests that read one capture by name use CorpusFile.
func Corpus(t testing.TB, elem ...string) string {
	t.Helper()
	dir, ok := SharedCorpus()
	if !ok {
		dir = filepath.Join(Root(), "testdata", "corpus")
		t.Logf("../shared/corpus absent: the sweep reads the captures shipped in %s", dir)
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("MIRA_REQUIRE_PEERS=1: "+format, args...)
	}
	t.Skipf(format, args...)
}
