// Package peertest helps tests that talk to real peer programs (tshark,
// nfcapd, ipfixDump, ...) or read the shared capture corpus: it finds them,
// and skips the test when one is absent, or fails it when the environment
// sets MIRA_REQUIRE_PEERS=1 (as CI does), so a skip never hides a missing
// installation there.
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

// Shared returns the path of ../shared beside the repository, or skips
// (fails under MIRA_REQUIRE_PEERS=1) when it is absent.
func Shared(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, d := range []string{filepath.Join(root, "..", "shared"), os.Getenv("MIRA_SHARED")} {
		if d == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(d, "corpus")); err == nil && st.IsDir() {
			return d
		}
	}
	missing(t, "../shared (the capture corpus) is not beside the repository")
	return ""
}

// Corpus returns a path inside ../shared/corpus.
func Corpus(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Shared(t), "corpus"}, elem...)...)
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("MIRA_REQUIRE_PEERS=1: "+format, args...)
	}
	t.Skipf(format, args...)
}
