package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/sampling"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/flow"
)

// Config sets up a pipeline. The zero value means one worker and the
// meter's defaults.
type Config struct {
	Workers      int
	QueueBatches int
	Meter        meter.Config
	Decode       *decode.Config
	Domain       uint32
	// Filter, when set, is called once per worker (0 with one worker)
	// before it starts and returns that worker's packet filter: packets
	// it refuses are not metered (capture scope, sampling; see
	// appliance/selection). The filter runs on the worker's goroutine.
	Filter func(worker int) func(p *decode.Packet, ifIndex uint32) bool
	// Progress, when set, is called from the reading goroutine about
	// every half second with the bytes read so far (file sources).
	Progress func(packets uint64)
	// Speed, when positive, replays file sources at Speed times their
	// own pace, feeding the workers as a NIC would: the reader never
	// waits for them, and what a full queue cannot take is dropped
	// and counted (or regulated, like live overload).
	Speed float64
	// Regulation configures self-regulation of live capture and paced
	// replay; OnRegulation, when set, is told every change (from the
	// regulator's goroutine), for example to announce it to collectors.
	Regulation   RegulationConfig
	OnRegulation func(Regulation)
}

// Sink receives expired records; with several workers it is called
// concurrently from their goroutines.
type Sink = meter.Sink

// Stats are the pipeline's counters.
type Stats struct {
	Packets      uint64 // packets read from sources
	Octets       uint64 // wire octets read
	Decoded      uint64
	NonIP        uint64
	DecodeErrors map[string]uint64 // by reason (errors, and notes such as fragment-without-first)
	QueueDrops   uint64            // live packets dropped because a worker queue was full
	// QueueDropsScaled is QueueDrops with each packet counted as the
	// packets it stood for: a packet kept by regulation at 1 in N that
	// is then dropped from a full queue loses N from the estimate.
	QueueDropsScaled uint64
	Meter            meter.Stats // summed over shards
	Sources          []SourceStats
	// Queues are the capture backlogs self-regulation watches: worker
	// queues (in batches), or kernel rings (in blocks).
	Queues     []QueueStats
	Regulation RegulationStats
	// Reloads counts reconfigurations (Reconfigure).
	Reloads uint64
}

// QueueStats is one bounded queue's fill.
type QueueStats struct {
	Name            string
	Depth, Capacity int
}

// SourceStats are one capture source's counters.
type SourceStats struct {
	Name    string
	IfIndex int // kernel interface index for live sources
	Link    drivers.LinkType
	Stats   drivers.Stats
}

// Pipeline is a running packet path.
type Pipeline struct {
	cfg  Config
	sink Sink

	packets, octets, queueDrops atomic.Uint64
	queueDropsScaled            atomic.Uint64
	mu                          sync.Mutex
	decoders                    []*decode.Decoder
	decStats                    []decode.Counters
	meterStats                  []meter.Stats
	sources                     []drivers.Source
	srcStats                    []SourceStats
	ifMap                       [][]uint32 // live: source, interface -> capture interface index
	reg                         *regulator // nil: no self-regulation (files read at full speed, or disabled)
	queues                      []chan *batch
	backlogs                    []drivers.Backlogger

	// Reconfiguration (reload.go): swapMu guards cfg.Meter's
	// classifiers, cfg.Filter and the fields below.
	reloadMu sync.Mutex
	swapMu   sync.Mutex
	swapSeq  atomic.Uint64
	swapCur  *swap
	running  int             // workers running
	wake     []chan struct{} // wakes a waiting sharded worker
	readWake chan struct{}   // wakes a file's paced reader waiting for a packet's time
	reloads  atomic.Uint64
}

// InterfaceNames returns the capture interfaces of the sources in order,
// each name once: the sockets of one interface's fanout group are one
// capture interface. A packet's interface index (what aggregates and
// the records' ingress interface see) is its interface's position here.
func InterfaceNames(srcs []drivers.Source) []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range srcs {
		for _, ifc := range s.Interfaces() {
			if !seen[ifc.Name] {
				seen[ifc.Name] = true
				names = append(names, ifc.Name)
			}
		}
	}
	return names
}

