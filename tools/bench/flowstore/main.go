// Command flowstore writes a collector store of synthetic flow records
// the way mira-collector does (records encoded per origin, committed in
// batches of 65536 with store.PutEncodedSeq; with -rollups, every
// committed batch decoded and fed to a report.Roller and its cells
// written after the commit, as collector/server does), to benchmark
// reports over stores far larger than a capture can make quickly.
//
//	flowstore -o big.db -n 10000000 [-span 24h] [-seed 1] [-rollups=false]
//
// The records: two probes (one unsampled, one sampling 1 packet in 10)
// seeing connections between 60,000 clients in 10.0.0.0/8 and 3,000
// servers, one or two directions, one to three records each (active
// timeouts), exported when they end (with up to 5 s of delay), spread
// evenly over -span; four aggregates, symptoms named as the default
// classification rules expect. It prints the CPU seconds spent, split
// into making records, storing them and keeping the rollups, and the
// store's size.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var origins = []store.Origin{{Exporter: "192.0.2.10", Domain: 1}, {Exporter: "192.0.2.11", Domain: 2}}

type gen struct {
	rng  *rand.Rand
	t0   int64
	step float64 // ns between connection starts
	i    int
	out  []flow.Record
	orig []int
}

// next appends the records of one connection (not in end order).
func (g *gen) next() {
	rng := g.rng
	start := g.t0 + int64(float64(g.i)*g.step) + rng.Int64N(int64(time.Second))
	g.i++
	cl := netip.AddrFrom4([4]byte{10, byte(rng.IntN(60)), byte(rng.IntN(250)), byte(1 + rng.IntN(4))})
	sv := netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(12)), byte(rng.IntN(250))})
	proto := uint8(6)
	dports := []uint16{443, 443, 443, 80, 80, 53, 25, 993, 22, 21, 5060, 6881, 3389, 1194}
	dport := dports[rng.IntN(len(dports))]
	if dport == 53 || dport == 5060 || dport == 1194 {
		proto = 17
	}
	sport := uint16(1024 + rng.IntN(64000))
	sym := map[uint16]uint16{443: 3, 80: 3, 25: 1, 993: 1, 21: 2, 5060: 5, 6881: 4, 1194: 6, 3389: 7, 53: 8}[dport]
	agg := uint32(1 + rng.IntN(4))
	o := rng.IntN(2)
	n := 1 + rng.IntN(3)
	dirs := 2
	if rng.IntN(5) == 0 {
		dirs = 1
	}
	for d := 0; d < dirs; d++ {
		t := start + int64(d)*int64(rng.IntN(20))*int64(time.Millisecond)
		for j := 0; j < n; j++ {
			dur := rng.Int64N(int64(60 * time.Second))
			r := flow.Record{Key: flow.Key{Src: cl, Dst: sv, Sport: sport, Dport: dport, Proto: proto},
				First: t, Last: t + dur, Packets: uint64(1 + rng.IntN(200)), EndReason: flow.EndActive,
				Aggregate: agg}
			if d == 1 {
				r.Src, r.Dst, r.Sport, r.Dport = sv, cl, dport, sport
			}
			r.Octets = r.Packets * uint64(60+rng.IntN(1400))
			if proto == 6 {
				r.TCPFlags = 0x10
				if j == 0 {
					r.TCPFlags |= 0x02
				}
				if j == n-1 {
					r.TCPFlags |= 0x01
					r.EndReason = flow.EndDetected
				}
			} else if j == n-1 {
				r.EndReason = flow.EndIdle
			}
			if sym != 0 && j == 0 && rng.IntN(3) != 0 {
				r.Symptoms = []flow.SymptomCount{{ID: sym, Count: uint32(1 + rng.IntN(3))}}
			}
			if o == 1 {
				r.SamplingPacketInterval = 10
				r.Packets = max(1, r.Packets/10)
				r.Octets = r.Packets * 700
			}
			g.out = append(g.out, r)
			g.orig = append(g.orig, o)
			t += dur + int64(time.Second)
		}
	}
}

