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
	level atomic.Uint32 // 0 normal, 1 shedding, k >= 2: sampling at 1 in 2^(k-1)
	// now is the latest packet time the readers saw (capture time).
	now atomic.Int64

	// offered and served count packets put into the worker queues (or
	// dropped there) and taken out of them: their ratio over a tick says
	// how much faster the traffic comes than the workers go.
	offered, served atomic.Uint64

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
	var lastOff, lastSrv uint64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			f := fill()
			off, srv := r.offered.Load(), r.served.Load()
			dOff, dSrv := off-lastOff, srv-lastSrv
			lastOff, lastSrv = off, srv
			r.mu.Lock()
			r.fill = f
			r.mu.Unlock()
			l := r.level.Load()
			switch {
			case f > r.cfg.High:
				lowSince = time.Time{}
				// Step up while the backlog is high and not shrinking:
				// first shed, then sample at the rate that holds the
				// backlog, estimated from how much more came in than
				// the workers took in the last tick (at least twice
				// the current interval; doubling where the queues do
				// not say, as for kernel rings).
				if f < prev || l >= maxLevel {
					break
				}
				next := l + 1
				if l >= 1 && dSrv > 0 && dOff > dSrv {
					_, iv := levelState(l)
					want := float64(iv) * float64(dOff) / float64(dSrv) * 1.25
					for next < maxLevel {
						if _, niv := levelState(next); float64(niv) >= want {
							break
						}
						next++
					}
				}
				r.set(next)
			case f < r.cfg.Low && l > 0:
				if lowSince.IsZero() {
					lowSince = now
				} else if now.Sub(lowSince) >= r.cfg.Hold {
					r.set(l - 1)
					lowSince = now
				}
			default:
				lowSince = time.Time{}
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
	level    uint32
	selMax   uint32 // keep a connection when its hash <= selMax
	sampling bool
	out      *atomic.Uint64
}

func (r *regulator) shard(i int) *shardReg {
	if r == nil {
		return nil
	}
	return &shardReg{r: r, out: &r.out[i], level: ^uint32(0)}
}

// update applies the current level to tab (see updateTo).
func (s *shardReg) update(tab *meter.Table) {
	if s == nil {
		return
	}
	s.updateTo(tab, s.r.level.Load())
}

// updateTo applies level l to tab: a change of sampling interval first
// ends every flow, so that each record was metered at one rate and
// carries it.
func (s *shardReg) updateTo(tab *meter.Table, l uint32) {
	if s == nil || l == s.level {
		return
	}
	st, iv := levelState(l)
	if s.level == ^uint32(0) {
		// First batch: records state their rate from the start.
		tab.SetFlowInterval(iv)
	} else if _, oldIv := levelState(s.level); iv != oldIv {
		tab.Flush()
		tab.SetFlowInterval(iv)
	}
	tab.SetShed(st != RegNormal)
	s.select_(l)
}

// select_ sets the selection for level l.
func (s *shardReg) select_(l uint32) {
	st, iv := levelState(l)
	s.level = l
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
	if sampling.FlowHash(s.r.init, p.Src, p.Dst, p.Sport, p.Dport, p.Proto) <= s.selMax {
		return true
	}
	s.out.Add(1)
	return false
}
