package erf

import (
	"os"
	"path/filepath"
	"testing"
)

// corpus returns the path of a file under the shared corpus
// (../shared/corpus relative to the repository root), skipping the test
// when it is absent unless MIRA_REQUIRE_PEERS=1.
func corpus(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "corpus", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MIRA_REQUIRE_PEERS") == "1" {
			t.Fatalf("corpus file missing: %v", err)
		}
		t.Skipf("corpus file missing: %v", err)
	}
	return p
}
