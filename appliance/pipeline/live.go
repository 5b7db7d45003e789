package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/drivers"
)

// Shards returns how many flow-table shards (workers, each with its own
// packet filter) Run will use for these sources: one per source when
// every source is live and reads in batches (drivers.BatchSource: each
// is one socket of a fanout group and its worker reads it directly),
// Config.Workers otherwise.
func Shards(cfg Config, srcs []drivers.Source, live bool) int {
	if live && allBatch(srcs) {
		return len(srcs)
	}
	return max(cfg.Workers, 1)
}

func allBatch(srcs []drivers.Source) bool {
	if len(srcs) == 0 {
		return false
	}
	for _, s := range srcs {
		if _, ok := s.(drivers.BatchSource); !ok {
			return false
		}
	}
	return true
}

// liveBatch is how many frames a worker takes from its ring at once.
const liveBatch = 64

// drainFor bounds how long stopping live workers read on to empty
// their rings (traffic that does not pause is cut there).
const drainFor = time.Second

// tickEvery is how often live workers advance their flow table's clock
// without packets and publish their counters.
const tickEvery = 100 * time.Millisecond

// runBatched runs one worker per source, each reading its source's
// frames in place (NextBatch), decoding them and metering them in
// batches (meter.Table.AddBatch) on its own goroutine with its own flow
// table: the kernel's fanout spreads flows over the sources, so no
// packet crosses goroutines. The clock is read once per tick, not per
// packet: packets carry the kernel's timestamps.
func (p *Pipeline) runBatched(ctx context.Context, srcs []drivers.Source) error {
	n := len(srcs)
	p.mu.Lock()
	p.decoders = make([]*decode.Decoder, n)
	p.decStats = make([]decode.Counters, n)
	p.meterStats = make([]meter.Stats, n)
	p.mu.Unlock()
	p.mu.Lock()
	p.backlogs = nil
	for _, s := range srcs {
		if b, ok := s.(drivers.Backlogger); ok {
			p.backlogs = append(p.backlogs, b)
		}
	}
	p.mu.Unlock()
	stopReg := p.startRegulation(n, true)
	defer stopReg()
	// Stopping drains the rings: the workers read on until their
	// source has nothing more for a poll timeout (frames the kernel
	// holds in a block not yet handed over appear within its block
	// timeout), then end; sources still busy after drainFor are closed.
	var draining atomic.Bool
	var closeTimer *time.Timer
	var timerMu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		draining.Store(true)
		timerMu.Lock()
		closeTimer = time.AfterFunc(drainFor, func() {
			for _, s := range srcs {
				s.Close()
			}
		})
		timerMu.Unlock()
	})
	defer func() {
		stop()
		timerMu.Lock()
		if closeTimer != nil {
			closeTimer.Stop()
		}
		timerMu.Unlock()
	}()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.liveWorker(i, s.(drivers.BatchSource), p.reg.shard(i), &draining)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Pipeline) liveWorker(i int, src drivers.BatchSource, reg *shardReg, draining *atomic.Bool) error {
	dec := decode.New(p.cfg.Decode)
	p.mu.Lock()
	p.decoders[i] = dec
	p.mu.Unlock()
	tab, ws := p.startWorker(i)
	var (
		frames [liveBatch][]byte
		cis    [liveBatch]drivers.CaptureInfo
		pkts   [liveBatch]decode.Packet
		ts     [liveBatch]int64
		ifx    [liveBatch]uint32
	)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	var packets, octets uint64
	publish := func() {
		p.packets.Add(packets)
		p.octets.Add(octets)
		packets, octets = 0, 0
		p.publishDecoder(i, dec)
		p.publishMeter(i, tab)
		p.publishSource(i, src)
	}
	defer func() {
		tab.Flush()
		publish()
		p.stopWorker(ws)
	}()
	for {
		if p.reconfigured(ws) {
			p.join(ws, tab)
		}
		n, err := src.NextBatch(frames[:], cis[:])
		switch {
		case err == nil:
		case errors.Is(err, drivers.ErrTimeout):
			if draining.Load() {
				return nil // stopping, and the ring is empty
			}
			// No traffic for a poll timeout: reading the clock is
			// cheap now.
			tab.Tick(time.Now().UnixNano())
			publish()
			continue
		case errors.Is(err, drivers.ErrClosed):
			return nil
		default:
			return fmt.Errorf("pipeline: source %d: %w", i, err)
		}
		reg.update(tab)
		if p.reg != nil {
			p.reg.now.Store(cis[n-1].Timestamp)
			p.reg.read.Add(uint64(n))
		}
		m := 0
		for j := range n {
			ci := &cis[j]
			packets++
			octets += uint64(ci.Length)
			if dec.DecodeInfo(frames[j], ci, &pkts[m]) != nil {
				continue
			}
			x := p.ifIndex(i, ci.Interface)
			if ws.keep != nil && !ws.keep(&pkts[m], x) {
				continue
			}
			if !reg.keep(&pkts[m]) {
				continue
			}
			ts[m], ifx[m] = ci.Timestamp, x
			m++
		}
		// The frames stay valid until the next NextBatch: payloads are
		// scanned in place.
		tab.AddBatch(pkts[:m], ts[:m], ifx[:m])
		select {
		case now := <-tick.C:
			tab.Tick(now.UnixNano())
			publish()
		default:
		}
	}
}
