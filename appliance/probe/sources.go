package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/afpacket"
	"github.com/mira-project/mira/drivers/fore"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/exporter"
)

// openSources opens the configured capture files, or failing those the
// live interfaces. Files and interfaces are not mixed: files are replayed
// in capture time, interfaces run in wall-clock time.
func openSources(c *config.Probe) (srcs []drivers.Source, live bool, err error) {
	if len(c.Capture.Files) > 0 && len(c.Capture.Interfaces) > 0 {
		return nil, false, errors.New("probe: give capture files or interfaces, not both")
	}
	closeAll := func() {
		for _, s := range srcs {
			s.Close()
		}
	}
	for _, f := range c.Capture.Files {
		s, err := OpenFile(f)
		if err != nil {
			closeAll()
			return nil, false, err
		}
		srcs = append(srcs, s)
	}
	for _, name := range c.Capture.Interfaces {
		s, err := openLive(name, c.Capture.Snaplen, c.Capture.Promiscuous, c.Pipeline.Workers)
		if err != nil {
			closeAll()
			return nil, false, fmt.Errorf("probe: capture on %s: %w", name, err)
		}
		srcs = append(srcs, s...)
		live = true
	}
	return srcs, live, nil
}

func openExporter(e config.Export, cfg *exporter.Config) (Exporter, error) {
	if !e.TLS.IsZero() || strings.HasPrefix(e.URL, "tls:") {
		t, err := e.TLS.Client()
		if err != nil {
			return nil, fmt.Errorf("probe: export %s: %w", e.URL, err)
		}
		cfg.TLS = t
	}
	x, err := exporter.New(e.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("probe: export %s: %w", e.URL, err)
	}
	return x, nil
}

// exporterConfig is the exporter configuration for target e: its own
// transport settings, and what every target announces (sampling, names).
// liveDrain is how long a live probe's spools drain when it stops and
// drain_timeout is not set.
const liveDrain = 30 * time.Second

func (p *Probe) exporterConfig(e config.Export) *exporter.Config {
	return p.exporterConfigWith(e, &classifiers{db: p.db.Load(), fast: p.fast.Load(), sel: p.sel.Load()})
}

// exporterConfigWith is exporterConfig announcing cl's names and sampling.
func (p *Probe) exporterConfigWith(e config.Export, cl *classifiers) *exporter.Config {
	var sp *exporter.SpoolConfig
	if e.Spool != nil {
		drain := p.cfg.DrainTimeout
		if drain == 0 && p.liveRun {
			// A live probe that is stopped should stop: what it could
			// not deliver stays spooled for its next start.
			drain = liveDrain
		}
		sp = &exporter.SpoolConfig{Dir: e.Spool.Dir, MaxBytes: e.Spool.MaxBytes, Window: e.Spool.Window, DrainTimeout: drain}
	}
	p.mu.Lock()
	smp := p.exportSamplingOf(cl.sel)
	p.mu.Unlock()
	var wait, paceWait time.Duration
	if p.liveRun {
		// A live capture must not wait for an unreachable collector; a
		// file replay waits for the connection rather than lose records.
		wait = exporter.LiveConnectWait
		// Nor for long on the UDP pace (until it stops: paceFully).
		paceWait = exporter.LivePaceWait
	}
	return &exporter.Config{
		ConnectWait: wait,
		PaceMaxWait: paceWait,
		UDPRate:     e.Rate,
		UDPBurst:    e.Burst,
		Spool:       sp,
		Ledger:      p.captureLoss,
		RegulationChanges: func() uint64 {
			if pipe := p.pipe.Load(); pipe != nil {
				return pipe.Stats().Regulation.Changes
			}
			return 0
		},
		QueueLossScaled: func() uint64 {
			// Drops before the queues (Ledger.Queue) stood for
			// themselves.
			n := p.ledger.Queue.Load()
			if pipe := p.pipe.Load(); pipe != nil {
				n += pipe.Stats().QueueDropsScaled
			}
			return n
		},
		Sampling:        smp,
		AggregateNames:  cl.sel.AggregateNames(),
		SymptomNames:    symptomNames(cl.db),
		CategoryNames:   categoryNames(cl.fast),
		ElementTypes:    true,
		TemplateRefresh: e.TemplateRefresh,
		MTU:             e.MTU,
		FileRotate:      e.FileRotate,
	}
}

// OpenFile opens a capture file: ERF and legacy ATM cell files through
// the fore driver's readers, pcap and pcapng (gzipped or not) otherwise.
func OpenFile(path string) (drivers.Source, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("capture file: %w", err)
	}
	s, err := fore.Open(path)
	if errors.Is(err, fore.ErrNotATM) {
		return pcapfile.Open(path)
	}
	return s, err
}

// openLive opens a live capture: "fore:SPEC" is the Fore-style ATM card
// (see fore.OpenSpec), anything else an AF_PACKET interface.
// An AF_PACKET interface gets one socket per pipeline worker.
func openLive(name string, snaplen int, promisc bool, workers int) ([]drivers.Source, error) {
	if spec, ok := strings.CutPrefix(name, "fore:"); ok {
		s, err := fore.OpenSpec(spec)
		if err != nil {
			return nil, err
		}
		return []drivers.Source{s}, nil
	}
	// A poll timeout lets the workers advance their flow tables' clocks
	// and publish counters while traffic is light. Off Linux afpacket
	// fails with drivers.ErrUnsupported.
	cfg := &afpacket.Config{Snaplen: snaplen, NoPromiscuous: !promisc, PollTimeout: 100 * time.Millisecond}
	if workers <= 1 {
		s, err := afpacket.Open(name, cfg)
		if err != nil {
			return nil, err
		}
		return []drivers.Source{s}, nil
	}
	// One socket per worker, joined by flow-hash fanout: the kernel
	// spreads flows over the workers, both directions of a flow to one
	// worker.
	socks, err := afpacket.OpenFanout(name, workers, afpacket.FanoutHash, cfg)
	if err != nil {
		return nil, err
	}
	out := make([]drivers.Source, len(socks))
	for i, s := range socks {
		out[i] = s
	}
	return out, nil
}
