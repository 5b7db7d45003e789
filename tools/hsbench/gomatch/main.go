package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/appliance/symptom/workload"
)

func main() {
	gen := flag.String("gen", "", "write the workload files into this directory and exit")
	size := flag.Int("size", 64<<20, "corpus size in bytes (with -gen)")
	patterns := flag.String("patterns", "", "pattern file")
	corpus := flag.String("corpus", "", "corpus file")
	chunk := flag.Int("chunk", 1460, "chunk size (0: whole corpus)")
	runs := flag.Int("runs", 5, "runs")
	stream := flag.Bool("stream", false, "scan the chunks as one stream instead of independent blocks")
	datagram := flag.Bool("datagram", false, "scan each chunk with ScanDatagram (no state carried to a next packet, as vectorscan's block mode) instead of Scan")
	flag.Parse()
	if err := run(*gen, *size, *patterns, *corpus, *chunk, *runs, *stream, *datagram); err != nil {
		fmt.Fprintln(os.Stderr, "gomatch:", err)
		os.Exit(1)
	}
}

func run(gen string, size int, pfile, cfile string, chunk, runs int, stream, datagram bool) error {
	if gen != "" {
		all := workload.Patterns(5000)
		for _, n := range []int{100, 1000, 5000} {
			p := filepath.Join(gen, fmt.Sprintf("patterns-%d.txt", n))
			if err := os.WriteFile(p, workload.Format(all[:n]), 0o644); err != nil {
				return err
			}
			// The same patterns as a symptom database (mira-probe --symptoms).
			y := filepath.Join(gen, fmt.Sprintf("symptoms-%d.yaml", n))
			if err := os.WriteFile(y, workload.YAML(all[:n]), 0o644); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(gen, "corpus.bin"), workload.Corpus(size, all[:1000]), 0o644)
	}
	pdata, err := os.ReadFile(pfile)
	if err != nil {
		return err
	}
	ps, err := workload.ParseFile(pdata)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(cfile)
	if err != nil {
		return err
	}
	t0 := time.Now()
	db, err := symptom.Parse(pfile, workload.YAML(ps))
	if err != nil {
		return err
	}
	compile := time.Since(t0)
	if chunk <= 0 {
		chunk = len(data)
	}
	runtime.LockOSThread() // so the thread CPU clock measures the scan
	mbps := make([]float64, runs)
	cpu := make([]float64, runs)
	var count uint64
	for r := 0; r < runs; r++ {
		var c symptom.Counts
		var st symptom.State
		s, cs := time.Now(), threadCPU()
		for off := 0; off+chunk <= len(data); off += chunk {
			if stream {
				db.Scan(&st, &c, data[off:off+chunk], uint64(off))
			} else if datagram {
				db.ScanDatagram(&c, data[off:off+chunk])
			} else {
				st = symptom.State{}
				db.Scan(&st, &c, data[off:off+chunk], 0)
			}
		}
		if rest := len(data) % chunk; stream && rest > 0 {
			// The stream includes its last, partial chunk, so that it
			// compares with a whole-corpus block scan.
			db.Scan(&st, &c, data[len(data)-rest:], uint64(len(data)-rest))
		}
		el, cel := time.Since(s), threadCPU()-cs
		scanned := len(data) / chunk * chunk
		mbps[r] = float64(scanned) / el.Seconds() / 1e6
		cpu[r] = float64(scanned) / cel.Seconds() / 1e6
		count = c.Total()
		fmt.Printf("run %d: %.1f MB/s wall, %.1f MB/s cpu, %d matches\n", r+1, mbps[r], cpu[r], count)
	}
	sort.Float64s(mbps)
	sort.Float64s(cpu)
	mode := "block"
	if stream {
		mode = "stream"
	} else if datagram {
		mode = "datagram"
	}
	fmt.Printf("gomatch patterns=%d chunk=%d mode=%s compile_ms=%.1f matches=%d mbps_median=%.1f mbps_cpu_median=%.1f\n",
		len(ps), chunk, mode, float64(compile.Microseconds())/1000, count, mbps[runs/2], cpu[runs/2])
	return nil
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
