//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotatingKeepsNewestFiles(t *testing.T) {
	name := filepath.Join(t.TempDir(), "log", "probe.log")
	r, err := newRotating(name, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := fmt.Fprintf(r, "line %02d of the probe log\n", i); err != nil { // 25 bytes
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(name)
	one, _ := os.ReadFile(name + ".1")
	two, _ := os.ReadFile(name + ".2")
	if _, err := os.Stat(name + ".3"); err == nil {
		t.Error("more than 2 old files kept")
	}
	for _, b := range [][]byte{cur, one, two} {
		if len(b) == 0 || len(b) > 100 {
			t.Errorf("file of %d bytes (max 100)", len(b))
		}
	}
	if !strings.HasSuffix(string(cur), "line 19 of the probe log\n") {
		t.Errorf("current file ends %q", cur)
	}
	// 25-byte lines, 4 to a file: 16-19 current, 12-15 in .1, 8-11 in .2.
	if !strings.HasPrefix(string(one), "line 12 ") || !strings.HasSuffix(string(one), "line 15 of the probe log\n") {
		t.Errorf(".1 holds %q", one)
	}
	if !strings.HasPrefix(string(two), "line 08 ") || !strings.HasSuffix(string(two), "line 11 of the probe log\n") {
		t.Errorf(".2 holds %q", two)
	}
	// Reopening appends to the current file.
	r2, err := newRotating(name, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r2.size != int64(len(cur)) {
		t.Errorf("reopened size %d, want %d", r2.size, len(cur))
	}
}
