package symptom

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
	"github.com/mira-project/mira/appliance/symptom/workload"
)

func cpuNow() float64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func TestVarCPU(t *testing.T) {
	if os.Getenv("VARCPU") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	d, _ := os.ReadFile("/tmp/hsw/corpus.bin")
	d = d[:8<<20]
	bl := new([bloomWords]uint64)
	f := new([1 << 16]uint8)
	f2 := new([1024]uint64)
	for i := 0; i < 2000; i++ {
		h := uint32(i*7919+13) * hashMul
		bl[h>>(bloomShift+6)] |= 1 << (h >> bloomShift & 63)
		f[h>>16] = 1
		f2[(h>>16)>>6] |= 1 << (h >> 16 & 63)
	}
	vs := []struct {
		name string
		f    func(p []byte) int
	}{{"A", func(p []byte) int { return varA(bl, p) }}, {"B", func(p []byte) int { return varB(bl, p) }},
		{"C", func(p []byte) int { return varC(f, p) }}, {"D", func(p []byte) int { return varD(f2, p) }}}
	for r := 0; r < 3; r++ {
		for _, v := range vs {
			s := cpuNow()
			h := 0
			for k := 0; k < 5; k++ {
				for off := 0; off+1460 <= len(d); off += 1460 {
					h += v.f(d[off : off+1460])
				}
			}
			el := cpuNow() - s
			fmt.Printf("%s %.0f MB/s hits %d\n", v.name, float64(5*len(d))/el/1e6, h)
		}
	}
}

var sink int

func loadCorpus(b *testing.B) []byte {
	d, err := os.ReadFile("/tmp/hsw/corpus.bin")
	if err != nil {
		b.Skip()
	}
	return d[:8<<20]
}

func varA(bloom *[bloomWords]uint64, p []byte) int {
	hits := 0
	n := len(p)
	i := 0
	for ; i+8 <= n; i += 5 {
		x := binary.LittleEndian.Uint64(p[i:])
		h0 := uint32(x) * hashMul
		h1 := uint32(x>>8) * hashMul
		h2 := uint32(x>>16) * hashMul
		h3 := uint32(x>>24) * hashMul
		h4 := uint32(x>>32) * hashMul
		hit := bloom[h0>>(bloomShift+6)]>>(h0>>bloomShift&63) |
			bloom[h1>>(bloomShift+6)]>>(h1>>bloomShift&63) |
			bloom[h2>>(bloomShift+6)]>>(h2>>bloomShift&63) |
			bloom[h3>>(bloomShift+6)]>>(h3>>bloomShift&63) |
			bloom[h4>>(bloomShift+6)]>>(h4>>bloomShift&63)
		if hit&1 != 0 {
			hits++
		}
	}
	return hits
}

func varB(bloom *[bloomWords]uint64, p []byte) int {
	hits := 0
	n := len(p)
	i := 0
	for ; i+8 <= n; i += 5 {
		x := binary.LittleEndian.Uint64(p[i:])
		h0 := uint32(x) * hashMul
		h1 := uint32(x>>8) * hashMul
		h2 := uint32(x>>16) * hashMul
		h3 := uint32(x>>24) * hashMul
		h4 := uint32(x>>32) * hashMul
		if bloom[h0>>(bloomShift+6)]&(1<<(h0>>bloomShift&63)) != 0 ||
			bloom[h1>>(bloomShift+6)]&(1<<(h1>>bloomShift&63)) != 0 ||
			bloom[h2>>(bloomShift+6)]&(1<<(h2>>bloomShift&63)) != 0 ||
			bloom[h3>>(bloomShift+6)]&(1<<(h3>>bloomShift&63)) != 0 ||
			bloom[h4>>(bloomShift+6)]&(1<<(h4>>bloomShift&63)) != 0 {
			hits++
		}
	}
	return hits
}

// byte filter, 2^16 entries
func varC(f *[1 << 16]uint8, p []byte) int {
	hits := 0
	n := len(p)
	i := 0
	for ; i+8 <= n; i += 5 {
		x := binary.LittleEndian.Uint64(p[i:])
		h0 := uint32(x) * hashMul >> 16
		h1 := uint32(x>>8) * hashMul >> 16
		h2 := uint32(x>>16) * hashMul >> 16
		h3 := uint32(x>>24) * hashMul >> 16
		h4 := uint32(x>>32) * hashMul >> 16
		if f[h0]|f[h1]|f[h2]|f[h3]|f[h4] != 0 {
			hits++
		}
	}
	return hits
}

// 2-byte direct bitmap (no multiply), 8 positions per load
func varD(f *[1024]uint64, p []byte) int {
	hits := 0
	n := len(p)
	i := 0
	for ; i+8 <= n; i += 7 {
		x := binary.LittleEndian.Uint64(p[i:])
		for k := 0; k < 7; k++ {
			g := uint16(x >> (8 * k))
			if f[g>>6]&(1<<(g&63)) != 0 {
				hits++
			}
		}
	}
	return hits
}

func BenchmarkVar(b *testing.B) {
	d := loadCorpus(b)
	bl := new([bloomWords]uint64)
	f := new([1 << 16]uint8)
	f2 := new([1024]uint64)
	for i := 0; i < 2000; i++ {
		h := uint32(i*7919+13) * hashMul
		bl[h>>(bloomShift+6)] |= 1 << (h >> bloomShift & 63)
		f[h>>16] = 1
		f2[(h>>16)>>6] |= 1 << (h >> 16 & 63)
	}
	for _, v := range []struct {
		name string
		f    func(p []byte) int
	}{{"A", func(p []byte) int { return varA(bl, p) }}, {"B", func(p []byte) int { return varB(bl, p) }},
		{"C", func(p []byte) int { return varC(f, p) }}, {"D", func(p []byte) int { return varD(f2, p) }}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(d)))
			for b.Loop() {
				for off := 0; off+1460 <= len(d); off += 1460 {
					sink += v.f(d[off : off+1460])
				}
			}
		})
	}
}

func TestProfileCorpus(t *testing.T) {
	if os.Getenv("VARCPU") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	d, _ := os.ReadFile("/tmp/hsw/corpus.bin")
	pd, _ := os.ReadFile(os.Getenv("PATS"))
	ps, _ := workloadParse(pd)
	db, err := Parse("x", ps)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 12; r++ {
		s := cpuNow()
		var c Counts
		for off := 0; off+1460 <= len(d); off += 1460 {
			var st State
			db.Scan(&st, &c, d[off:off+1460], 0)
		}
		el := cpuNow() - s
		fmt.Printf("scan %.0f MB/s cpu, %d\n", float64(len(d))/el/1e6, c.Total())
	}
}

func workloadParse(b []byte) ([]byte, error) {
	ps, err := workload.ParseFile(b)
	return workload.YAML(ps), err
}
