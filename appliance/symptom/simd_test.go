package symptom

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

// TestSIMDKernels: the vectorised loops list exactly the positions their
// portable definitions list, for every start and end near block edges.
func TestSIMDKernels(t *testing.T) {
	if !have512 {
		kernels(t)
		return
	}
	kernels(t) // the AVX-512 Teddy loop
	have512 = false
	defer func() { have512 = true }()
	kernels(t) // the AVX2 one
}

func kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	db := Default()
	m := db.m
	if m.teddy == nil || !m.simdFirst {
		t.Skip("no vectorised prefilter on this machine")
	}
	buf := make([]byte, 600)
	hits := 0
	for round := range 400 {
		for i := range buf {
			switch r.IntN(4) {
			case 0:
				buf[i] = byte(r.Uint32())
			case 1:
				buf[i] = "GET /HTTP\n\xff\xe3GID3OggS"[r.IntN(18)]
			default:
				buf[i] = byte(' ' + r.IntN(95))
			}
			if i >= 188 && buf[i-188] == 'G' && r.IntN(2) == 0 {
				buf[i] = 'G' // a companion for mpeg-ts's trigger
			}
		}
		n := 34 + r.IntN(len(buf)-34)
		if round < 64 {
			n = 34 + round
		}
		base := unsafe.Pointer(unsafe.SliceData(buf))
		for _, start := range []int{0, 1, r.IntN(n)} {
			var a, b [simdOut]uint32
			got := enumerate(func(i int) (int, int) { return teddyScan(m.teddy, base, n, i, &a) }, &a, start, n)
			var want []uint32
			for q := start; q+3 <= n; q++ {
				if m.teddy.pass(buf[:n], q) {
					want = append(want, uint32(q))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("teddy n=%d start=%d: simd %v, by definition %v", n, start, got, want)
			}
			if port := enumerate(func(i int) (int, int) { return teddyGo(m.teddy, base, n, i, &b) }, &b, start, n); !slices.Equal(port, want) {
				t.Fatalf("teddy n=%d start=%d: portable %v, by definition %v", n, start, port, want)
			}
			hits += len(got)
			var n1, c1, n2, c2 int
			for _, f := range []*firstMasks{m.firstC, m.firstP} {
				a, b = [simdOut]uint32{}, [simdOut]uint32{}
				nf := n - f.maxDist()
				n1, c1 = firstScan(f, base, nf, start, &a)
				n2, c2 = firstGo(f, base, nf, start, &b)
				if n1 != n2 || c1 != c2 || a != b {
					t.Fatalf("first n=%d-%d start=%d: simd (%d, %v), portable (%d, %v)", n, f.maxDist(), start, n1, a[:c1], n2, b[:c2])
				}
				hits += c1
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d positions listed: the test data miss the triggers", hits)
	}
}

// enumerate lists the positions from start on as scanTeddy does: blocks
// while 34 bytes are left, then a last block ending at n-3 whose
// positions before the end of the others are dropped.
func enumerate(scan func(i int) (int, int), out *[simdOut]uint32, start, n int) []uint32 {
	var l []uint32
	i := start
	for i+teddyMin <= n {
		next, cnt := scan(i)
		l = append(l, out[:cnt]...)
		i = next
	}
	if i < n-2 {
		_, cnt := scan(n - teddyMin)
		for _, q := range out[:cnt] {
			if int(q) >= i {
				l = append(l, q)
			}
		}
	}
	return l
}

// TestTeddyPassesEveryTrigger: every chosen trigger gram of the database passes
// the Teddy filter (a gram it dropped would lose matches).
func TestTeddyPassesEveryTrigger(t *testing.T) {
	for _, db := range []*DB{Default(), mustParse(t, string(workload.YAML(workload.Patterns(100))))} {
		m := db.m
		if m.teddy == nil {
			t.Skip("no vectorised prefilter on this machine")
		}
		for _, k := range m.grams0.keys {
			if k == 0 {
				continue
			}
			g := []byte{byte(k), byte(k >> 8), byte(k >> 16)}
			if !m.teddy.pass(g, 0) {
				t.Fatalf("gram %q fails the filter", g)
			}
		}
	}
}

// TestSIMDPathsAgree: the database compiled with and without the
// vectorised prefilters counts the same on text, random bytes and the
// benchmark workload, in packets of many sizes.
func TestSIMDPathsAgree(t *testing.T) {
	if !haveSIMD {
		t.Skip("no vectorised prefilter on this machine")
	}
	ps := workload.Patterns(100)
	corpus := workload.Corpus(1<<18, ps)
	rnd := make([]byte, 1<<18)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	// Media-like: MPEG-TS packets, then MPEG audio frames, in random bytes.
	media := slices.Clone(rnd)
	for i := 0; i < len(media)/2; i += 188 {
		media[i] = 0x47
	}
	for i := len(media) / 2; i+4 <= len(media); i += 417 {
		copy(media[i:], "\xff\xfb\x90\x64")
	}
	yamls := map[string][]byte{"default": DefaultYAML(), "workload100": workload.YAML(ps),
		"workload1000": workload.YAML(workload.Patterns(1000))}
	for _, name := range []string{"default", "workload100", "workload1000"} {
		yamls[name+"/fdr"] = yamls[name]
		yamls[name+"/fdr1"] = yamls[name]
	}
	for name, y := range yamls {
		// /fdr: FDR for any size; /fdr1: and with stride 1 (the table is
		// the same for both strides).
		forced := strings.Contains(name, "/fdr")
		if forced {
			fdrMinGrams = -1
		}
		fast, err := Parse(name, y)
		fdrMinGrams = teddyMaxGrams
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "/fdr1") {
			fast.m.fdr.args.stride = 1
		}
		haveSIMD = false
		slow, err := Parse(name, y)
		haveSIMD = true
		if err != nil {
			t.Fatal(err)
		}
		if slow.m.teddy != nil || slow.m.simdFirst || slow.m.fdr != nil ||
			(fast.m.teddy == nil && !fast.m.simdFirst && fast.m.fdr == nil) {
			t.Fatalf("%s: compiled paths not as asked", name)
		}
		if big := name == "workload1000" || forced; big && fast.m.fdr == nil || !big && fast.m.fdr != nil {
			t.Fatalf("%s: Teddy %v, FDR %v", name, fast.m.teddy != nil, fast.m.fdr != nil)
		}
		for dn, data := range map[string][]byte{"corpus": corpus, "random": rnd, "media": media} {
			for _, sizes := range [][]int{{1460}, {200}, {34, 35, 33, 64, 1}, {1 << 18}, {1000, 221, 222, 219, 220}} {
				t.Run(fmt.Sprintf("%s/%s/%v", name, dn, sizes), func(t *testing.T) {
					got, want := scanChunks(fast, data, sizes), scanChunks(slow, data, sizes)
					if !mapsEqual(got, want) {
						t.Errorf("vectorised %v, portable %v", got, want)
					}
					if dn == "media" && name == "default" && sizes[0] >= 1000 && (got[5] == 0 || got[7] == 0) {
						t.Errorf("media data without MP3 or VIDEO counts: %v", got)
					}
				})
			}
		}
	}
}

// TestFDRKernel: the FDR loop in assembly lists exactly the positions
// its portable definition (fdrGo) lists and carries the same state, for
// both strides, from every kind of start, up to ends near block edges.
func TestFDRKernel(t *testing.T) {
	if !haveSIMD {
		t.Skip("no vectorised prefilter on this machine")
	}
	db := mustParse(t, string(workload.YAML(workload.Patterns(1000))))
	f := db.m.fdr
	if f == nil || f.args.stride != 2 {
		t.Fatalf("workload1000: FDR %v", f != nil)
	}
	corpus := workload.Corpus(1<<16, workload.Patterns(1000))
	r := rand.New(rand.NewPCG(7, 8))
	hits := 0
	fdr512 := haveFDR512
	defer func() { haveFDR512 = fdr512 }()
	for _, kern := range []int{1, 2, 2512} {
		stride := kern % 10
		args := f.args
		args.stride = stride
		// 2512: stride 2 with AVX-512 where the CPU has it; 2: without.
		haveFDR512 = kern == 2512 && fdr512
		for round := range 600 {
			n := fdrRead + r.IntN(1500)
			if round < 64 {
				n = fdrRead + round
			}
			off := r.IntN(len(corpus) - n)
			p := corpus[off : off+n]
			base := unsafe.Pointer(unsafe.SliceData(p))
			start, st := r.IntN(n-fdrRead+1), r.Uint64()
			if round%2 == 0 {
				start, st = 0, f.start
			}
			var a, b [fdrOut]uint32
			st1, st2 := st, st
			for i, j := start, start; i+fdrRead <= n; {
				n1, c1 := fdrScan(&args, base, n, i, &st1, &a)
				n2, c2 := fdrGo(&args, base, n, j, &st2, &b)
				if n1 != n2 || c1 != c2 || a != b || st1 != st2 {
					t.Fatalf("stride %d n=%d start=%d: assembly (%d, %v, %#x), portable (%d, %v, %#x)", stride, n, i, n1, a[:c1], st1, n2, b[:c2], st2)
				}
				if n1 == i {
					t.Fatalf("stride %d n=%d: no progress at %d", stride, n, i)
				}
				hits += c1
				i, j = n1, n2
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d candidates: the corpus misses the patterns", hits)
	}
}