// InterfaceMap maps each source's interface i to its position in
// InterfaceNames(srcs).
func InterfaceMap(srcs []drivers.Source) [][]uint32 {
	pos := map[string]uint32{}
	for i, n := range InterfaceNames(srcs) {
		pos[n] = uint32(i)
	}
	m := make([][]uint32, len(srcs))
	for si, s := range srcs {
		for _, ifc := range s.Interfaces() {
			m[si] = append(m[si], pos[ifc.Name])
		}
	}
	return m
}

// ifIndex is the capture interface index of source si's interface i.
func (p *Pipeline) ifIndex(si, i int) uint32 {
	if si < len(p.ifMap) && i < len(p.ifMap[si]) {
		return p.ifMap[si][i]
	}
	return uint32(i)
}

// New makes a pipeline that hands records to sink.
func New(cfg Config, sink Sink) *Pipeline {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.QueueBatches <= 0 {
		cfg.QueueBatches = 64
		if cfg.Speed > 0 {
			// Paced replay stands in for a NIC's ring: room for
			// 256k packets, the time regulation takes to react
			// (payloads of a mapped file are not copied, so a
			// batch is small).
			cfg.QueueBatches = 1024
		}
	}
	return &Pipeline{cfg: cfg, sink: sink}
}

// Stats returns a snapshot of the counters; safe to call concurrently
// with Run.
func (p *Pipeline) Stats() Stats {
	s := Stats{
		Packets:          p.packets.Load(),
		Octets:           p.octets.Load(),
		QueueDrops:       p.queueDrops.Load(),
		QueueDropsScaled: p.queueDropsScaled.Load(),
		DecodeErrors:     map[string]uint64{},
		Reloads:          p.reloads.Load(),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.decStats {
		s.Decoded += c.Packets
		s.NonIP += c.NonIP
		for r, n := range c.Reasons {
			if n > 0 && decode.Reason(r) != decode.ReasonNone && decode.Reason(r) != decode.ReasonNonIP {
				s.DecodeErrors[decode.Reason(r).String()] += n
			}
		}
	}
	for _, m := range p.meterStats {
		s.Meter.Packets += m.Packets
		s.Meter.Octets += m.Octets
		s.Meter.Active += m.Active
		s.Meter.Created += m.Created
		s.Meter.Exported += m.Exported
		s.Meter.ScanBytes += m.ScanBytes
		s.Meter.ScanRetrans += m.ScanRetrans
		s.Meter.ScanGaps += m.ScanGaps
		s.Meter.FastClassed += m.FastClassed
		s.Meter.ScanShed += m.ScanShed
		s.Meter.AppFound += m.AppFound
		s.Meter.FTPData += m.FTPData
		s.Meter.AppLooked += m.AppLooked
		s.Meter.ScanBypassed += m.ScanBypassed
		s.Meter.SymptomOccurrences = addSlices(s.Meter.SymptomOccurrences, m.SymptomOccurrences)
		s.Meter.SymptomFlows = addSlices(s.Meter.SymptomFlows, m.SymptomFlows)
		for i := range m.Expired {
			s.Meter.Expired[i] += m.Expired[i]
		}
	}
	s.Sources = append(s.Sources, p.srcStats...)
	for i, q := range p.queues {
		s.Queues = append(s.Queues, QueueStats{Name: fmt.Sprintf("read>worker-%d", i), Depth: len(q), Capacity: cap(q)})
	}
	for i, b := range p.backlogs {
		used, total := b.Backlog()
		s.Queues = append(s.Queues, QueueStats{Name: fmt.Sprintf("ring-%d>worker-%d", i, i), Depth: used, Capacity: total})
	}
	if p.reg != nil {
		s.Regulation = p.reg.stats()
	} else {
		s.Regulation = RegulationStats{Interval: 1}
	}
	return s
}

// fill is the fullest queue's fill (0..1); the caller holds no lock.
func (p *Pipeline) fill() float64 {
	p.mu.Lock()
	qs, bs := p.queues, p.backlogs
	p.mu.Unlock()
	f := 0.0
	for _, q := range qs {
		if c := cap(q); c > 0 {
			f = max(f, float64(len(q))/float64(c))
		}
	}
	for _, b := range bs {
		if used, total := b.Backlog(); total > 0 {
			f = max(f, float64(used)/float64(total))
		}
	}
	return f
}

// startRegulation starts the regulator for shards workers when the
// pipeline is paced (live or --speed) and regulation is on; the
// returned function stops it.
func (p *Pipeline) startRegulation(shards int, paced bool) func() {
	if !paced || p.cfg.Regulation.Disabled {
		return func() {}
	}
	c := p.cfg.Regulation.withDefaults()
	// One counter per worker, and one for the reader (paced replay).
	r := &regulator{cfg: c, init: sampling.HashInitialiser(c.Seed), out: make([]atomic.Uint64, shards+1), onChg: p.cfg.OnRegulation}
	p.mu.Lock()
	p.reg = r
	p.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(stop, p.fill)
	}()
	return func() { close(stop); <-done }
}

