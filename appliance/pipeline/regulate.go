package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/sampling"
)

// Regulation states.
const (
	RegNormal   = 0 // every packet metered and scanned
	RegShedding = 1 // encrypted directions no longer scanned
	RegSampling = 2 // connections selected by hash at 1 in Interval
)

// RegulationConfig configures self-regulation (paper §3.2): when the
// capture backlog (worker queues, or kernel rings) fills above High, the
// pipeline first sheds scanning work that cannot change the results,
// then keeps only a hash-selected share of the connections, halving the
// share while the backlog keeps growing; once the backlog has stayed
// below Low for Hold it steps back, one step at a time. The zero value
// means the defaults.
type RegulationConfig struct {
	// Disabled turns self-regulation off: a full queue then drops
	// packets (counted as queue drops) and nothing is sampled.
	Disabled bool
	// High and Low are backlog fills (0..1): default 0.5 and 0.1.
	High, Low float64
	// Every is how often the backlog is looked at (default 5 ms).
	Every time.Duration
	// Hold is how long the backlog must stay below Low before a step
	// back (default 2 s).
	Hold time.Duration
	// MaxInterval bounds the sampling interval N (default 65536).
	MaxInterval uint32
	// Seed is the selection hash's seed (sampling.HashInitialiser).
	Seed uint64
}

func (c RegulationConfig) withDefaults() RegulationConfig {
	if c.High <= 0 {
		c.High = 0.5
	}
	if c.Low <= 0 || c.Low >= c.High {
		c.Low = c.High / 5
	}
	if c.Every <= 0 {
		c.Every = 5 * time.Millisecond
	}
	if c.Hold <= 0 {
		c.Hold = 2 * time.Second
	}
	if c.MaxInterval < 2 {
		c.MaxInterval = 1 << 16
	}
	return c
}

// RegulationStats is self-regulation's state and counters.
type RegulationStats struct {
	State    int    // RegNormal, RegShedding or RegSampling
	Interval uint32 // connections kept: 1 in Interval (1: all)
	// Since is when the current state took effect (ns since the epoch,
	// capture time: for a replayed capture, the time of its packets).
	Since          int64
	Changes        uint64 // state or interval changes
	OverloadEvents uint64 // changes into sampling from a lighter state
	RegulatedOut   uint64 // packets not metered: their connection was sampled out
	Fill           float64
}

// Regulation is one change of the regulation state, as OnRegulation
// sees it.
type Regulation struct {
	State    int
	Interval uint32
	// At is when it took effect, in capture time (ns since the epoch).
	At int64
}

// regulator owns the regulation state; workers read it once per batch.
type regulator struct {
	cfg   RegulationConfig
	init  uint32
	level atomic.Uint32 // 0 normal, 1 shedding, k >= 2: sampling (levelState)
	// gen is the selection in force: the number of changes so far
	// (which picks the hash initialiser) << 8 | the level. Every change
	// draws a new initialiser, so which connections a rate keeps does
	// not depend on the load that made the rate change (the same
	// connections kept all along would bias the estimate: a heavy
	// connection kept raises the load, hence the rate it is scaled by).
	gen atomic.Uint64
	// now is the latest packet time the readers saw (capture time).
	now atomic.Int64

	// offered counts the packets the reader read (all, before
	// selection), served the selected ones the workers metered: over a
	// window of ticks with a backlog, their ratio is the sampling
	// interval the workers can hold.
	offered, served atomic.Uint64
	// read counts the frames live workers took from their rings (all,
	// before selection): whether a sampling step let them read faster.
	read atomic.Uint64

	mu      sync.Mutex
	since   int64
	changes uint64
	events  uint64
	fill    float64
	out     []atomic.Uint64 // per worker: packets regulated out
	onChg   func(Regulation)
}

