package symptom

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/mira-project/mira/appliance/symptom/workload"
	"github.com/mira-project/mira/tools/peertest"
)

// TestAgainstVectorscan builds tools/hsbench (C, libvectorscan) and checks
// that it and Scan count the same matches on the benchmark workload: per
// 1460- and 200-byte block (each a fresh flow direction), and for the
// whole corpus against Scan fed the corpus as one stream of small packets.
func TestAgainstVectorscan(t *testing.T) {
	gcc := peertest.Program(t, "gcc")
	peertest.File(t, "/usr/include/hs/hs.h", "libvectorscan-dev")
	dir := t.TempDir()
	bin := filepath.Join(dir, "hsbench")
	if out, err := exec.Command(gcc, "-O2", "-o", bin, "../../tools/hsbench/hsbench.c", "-lhs").CombinedOutput(); err != nil {
		t.Fatalf("building hsbench: %v\n%s", err, out)
	}
	ps := workload.Patterns(1000)
	corpus := workload.Corpus(4<<20, ps)
	cfile := filepath.Join(dir, "corpus.bin")
	if err := os.WriteFile(cfile, corpus, 0o644); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`matches=(\d+)`)
	hs := func(pfile string, chunk int) uint64 {
		out, err := exec.Command(bin, pfile, cfile, strconv.Itoa(chunk), "1").Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("hsbench: %v\n%s", err, ee.Stderr)
		}
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindSubmatch(out)
		if m == nil {
			t.Fatalf("hsbench output: %s", out)
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return n
	}
	for _, n := range []int{100, 1000} {
		pfile := filepath.Join(dir, "patterns-"+strconv.Itoa(n)+".txt")
		if err := os.WriteFile(pfile, workload.Format(ps[:n]), 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := Parse("bench.yaml", workload.YAML(ps[:n]))
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{1460, 200} {
			var c Counts
			for off := 0; off+chunk <= len(corpus); off += chunk {
				var st State
				db.Scan(&st, &c, corpus[off:off+chunk], 0)
			}
			if want := hs(pfile, chunk); c.Total() != want {
				t.Errorf("%d patterns, %d-byte blocks: Scan %d, vectorscan %d", n, chunk, c.Total(), want)
			}
		}
		want := hs(pfile, 0)
		for _, chunk := range []int{1460, 200, 13} {
			var st State
			var c Counts
			for off := 0; off < len(corpus); off += chunk {
				db.Scan(&st, &c, corpus[off:min(off+chunk, len(corpus))], uint64(off))
			}
			if c.Total() != want {
				t.Errorf("%d patterns, streamed in %d-byte packets: Scan %d, vectorscan whole corpus %d", n, chunk, c.Total(), want)
			}
		}
		t.Logf("%d patterns: vectorscan whole corpus %d matches, equal to Scan", n, want)
	}
}