func addSlices(dst, src []uint64) []uint64 {
	for len(dst) < len(src) {
		dst = append(dst, 0)
	}
	for i, v := range src {
		dst[i] += v
	}
	return dst
}

func (p *Pipeline) publishDecoder(i int, d *decode.Decoder) {
	c := d.Counters()
	p.mu.Lock()
	p.decStats[i] = c
	p.mu.Unlock()
}

func (p *Pipeline) publishMeter(i int, t *meter.Table) {
	p.mu.Lock()
	t.StatsInto(&p.meterStats[i])
	p.mu.Unlock()
}

func (p *Pipeline) publishSource(i int, s drivers.Source) {
	st := s.Stats()
	p.mu.Lock()
	p.srcStats[i].Stats = st
	p.mu.Unlock()
}

// Run reads the sources until they end (files) or ctx is cancelled
// (live), then flushes every flow to the sink. Files are read one after
// the other, as one capture (flows continue from one into the next, as
// across a capture rotated into several files), except that a file whose
// first packet is older than the latest packet before it starts a
// capture of its own: every flow ends (forced) and the flow tables'
// clocks start over (meter.Table.Restart), so its flows time out by its
// own times and the records do not depend on the order the files are
// given in. Live sources are read concurrently.
func (p *Pipeline) Run(ctx context.Context, srcs []drivers.Source, live bool) error {
	p.mu.Lock()
	p.sources = srcs
	p.srcStats = make([]SourceStats, len(srcs))
	for i, s := range srcs {
		ifs := s.Interfaces()
		if len(ifs) > 0 {
			p.srcStats[i].Name = ifs[0].Name
			p.srcStats[i].Link = ifs[0].LinkType
			p.srcStats[i].IfIndex = ifs[0].Index
		}
	}
	p.meterStats = make([]meter.Stats, p.cfg.Workers)
	p.mu.Unlock()
	p.ifMap = InterfaceMap(srcs)
	if live && allBatch(srcs) {
		return p.runBatched(ctx, srcs)
	}
	if p.cfg.Workers == 1 && !live && p.cfg.Speed <= 0 {
		return p.runInline(ctx, srcs)
	}
	return p.runSharded(ctx, srcs, live)
}

const publishEvery = 1 << 12