// levelState maps a level to its state and interval: 0 normal, 1
// shedding, then sampling at 1 in 2, 3, 4, 6, 8, 12, 16... (steps of
// about √2, so the rate chosen is not far above the one needed).
// Selected hash ranges shrink with the level, so a connection kept at
// a level is kept at every lower one.
func levelState(l uint32) (state int, interval uint32) {
	switch l {
	case 0:
		return RegNormal, 1
	case 1:
		return RegShedding, 1
	}
	k := l - 2
	if k%2 == 0 {
		return RegSampling, 2 << (k / 2)
	}
	return RegSampling, 3 << (k / 2)
}

// run watches fill() every cfg.Every until stop is closed.
func (r *regulator) run(stop <-chan struct{}, fill func() float64) {
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	maxLevel := uint32(2)
	for _, iv := levelState(maxLevel); iv < r.cfg.MaxInterval; _, iv = levelState(maxLevel) {
		maxLevel++
	}
	var prev float64
	var lowSince time.Time
	stepping := false // stepping down: the backlog stayed low for Hold
	// The last few ticks' offered and served packets (a window smooths
	// ticks in which a worker did not get the CPU).
	const window = 4
	var offs, srvs, rds [window]uint64
	var lastOff, lastSrv, lastRead uint64
	// readAtStep is the live workers' read rate (frames per window)
	// before the last sampling step, 0 when there was none since the
	// regulator last stepped down.
	var readAtStep uint64
	// Steps are a window apart in time, not in ticks: a regulator that
	// shares a busy core with the reader and the workers runs less often
	// than its ticker, and counting ticks held overload steps 250 ms
	// apart (one core, --speed 30, 1000 patterns).
	var lastStep time.Time
	for tick := 0; ; tick++ {
		select {
		case <-stop:
			return
		case now := <-t.C:
			f := fill()
			off, srv, rd := r.offered.Load(), r.served.Load(), r.read.Load()
			offs[tick%window], srvs[tick%window], rds[tick%window] = off-lastOff, srv-lastSrv, rd-lastRead
			lastOff, lastSrv, lastRead = off, srv, rd
			var dOff, dSrv, dRead uint64
			for i := range window {
				dOff += offs[i]
				dSrv += srvs[i]
				dRead += rds[i]
			}
			r.mu.Lock()
			r.fill = f
			r.mu.Unlock()
			l := r.level.Load()
			switch {
			case f > r.cfg.High:
				lowSince, stepping = time.Time{}, false
				// Backlog high: first shed, then sample at the rate
				// the workers can hold (at most four times the
				// current interval per step).
				if l >= maxLevel || now.Sub(lastStep) < window*r.cfg.Every {
					// A step needs a window of ticks at the current
					// rate to be judged.
					break
				}
				next := l + 1
				if l >= 1 && dOff > 0 && dSrv > 0 {
					// The queues say how fast packets come (all of
					// them) and how fast the busy workers meter the
					// selected ones: keep 1 in need, for the workers
					// to run at 80 %. If the current rate does, the
					// backlog drains: wait.
					need := float64(dOff) / (0.8 * float64(dSrv))
					_, iv := levelState(l)
					if need <= float64(iv) {
						break
					}
					need = min(need, 4*float64(iv))
					for next < maxLevel {
						if _, niv := levelState(next); float64(niv) >= need {
							break
						}
						next++
					}
				} else if dOff == 0 && f < prev {
					// No counters (kernel rings): step while the
					// backlog grows.
					break
				} else if dOff == 0 && l >= 2 && readAtStep > 0 && dRead*20 < readAtStep*21 {
					// Kernel rings: the last sampling step did not
					// let the workers read 5 % faster, so metering
					// is not what holds them back (reading is: a
					// starved CPU); sampling more would only widen
					// the estimate's interval. The ring drops are
					// counted.
					break
				}
				if next >= 2 {
					readAtStep = dRead
				}
				r.set(next)
				lastStep = now
			case f < r.cfg.Low && l > 0:
				// Hysteresis: back one level once the backlog has
				// stayed low for Hold, then a level every Hold/8
				// while it stays low.
				wait := r.cfg.Hold
				if stepping {
					wait /= 8
				}
				if lowSince.IsZero() {
					lowSince = now
				} else if now.Sub(lowSince) >= wait {
					r.set(l - 1)
					lowSince, stepping = now, true
					readAtStep = 0
				}
			default:
				lowSince, stepping = time.Time{}, false
			}
			prev = f
		}
	}
}

