package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// killedBatch is batch b of the killed writer: killedPer records whose
// Octets name the batch, spread over a few seconds of end times (several
// chunks).
const killedPer = 300

func killedBatch(b int) []Batch {
	recs := benchRecords(killedPer, t0.UnixNano()+int64(b)*3e9)
	for i := range recs {
		recs[i].Octets = uint64(b)
		recs[i].First += int64(i) * 1e7
		recs[i].Last += int64(i) * 1e7
	}
	return []Batch{{Origin: Origin{Exporter: "p", Domain: uint32(b % 3)}, Records: recs}}
}

// TestKilledWriter: a process writing batches (synced; 128 KiB segments,
// so that some commits append and some start a segment file) is killed
// with SIGKILL at random moments, 12 times; after each, a reader sees
// what the writer will after recovery, the store opens for writing and
// reads with no decode error, every batch whose Put returned is there
// whole, the batch under way is whole or absent, and no record is there
// twice. It logs how many kills left a torn commit (bytes past the
// committed length; 1-4 of 12 in runs here).
func TestKilledWriter(t *testing.T) {
	if path := os.Getenv("MIRA_STORE_KILLED_WRITER"); path != "" {
		killedWriter(path, os.Getenv("MIRA_STORE_KILLED_PRUNE") != "")
		return
	}
	if testing.Short() {
		t.Skip("runs and kills a writer process 12 times")
	}
	t.Run("append", func(t *testing.T) { killWriter(t, false) })
	// Retention by size in the writer: kills also land in prunes; the
	// batches left are the newest, each whole.
	t.Run("prune", func(t *testing.T) { killWriter(t, true) })
}

func killWriter(t *testing.T, prune bool) {
	path := filepath.Join(t.TempDir(), "killed.db")
	rng := rand.New(rand.NewPCG(7, 7))
	next := 0 // first batch of the next writer
	underWay, torn := 0, 0
	for round := 0; round < 12; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriter$")
		cmd.Env = append(os.Environ(), "MIRA_STORE_KILLED_WRITER="+path, "MIRA_STORE_KILLED_FROM="+strconv.Itoa(next))
		if prune {
			cmd.Env = append(cmd.Env, "MIRA_STORE_KILLED_PRUNE=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after k acknowledged batches and a random moment more.
		k := 1 + rng.IntN(6)
		acked := next - 1
		sc := bufio.NewScanner(out)
		for i := 0; i < k && sc.Scan(); i++ {
			b, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "stored "))
			if err != nil {
				t.Fatalf("writer said %q", sc.Text())
			}
			acked = b
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		for sc.Scan() {
			if b, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "stored ")); err == nil {
				acked = b
			}
		}
		cmd.Wait()
		if acked < next {
			t.Fatalf("round %d: the writer acknowledged no batch", round)
		}

		// A torn commit: bytes past the newest segment's committed
		// length (a reader ignores them; Open for writing cuts them).
		ro, err := Open(path, &Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("round %d: read-only open after the kill: %v", round, err)
		}
		ro.view(func(tx *bolt.Tx) error {
			if id, m, ok := lastSegment(tx); ok {
				if fi, err := os.Stat(segName(SegmentDir(path), id)); err == nil && fi.Size() > m.committed {
					torn++
				}
			}
			return nil
		})
		nro := len(collect(t, ro, Query{}))
		ro.Close()
		s, err := Open(path, nil)
		if err != nil {
			t.Fatalf("round %d: open after the kill: %v", round, err)
		}
		counts := map[uint64]int{}
		for _, f := range collect(t, s, Query{}) {
			counts[f.Record.Octets]++
		}
		if e := s.DecodeErrors(); len(e) != 0 {
			t.Fatalf("round %d: decode errors %v", round, e)
		}
		s.Close()
		if n := killedPer * len(counts); nro != n {
			t.Fatalf("round %d: a reader saw %d records before recovery, %d after", round, nro, n)
		}
		last := acked
		if counts[uint64(acked+1)] > 0 {
			last = acked + 1 // under way when killed, committed
			underWay++
		}
		first := 0
		if prune {
			first = last + 1
			for b := range counts {
				first = min(first, int(b))
			}
		}
		for b := first; b <= last; b++ {
			if counts[uint64(b)] != killedPer {
				t.Fatalf("round %d (acknowledged up to batch %d): batch %d has %d records, want %d", round, acked, b, counts[uint64(b)], killedPer)
			}
		}
		if len(counts) != last+1-first {
			t.Fatalf("round %d: %d batches stored, want %d", round, len(counts), last+1-first)
		}
		next = last + 1
		if prune && round == 11 && first == 0 {
			t.Fatal("the writer pruned nothing")
		}
	}
	t.Logf("prune %v: %d batches in 12 kills; %d kills came after a commit before its Put returned, %d left a torn commit", prune, next, underWay, torn)
}

// killedWriter stores batches from MIRA_STORE_KILLED_FROM on, printing
// "stored N" once batch N's Put has returned, until it is killed; with
// prune, it prunes to 256 KiB after every third batch.
func killedWriter(path string, prune bool) {
	from, _ := strconv.Atoi(os.Getenv("MIRA_STORE_KILLED_FROM"))
	s, err := Open(path, &Options{SegmentSize: 128 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for b := from; ; b++ {
		if err := s.PutBatches(killedBatch(b)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("stored %d\n", b)
		if prune && b%3 == 0 {
			if _, err := s.PruneToSize(256 << 10); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}
}