func (p *Pipeline) runInline(ctx context.Context, srcs []drivers.Source) error {
	dec := decode.New(p.cfg.Decode)
	p.mu.Lock()
	p.decoders = []*decode.Decoder{dec}
	p.decStats = make([]decode.Counters, 1)
	p.mu.Unlock()
	tab, ws := p.startWorker(0)
	var pkt decode.Packet
	var n, octets uint64
	lastProgress := time.Now()
	publish := func(si int, s drivers.Source) {
		p.packets.Add(n)
		p.octets.Add(octets)
		n, octets = 0, 0
		p.publishDecoder(0, dec)
		p.publishMeter(0, tab)
		p.publishSource(si, s)
	}
	// Without payload scanning or labelling the meter reads only the
	// decoded header fields, never the frame, so packets can be decoded
	// ahead and metered in batches whose flow lookups overlap their
	// cache misses (meter.Table.AddBatch); so can they when the source's
	// frames stay valid (drivers.StableSource: a mapped capture file).
	// Otherwise each frame is metered before the source's next call
	// reuses its buffer.
	var (
		bpkts [meter.BatchMax]decode.Packet
		bts   [meter.BatchMax]int64
		bifx  [meter.BatchMax]uint32
		nb    int
	)
	flushBatch := func() {
		tab.AddBatch(bpkts[:nb], bts[:nb], bifx[:nb])
		nb = 0
	}
	var runErr error
	var ci drivers.CaptureInfo
	var latest int64 // the capture's latest packet time so far
	for si, s := range srcs {
		into, _ := s.(drivers.IntoSource)
		stable := false
		if st, ok := s.(drivers.StableSource); ok {
			stable = st.DataStable()
		}
		batched := ws.headersOnly || stable
		first := si > 0
		for {
			var data []byte
			var err error
			if into != nil {
				data, err = into.NextInto(&ci)
			} else {
				data, ci, err = s.Next()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					runErr = errors.Join(runErr, fmt.Errorf("pipeline: source %d: %w", si, err))
				}
				break
			}
			n++
			octets += uint64(ci.Length)
			if first {
				first = false
				if ci.Timestamp < latest {
					// A file older than the one before: a capture
					// of its own (see restartsCapture).
					flushBatch()
					tab.Restart()
					latest = 0
				}
			}
			latest = max(latest, ci.Timestamp)
			if batched {
				if err := dec.DecodeInfo(data, &ci, &bpkts[nb]); err == nil && (ws.keep == nil || ws.keep(&bpkts[nb], uint32(ci.Interface))) {
					if !stable {
						bpkts[nb].Payload = nil // not read; may not outlive the next call of Next
					}
					bts[nb], bifx[nb] = ci.Timestamp, uint32(ci.Interface)
					if nb++; nb == meter.BatchMax {
						flushBatch()
					}
				}
			} else if err := dec.DecodeInfo(data, &ci, &pkt); err == nil && (ws.keep == nil || ws.keep(&pkt, uint32(ci.Interface))) {
				tab.Add(&pkt, ci.Timestamp, uint32(ci.Interface))
			}
			if n == publishEvery {
				flushBatch()
				publish(si, s)
				if ctx.Err() != nil {
					break
				}
				if p.reconfigured(ws) {
					p.join(ws, tab)
					batched = ws.headersOnly || stable
				}
				if p.cfg.Progress != nil && time.Since(lastProgress) > 500*time.Millisecond {
					lastProgress = time.Now()
					p.cfg.Progress(p.packets.Load())
				}
			}
		}
		flushBatch()
		publish(si, s)
		if ctx.Err() != nil {
			break
		}
	}
	tab.Flush()
	p.publishMeter(0, tab)
	p.stopWorker(ws)
	return runErr
}

// item is one packet in a batch: its decoded headers, with Payload
// rebased into the batch arena.
type item struct {
	pkt decode.Packet
	ts  int64
	ifx uint32
}

type batch struct {
	arena []byte
	items []item
	gen   uint64 // regulation generation the reader selected the items at
	// swap is the reconfiguration (Pipeline.swapSeq) the single reader
	// of a file read its items under: a worker joins a reconfiguration
	// when it meets the first batch of the new one, so every packet read
	// before the reader saw the reload is metered under the old
	// configuration and every later one under the new, whichever worker
	// it goes to.
	swap uint64
	// restart: the worker restarts its table (meter.Table.Restart)
	// before the items, which belong to a file older than the one before.
	restart bool
}

const (
	batchItems = 256
	arenaSize  = 512 << 10
)

// newBatch makes a batch; its arena is allocated when a payload is
// first copied in (never for stable sources).
func newBatch() *batch {
	return &batch{items: make([]item, 0, batchItems)}
}

// shardOf hashes the innermost addresses and ports symmetrically.
func shardOf(pk *decode.Packet, n int) int {
	if n == 1 {
		return 0
	}
	a, b := pk.Src.As16(), pk.Dst.As16()
	var h uint64 = 14695981039346656037
	for i := 0; i < 16; i++ {
		h ^= uint64(a[i]) + uint64(b[i]) // symmetric in a, b
		h *= 1099511628211
	}
	h ^= uint64(pk.Sport) + uint64(pk.Dport)
	h *= 1099511628211
	h ^= uint64(pk.Proto)
	h *= 1099511628211
	return int(h % uint64(n))
}