func (r *regulator) set(l uint32) {
	old := r.level.Load()
	r.level.Store(l)
	at := r.now.Load()
	if at == 0 {
		at = time.Now().UnixNano()
	}
	r.mu.Lock()
	r.since = at
	r.changes++
	r.gen.Store(r.changes<<8 | uint64(l))
	if l >= 2 && old < 2 {
		r.events++
	}
	cb := r.onChg
	r.mu.Unlock()
	if cb != nil {
		st, iv := levelState(l)
		cb(Regulation{State: st, Interval: iv, At: at})
	}
}

func (r *regulator) stats() RegulationStats {
	st, iv := levelState(r.level.Load())
	r.mu.Lock()
	defer r.mu.Unlock()
	s := RegulationStats{State: st, Interval: iv, Since: r.since, Changes: r.changes, OverloadEvents: r.events, Fill: r.fill}
	for i := range r.out {
		s.RegulatedOut += r.out[i].Load()
	}
	return s
}

// shardReg is one worker's view of the regulation: it applies a new
// level to its flow table at a batch boundary.
type shardReg struct {
	r        *regulator
	gen      uint64 // regulator.gen applied; ^0 before the first
	level    uint32
	init     uint32 // hash initialiser of this generation
	selMax   uint32 // keep a connection when its hash <= selMax
	sampling bool
	out      *atomic.Uint64
}

// initFor is the hash initialiser of selection generation gen.
func (r *regulator) initFor(gen uint64) uint32 {
	return r.init ^ sampling.HashInitialiser((gen>>8)*0x9e3779b97f4a7c15)
}

func (r *regulator) shard(i int) *shardReg {
	if r == nil {
		return nil
	}
	return &shardReg{r: r, out: &r.out[i], gen: ^uint64(0)}
}

// update applies the current level to tab (see updateTo).
func (s *shardReg) update(tab *meter.Table) {
	if s == nil {
		return
	}
	s.updateTo(tab, s.r.gen.Load())
}

// updateTo applies selection generation gen to tab: a change of
// sampling interval first ends every flow, so that each record was
// metered at one rate and carries it.
func (s *shardReg) updateTo(tab *meter.Table, gen uint64) {
	if s == nil || gen == s.gen {
		return
	}
	l := uint32(gen & 0xff)
	st, iv := levelState(l)
	if s.gen == ^uint64(0) {
		// First batch: records state their rate from the start.
		tab.SetFlowInterval(iv)
	} else if _, oldIv := levelState(s.level); iv != oldIv {
		tab.Flush()
		tab.SetFlowInterval(iv)
	}
	tab.SetShed(st != RegNormal)
	s.select_(gen)
}

// select_ sets the selection of generation gen.
func (s *shardReg) select_(gen uint64) {
	l := uint32(gen & 0xff)
	st, iv := levelState(l)
	s.gen, s.level, s.init = gen, l, s.r.initFor(gen)
	s.sampling = st == RegSampling
	s.selMax = uint32(sampling.SelectedRangeSize(iv) - 1)
}

// readerReg is a reader's view of the regulation: it selects packets
// before they are queued (sampled-out packets cost no queue space and no
// copy), and tags each batch with the level it was selected at.
func (r *regulator) reader() *shardReg {
	if r == nil {
		return nil
	}
	s := &shardReg{r: r, out: &r.out[len(r.out)-1]}
	s.select_(0)
	return s
}

// keep says whether the packet's connection is metered at the current
// rate.
func (s *shardReg) keep(p *decode.Packet) bool {
	if s == nil || !s.sampling {
		return true
	}
	if sampling.FlowHash(s.init, p.Src, p.Dst, p.Sport, p.Dport, p.Proto) <= s.selMax {
		return true
	}
	s.out.Add(1)
	return false
}
