package peertest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records how a helper ended the test.
type recorder struct {
	testing.TB
	ended string // "skip", "fatal" or ""
	msg   string
}

type stop struct{}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.ended, r.msg = "skip", fmt.Sprintf(format, args...)
	panic(stop{})
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended, r.msg = "fatal", fmt.Sprintf(format, args...)
	panic(stop{})
}

func run(t *testing.T, f func(tb testing.TB) string) (ended, msg, got string) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil {
				if _, ok := v.(stop); !ok {
					panic(v)
				}
			}
		}()
		got = f(r)
	}()
	return r.ended, r.msg, got
}

func TestFileAndMissing(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "hs.h")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "none.h")
	for _, required := range []string{"", "1"} {
		t.Setenv("MIRA_REQUIRE_PEERS", required)
		want := "skip"
		if required == "1" {
			want = "fatal"
		}
		if ended, _, got := run(t, func(tb testing.TB) string { return File(tb, present, "libfoo-dev") }); ended != "" || got != present {
			t.Fatalf("required=%q: present file ended the test (%s) or returned %q", required, ended, got)
		}
		if ended, msg, _ := run(t, func(tb testing.TB) string { return File(tb, absent, "libfoo-dev") }); ended != want || msg == "" {
			t.Fatalf("required=%q: absent file: %s %q, want %s", required, ended, msg, want)
		}
		if ended, _, _ := run(t, func(tb testing.TB) string { Missing(tb, "needs %s", "CAP_NET_RAW"); return "" }); ended != want {
			t.Fatalf("required=%q: Missing ended %q, want %s", required, ended, want)
		}
		// Shipped test data is never a missing peer: absent, it fails.
		if ended, _, _ := run(t, func(tb testing.TB) string { return CorpusFile(tb, "no-such-dir-in-the-corpus") }); ended != "fatal" {
			t.Fatalf("required=%q: absent corpus file ended %q, want fatal", required, ended)
		}
		if ended, _, got := run(t, func(tb testing.TB) string { return CorpusFile(tb, "generated", "ipfix-softflowd-milli.ipfix") }); ended != "" || got == "" {
			t.Fatalf("required=%q: shipped corpus file ended %q", required, ended)
		}
	}
}

// TestCorpusFallsBack: without a wide corpus the sweeps walk the captures
// shipped in testdata/corpus; with one (here through MIRA_SHARED), that.
func TestCorpusFallsBack(t *testing.T) {
	if _, ok := SharedCorpus(); !ok {
		ended, _, got := run(t, func(tb testing.TB) string { return Corpus(tb, "pcaps") })
		if want := filepath.Join(Root(), "testdata", "corpus", "pcaps"); ended != "" || got != want {
			t.Fatalf("without ../shared: Corpus = %q (ended %q), want %q", got, ended, want)
		}
	}
	shared := t.TempDir()
	if err := os.Mkdir(filepath.Join(shared, "corpus"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MIRA_SHARED", shared)
	ended, _, got := run(t, func(tb testing.TB) string { return Corpus(tb, "pcaps") })
	if want := filepath.Join(shared, "corpus", "pcaps"); ended != "" || got != want {
		t.Fatalf("MIRA_SHARED: Corpus = %q (ended %q), want %q", got, ended, want)
	}
}