func (p *Pipeline) runSharded(ctx context.Context, srcs []drivers.Source, live bool) error {
	w := p.cfg.Workers
	queues := make([]chan *batch, w)
	pool := sync.Pool{New: func() any { return newBatch() }}
	// Paced: live, or a file replayed at --speed. The reader never
	// waits for the workers; a full queue drops (and regulation acts).
	paced := live || p.cfg.Speed > 0
	wake := make([]chan struct{}, w)
	for i := range queues {
		queues[i] = make(chan *batch, p.cfg.QueueBatches)
		wake[i] = make(chan struct{}, 1)
	}
	p.mu.Lock()
	p.queues = queues
	p.mu.Unlock()
	readWake := make(chan struct{}, 1)
	p.swapMu.Lock()
	p.wake = wake
	if !live {
		p.readWake = readWake
	}
	p.swapMu.Unlock()
	stopReg := p.startRegulation(w, paced)
	defer stopReg()
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		// Registered before any packet is read: a reconfiguration
		// waits for every worker.
		tab, ws := p.startWorker(i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p.worker(i, tab, ws, queues[i], wake[i], &pool, live, p.reg.shard(i))
		}(i)
	}
	readers := len(srcs)
	if !live {
		readers = 1
	}
	p.mu.Lock()
	p.decoders = make([]*decode.Decoder, readers)
	p.decStats = make([]decode.Counters, readers)
	p.mu.Unlock()

	var errMu sync.Mutex
	var runErr error
	var rwg sync.WaitGroup
	read := func(ri int, list []int) {
		defer rwg.Done()
		dec := decode.New(p.cfg.Decode)
		p.mu.Lock()
		p.decoders[ri] = dec
		p.mu.Unlock()
		cur := make([]*batch, w)
		for i := range cur {
			cur[i] = pool.Get().(*batch)
		}
		// Self-regulation selects connections here, before queueing.
		rr := p.reg.reader()
		// A file's single reader cuts the packet stream for a
		// reconfiguration (batch.swap); live readers have no common
		// order, there workers join at their next batch.
		readSeq := p.swapSeq.Load()
		send := func(i int) {
			b := cur[i]
			if len(b.items) == 0 {
				return
			}
			if rr != nil {
				b.gen = rr.gen
			}
			b.swap = readSeq
			if paced {
				select {
				case queues[i] <- b:
				default:
					p.queueDrops.Add(uint64(len(b.items)))
					iv := uint32(1)
					if rr != nil {
						_, iv = levelState(rr.level)
					}
					p.queueDropsScaled.Add(uint64(len(b.items)) * uint64(iv))
					b.items, b.arena = b.items[:0], b.arena[:0]
					return
				}
			} else {
				select {
				case queues[i] <- b:
				case <-ctx.Done():
					return
				}
			}
			cur[i] = pool.Get().(*batch)
		}
		// cut is a file's reconfiguration cut: what was read goes out
		// under the old configuration, then every worker gets a
		// (possibly empty) batch of the new one, even when its queue
		// is full.
		cut := func(sq uint64) {
			for i := range cur {
				send(i)
			}
			readSeq = sq
			for i := range queues {
				b := pool.Get().(*batch)
				b.swap = sq
				if rr != nil {
					b.gen = rr.gen
				}
				select {
				case queues[i] <- b:
				case <-ctx.Done():
				}
			}
		}
		var n, octets uint64
		// A paced replay's clock: the packet at capture time ts0 went
		// at start; now is the time since start at the clock's last
		// reading; inv is 1/Speed.
		var pace struct {
			start time.Time
			now   time.Duration
			ts0   int64
		}
		inv := 0.0
		if p.cfg.Speed > 0 {
			inv = 1 / p.cfg.Speed
		}
		publish := func(si int) {
			p.packets.Add(n)
			p.octets.Add(octets)
			n, octets = 0, 0
			p.publishDecoder(ri, dec)
			p.publishSource(si, srcs[si])
		}
		lastFlush := time.Now()
		var latest int64 // the capture's latest packet time so far (files)
		for li, si := range list {
			s := srcs[si]
			stable := false
			if st, ok := s.(drivers.StableSource); ok {
				stable = st.DataStable()
			}
			first := !live && li > 0
			for ctx.Err() == nil {
				data, ci, err := s.Next()
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, drivers.ErrClosed) {
						break
					}
					if errors.Is(err, drivers.ErrTimeout) {
						for i := range cur {
							send(i)
						}
						publish(si)
						continue
					}
					errMu.Lock()
					runErr = errors.Join(runErr, fmt.Errorf("pipeline: source %d: %w", si, err))
					errMu.Unlock()
					break
				}
				if first {
					first = false
					if ci.Timestamp < latest {
						// A file older than the one before: a
						// capture of its own. What was read goes
						// out, then every worker restarts its
						// table (an empty batch, even when its
						// queue is full), as at a reconfiguration.
						for i := range cur {
							send(i)
						}
						for i := range queues {
							b := pool.Get().(*batch)
							b.swap, b.restart = readSeq, true
							if rr != nil {
								b.gen = rr.gen
							}
							select {
							case queues[i] <- b:
							case <-ctx.Done():
							}
						}
						latest = 0
						pace.start = time.Time{}
					}
				}
				if !live {
					latest = max(latest, ci.Timestamp)
					if sq := p.swapSeq.Load(); sq != readSeq {
						cut(sq)
					}
				}
				if p.cfg.Speed > 0 {
					// As a NIC would deliver it: wait until the
					// packet's time, scaled, has come, from the
					// first packet on. The clock is read only for
					// a packet due after its last reading (behind
					// the pace, none is).
					if pace.start.IsZero() {
						pace.start, pace.ts0, pace.now = time.Now(), ci.Timestamp, 0
					}
					due := time.Duration(float64(ci.Timestamp-pace.ts0) * inv)
					if due > pace.now {
						pace.now = time.Since(pace.start)
					}
					// A packet due within 50 µs goes now: waiting
					// for each of a dense stretch would hand the
					// workers batches of one packet.
					if d := due - pace.now; d > 50*time.Microsecond {
						for i := range cur {
							send(i)
						}
						// Waiting: the counters (/metrics, SNMP) say
						// what was read, as live capture's do, not
						// only every publishEvery packets.
						if time.Since(lastFlush) > tickEvery {
							lastFlush = time.Now()
							publish(si)
						}
						// A stop (SIGTERM, Ctrl-C) ends the wait: a
						// quiet hour of the capture at --speed 1
						// made it wait an hour. So does a
						// reconfiguration (SIGHUP): it waited for
						// the reader's cut.
						t := time.NewTimer(d)
					wait:
						for {
							select {
							case <-t.C:
								break wait
							case <-ctx.Done():
								t.Stop()
								break wait
							case <-readWake:
								if sq := p.swapSeq.Load(); !live && sq != readSeq {
									cut(sq)
								}
							}
						}
						pace.now = time.Since(pace.start)
						if ctx.Err() != nil {
							// Stopped before the packet's time:
							// it did not arrive.
							break
						}
					}
				}
				n++
				octets += uint64(ci.Length)
				if rr != nil && n&15 == 0 {
					p.reg.offered.Add(16)
					p.reg.now.Store(ci.Timestamp)
					if g := p.reg.gen.Load(); g != rr.gen {
						// Batches hold packets of one selection.
						for i := range cur {
							send(i)
						}
						rr.select_(g)
					}
				}
				var pk decode.Packet
				if dec.Decode(data, ci, &pk) != nil {
					continue
				}
				if !rr.keep(&pk) {
					continue
				}
				sh := shardOf(&pk, w)
				b := cur[sh]
				// A stable source's frames stay valid (a mapped
				// file): payloads are scanned in place, not copied.
				copyPayload := len(pk.Payload) > 0 && !stable
				if len(b.items) == cap(b.items) || copyPayload && cap(b.arena) > 0 && len(b.arena)+len(data) > cap(b.arena) {
					send(sh)
					b = cur[sh]
				}
				if copyPayload {
					if b.arena == nil {
						b.arena = make([]byte, 0, arenaSize)
					}
					if len(data) <= cap(b.arena)-len(b.arena) {
						off := uintptr(unsafe.Pointer(unsafe.SliceData(pk.Payload))) - uintptr(unsafe.Pointer(unsafe.SliceData(data)))
						start := len(b.arena)
						b.arena = append(b.arena, data...)
						pk.Payload = b.arena[start+int(off) : start+int(off)+len(pk.Payload) : start+int(off)+len(pk.Payload)]
					} else {
						pk.Payload = nil
					}
				}
				ifx := uint32(ci.Interface)
				if live {
					ifx = p.ifIndex(si, ci.Interface)
				}
				b.items = append(b.items, item{pkt: pk, ts: ci.Timestamp, ifx: ifx})
				if n&(publishEvery-1) == 0 {
					publish(si)
					if p.cfg.Progress != nil {
						p.cfg.Progress(p.packets.Load())
					}
				}
				// Live, partly filled batches are handed over every
				// 100 ms; the clock is read every 64 packets.
				if live && n&63 == 0 && time.Since(lastFlush) > tickEvery {
					lastFlush = time.Now()
					for i := range cur {
						send(i)
					}
					publish(si)
				}
			}
			p.publishSource(si, s)
			if ctx.Err() != nil {
				break
			}
		}
		for i := range cur {
			send(i)
		}
		p.packets.Add(n)
		p.octets.Add(octets)
		p.publishDecoder(ri, dec)
		for _, si := range list {
			p.publishSource(si, srcs[si])
		}
	}
	if live {
		for i := range srcs {
			rwg.Add(1)
			go read(i, []int{i})
		}
	} else {
		all := make([]int, len(srcs))
		for i := range all {
			all[i] = i
		}
		rwg.Add(1)
		go read(0, all)
	}
	if live {
		// Live sources block in Next; closing them on cancel ends
		// the readers.
		stop := context.AfterFunc(ctx, func() {
			for _, s := range srcs {
				s.Close()
			}
		})
		defer stop()
	}
	rwg.Wait()
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return runErr
}