func main() {
	out := flag.String("o", "", "store to write (must not exist)")
	n := flag.Int("n", 10_000_000, "records")
	span := flag.Duration("span", 24*time.Hour, "time the records spread over")
	seed := flag.Uint64("seed", 1, "random seed")
	rollups := flag.Bool("rollups", true, "keep the rollups as mira-collector does")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *out == "" {
		log.Fatal("-o FILE is required")
	}
	if _, err := os.Stat(*out); err == nil {
		log.Fatalf("%s exists", *out)
	}
	st, err := store.Open(*out, &store.Options{NoSync: true, InitialMmapSize: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	names := store.Names{
		Symptoms:   map[uint16]string{1: "MAIL", 2: "FTP", 3: "WEB", 4: "P2P", 5: "VOIP", 6: "VPN", 7: "REMOTE", 8: "DNS"},
		Aggregates: map[uint32]string{1: "campus-out", 2: "campus-in", 3: "lab", 4: "dorms"},
	}
	na := map[store.Origin][]store.NameAnnouncement{}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range origins {
		na[o] = []store.NameAnnouncement{{At: t0, Since: t0.UnixNano(), Names: names}}
	}
	if err := st.PutNameAnnouncements(na); err != nil {
		log.Fatal(err)
	}
	var roll *report.Roller
	if *rollups {
		cfg, _, err := report.LoadRollupConfig("", "")
		if err != nil {
			log.Fatal(err)
		}
		ix, err := st.NameIndex()
		if err != nil {
			log.Fatal(err)
		}
		roll = report.NewRoller(cfg, ix, nil, nil)
	}
	// Connections start evenly over the span; about 3.3 records each.
	g := &gen{rng: rand.New(rand.NewPCG(*seed, 1)), t0: t0.UnixNano(), step: float64(*span) / (float64(*n) / 3.3)}
	type pend struct {
		at int64
		o  int
		r  flow.Record
	}
	// Records are handed over when they end (plus an export delay), in
	// that order: a window of connections is generated ahead.
	var window []pend
	batch := map[int]*store.Encoded{}
	for i, o := range origins {
		batch[i] = &store.Encoded{Origin: o}
	}
	var tGen, tStore, tRoll time.Duration
	written, inBatch := 0, 0
	commit := func() {
		c0 := cpu()
		list := []*store.Encoded{batch[0], batch[1]}
		if err := st.PutEncodedSeq(list, nil); err != nil {
			log.Fatal(err)
		}
		c1 := cpu()
		tStore += c1 - c0
		if roll != nil {
			for _, e := range list {
				if err := e.Each(func(r *flow.Record) { roll.Add(e.Origin, r) }); err != nil {
					log.Fatal(err)
				}
			}
			roll.Advance()
			if err := st.PutRollups(roll.Take()); err != nil {
				log.Fatal(err)
			}
			tRoll += cpu() - c1
		}
		for _, e := range list {
			e.Reset()
		}
		inBatch = 0
	}
	for written < *n {
		c0 := cpu()
		// Generate until the window holds what ends within 2 minutes
		// after its earliest end.
		for len(g.out) < 1 || len(window) < 4096 || window[0].at+int64(2*time.Minute) > g.t0+int64(float64(g.i)*g.step) {
			g.out, g.orig = g.out[:0], g.orig[:0]
			g.next()
			for k := range g.out {
				at := g.out[k].Last + g.rng.Int64N(int64(5*time.Second))
				window = append(window, pend{at, g.orig[k], g.out[k]})
			}
			if len(window) > 1<<16 {
				break
			}
		}
		slices.SortFunc(window, func(a, b pend) int {
			if a.at < b.at {
				return -1
			}
			if a.at > b.at {
				return 1
			}
			return 0
		})
		cut := max(1, len(window)/2)
		for _, p := range window[:cut] {
			if written == *n {
				break
			}
			batch[p.o].Add(&p.r)
			written++
			inBatch++
		}
		window = append(window[:0], window[cut:]...)
		tGen += cpu() - c0
		if inBatch >= 1<<16 || written == *n {
			commit()
		}
	}
	if roll != nil {
		c0 := cpu()
		roll.Flush()
		if err := st.PutRollups(roll.Take()); err != nil {
			log.Fatal(err)
		}
		tRoll += cpu() - c0
	}
	data, err := st.DataSize()
	if err != nil {
		log.Fatal(err)
	}
	var rsize [2]int64
	var rcells [2]int
	for i, res := range store.RollupResolutions {
		if rcells[i], rsize[i], err = st.RollupSize(res); err != nil {
			log.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		log.Fatal(err)
	}
	fi, err := os.Stat(*out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("records %d span %v rollups %v\n", written, *span, *rollups)
	fmt.Printf("cpu: generate %.2f s, store %.2f s, rollups %.2f s\n", tGen.Seconds(), tStore.Seconds(), tRoll.Seconds())
	fmt.Printf("store file %d bytes; records %d bytes in pages; rollups 1m %d cells %d bytes, 1h %d cells %d bytes\n",
		fi.Size(), data, rcells[0], rsize[0], rcells[1], rsize[1])
}
