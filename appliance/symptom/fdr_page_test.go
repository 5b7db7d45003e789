//go:build linux

package symptom

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

// TestFDRPageEnd: payloads that end at, or just before, an unreadable page
// scan without a fault (FDR reads its last block in place only inside the
// payload's last page) and count what the portable path counts.
func TestFDRPageEnd(t *testing.T) {
	if !haveSIMD {
		t.Skip("no vectorised prefilter on this machine")
	}
	ps := workload.Patterns(1000)
	y := workload.YAML(ps)
	fast := mustParse(t, string(y))
	haveSIMD = false
	slow := mustParse(t, string(y))
	haveSIMD = true
	if fast.m.fdr == nil {
		t.Fatal("workload1000 without FDR")
	}
	pg := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[pg:], unix.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	corpus := workload.Corpus(1<<16, ps)
	total := uint64(0)
	for _, n := range []int{1, 2, 3, 7, 15, 16, 17, 18, 19, 20, 31, 33, 35, 36, 47, 64, 199, 200, 201, 1460, pg} {
		for gap := 0; gap <= 20 && gap+n <= pg; gap++ {
			for src := 0; src+n <= len(corpus); src += len(corpus) / 7 {
				p := mem[pg-gap-n : pg-gap]
				copy(p, corpus[src:src+n])
				var a, b Counts
				var sa, sb State
				fast.Scan(&sa, &a, p, 0)
				slow.Scan(&sb, &b, p, 0)
				if !mapsEqual(countsMap(&a), countsMap(&b)) || sa != sb {
					t.Fatalf("n=%d gap=%d: FDR %v %v, portable %v %v", n, gap, countsMap(&a), sa, countsMap(&b), sb)
				}
				total += a.Total()
			}
		}
	}
	if total == 0 {
		t.Fatal("no matches: the payloads miss the patterns")
	}
}