// filter returns worker i's packet filter, nil when none is configured.
func (p *Pipeline) filter(i int) func(*decode.Packet, uint32) bool {
	if p.cfg.Filter == nil {
		return nil
	}
	return p.cfg.Filter(i)
}

func (p *Pipeline) worker(i int, tab *meter.Table, ws *workerState, q <-chan *batch, wake <-chan struct{}, pool *sync.Pool, live bool, reg *shardReg) {
	var tick <-chan time.Time
	if live || p.cfg.Speed > 0 {
		// A paced replay (--speed) hands over the records of ended
		// flows each second too, as live capture does: without it they
		// waited for a full export batch (256 records) or the end of
		// the file. Its clock stays the capture's (HandOver).
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b, ok := <-q:
			if !ok {
				tab.Flush()
				p.publishMeter(i, tab)
				p.stopWorker(ws)
				return
			}
			if live && p.reconfigured(ws) || !live && b.swap != ws.seq {
				p.join(ws, tab)
			}
			if b.restart {
				tab.Restart()
			}
			if reg != nil {
				// The reader selected these packets at b.level.
				reg.updateTo(tab, b.gen)
				reg.r.served.Add(uint64(len(b.items)))
			}
			for j := range b.items {
				it := &b.items[j]
				if ws.keep != nil && !ws.keep(&it.pkt, it.ifx) {
					continue
				}
				tab.Add(&it.pkt, it.ts, it.ifx)
			}
			clear(b.items)
			b.items, b.arena = b.items[:0], b.arena[:0]
			b.restart = false
			pool.Put(b)
			p.publishMeter(i, tab)
		case now := <-tick:
			if live {
				tab.Tick(now.UnixNano())
			} else {
				tab.HandOver()
			}
			p.publishMeter(i, tab)
		case <-wake:
			// A file's workers wait for the reader's cut (batch.swap).
			if live && p.reconfigured(ws) {
				p.join(ws, tab)
			}
		}
	}
}

// Records is a convenience sink that collects every record (tests, small
// captures).
type Records struct {
	mu   sync.Mutex
	Recs []flow.Record
}

// Sink returns a Sink appending to r.
func (r *Records) Sink() Sink {
	return func(recs []flow.Record) {
		r.mu.Lock()
		r.Recs = append(r.Recs, recs...)
		r.mu.Unlock()
	}
}
