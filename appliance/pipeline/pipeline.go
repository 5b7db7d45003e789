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
	Meter        meter.Stats       // summed over shards
	Sources      []SourceStats
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
	mu                          sync.Mutex
	decoders                    []*decode.Decoder
	decStats                    []decode.Counters
	meterStats                  []meter.Stats
	sources                     []drivers.Source
	srcStats                    []SourceStats
}

// New makes a pipeline that hands records to sink.
func New(cfg Config, sink Sink) *Pipeline {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.QueueBatches <= 0 {
		cfg.QueueBatches = 64
	}
	return &Pipeline{cfg: cfg, sink: sink}
}

// Stats returns a snapshot of the counters; safe to call concurrently
// with Run.
func (p *Pipeline) Stats() Stats {
	s := Stats{
		Packets:      p.packets.Load(),
		Octets:       p.octets.Load(),
		QueueDrops:   p.queueDrops.Load(),
		DecodeErrors: map[string]uint64{},
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
		s.Meter.SymptomOccurrences = addSlices(s.Meter.SymptomOccurrences, m.SymptomOccurrences)
		s.Meter.SymptomFlows = addSlices(s.Meter.SymptomFlows, m.SymptomFlows)
		for i := range m.Expired {
			s.Meter.Expired[i] += m.Expired[i]
		}
	}
	s.Sources = append(s.Sources, p.srcStats...)
	return s
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
// the other, as one capture; live sources are read concurrently.
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
	if p.cfg.Workers == 1 && !live {
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
	tab := meter.New(&p.cfg.Meter, p.sink)
	tab.SetObservationDomain(p.cfg.Domain)
	keep := p.filter(0)
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
	headersOnly := p.cfg.Meter.Symptoms == nil && p.cfg.Meter.Label == nil
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
	for si, s := range srcs {
		into, _ := s.(drivers.IntoSource)
		stable := false
		if st, ok := s.(drivers.StableSource); ok {
			stable = st.DataStable()
		}
		batched := headersOnly || stable
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
			if batched {
				if err := dec.DecodeInfo(data, &ci, &bpkts[nb]); err == nil && (keep == nil || keep(&bpkts[nb], uint32(ci.Interface))) {
					if !stable {
						bpkts[nb].Payload = nil // not read; may not outlive the next call of Next
					}
					bts[nb], bifx[nb] = ci.Timestamp, uint32(ci.Interface)
					if nb++; nb == meter.BatchMax {
						flushBatch()
					}
				}
			} else if err := dec.DecodeInfo(data, &ci, &pkt); err == nil && (keep == nil || keep(&pkt, uint32(ci.Interface))) {
				tab.Add(&pkt, ci.Timestamp, uint32(ci.Interface))
			}
			if n == publishEvery {
				flushBatch()
				publish(si, s)
				if ctx.Err() != nil {
					break
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
}

const (
	batchItems = 256
	arenaSize  = 512 << 10
)

func newBatch() *batch {
	return &batch{arena: make([]byte, 0, arenaSize), items: make([]item, 0, batchItems)}
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
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		queues[i] = make(chan *batch, p.cfg.QueueBatches)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			p.worker(i, queues[i], &pool, live)
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
		send := func(i int) {
			b := cur[i]
			if len(b.items) == 0 {
				return
			}
			if live {
				select {
				case queues[i] <- b:
				default:
					p.queueDrops.Add(uint64(len(b.items)))
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
		var n, octets uint64
		lastFlush := time.Now()
		for _, si := range list {
			s := srcs[si]
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
						continue
					}
					errMu.Lock()
					runErr = errors.Join(runErr, fmt.Errorf("pipeline: source %d: %w", si, err))
					errMu.Unlock()
					break
				}
				n++
				octets += uint64(ci.Length)
				var pk decode.Packet
				if dec.Decode(data, ci, &pk) != nil {
					continue
				}
				sh := shardOf(&pk, w)
				b := cur[sh]
				if len(b.arena)+len(data) > cap(b.arena) || len(b.items) == cap(b.items) {
					send(sh)
					b = cur[sh]
				}
				if len(pk.Payload) > 0 && len(data) <= cap(b.arena)-len(b.arena) {
					off := uintptr(unsafe.Pointer(unsafe.SliceData(pk.Payload))) - uintptr(unsafe.Pointer(unsafe.SliceData(data)))
					start := len(b.arena)
					b.arena = append(b.arena, data...)
					pk.Payload = b.arena[start+int(off) : start+int(off)+len(pk.Payload) : start+int(off)+len(pk.Payload)]
				} else {
					pk.Payload = nil
				}
				b.items = append(b.items, item{pkt: pk, ts: ci.Timestamp, ifx: uint32(ci.Interface)})
				if n&(publishEvery-1) == 0 {
					p.packets.Add(n)
					p.octets.Add(octets)
					n, octets = 0, 0
					p.publishDecoder(ri, dec)
					p.publishSource(si, s)
					if p.cfg.Progress != nil {
						p.cfg.Progress(p.packets.Load())
					}
				}
				if live && time.Since(lastFlush) > 100*time.Millisecond {
					lastFlush = time.Now()
					for i := range cur {
						send(i)
					}
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

func (p *Pipeline) worker(i int, q <-chan *batch, pool *sync.Pool, live bool) {
	tab := meter.New(&p.cfg.Meter, p.sink)
	tab.SetObservationDomain(p.cfg.Domain)
	keep := p.filter(i)
	var tick <-chan time.Time
	if live {
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
				return
			}
			for j := range b.items {
				it := &b.items[j]
				if keep != nil && !keep(&it.pkt, it.ifx) {
					continue
				}
				tab.Add(&it.pkt, it.ts, it.ifx)
			}
			clear(b.items)
			b.items, b.arena = b.items[:0], b.arena[:0]
			pool.Put(b)
			p.publishMeter(i, tab)
		case now := <-tick:
			tab.Tick(now.UnixNano())
			p.publishMeter(i, tab)
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
