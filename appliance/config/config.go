package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mira-project/mira/agent"
	"github.com/mira-project/mira/appliance/aggregate"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/appliance/sampling"
	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/internal/yamlnode"
	"github.com/mira-project/mira/ipfix"
)

//go:embed probe.yaml
var defaultProbe []byte

// DefaultProbeYAML returns the embedded default probe configuration.
func DefaultProbeYAML() []byte { return bytes.Clone(defaultProbe) }

// Probe is mira-probe's configuration.
type Probe struct {
	Probe struct {
		// Name identifies the probe in reports (default: the host name).
		Name string `yaml:"name"`
		// ObservationDomain is the IPFIX observation domain id.
		ObservationDomain uint32 `yaml:"observation_domain"`
	} `yaml:"probe"`
	Capture  Capture  `yaml:"capture"`
	Meter    Meter    `yaml:"meter"`
	Pipeline Pipeline `yaml:"pipeline"`
	Export   []Export `yaml:"export"`
	Symptoms Symptoms `yaml:"symptoms"`
	// FastClass lists address prefixes whose flows get a category
	// without payload scanning (appliance/fastclass).
	FastClass FastClass `yaml:"fastclass"`
	// Aggregates labels flows with aggregates and sets the capture scope;
	// Sampling selects packets or flows (appliance/selection).
	Aggregates aggregate.Config `yaml:"aggregates"`
	Sampling   sampling.Config  `yaml:"sampling"`
	// SNMPListen is the SNMP agent's UDP address ("" = no agent); SNMP
	// is the agent's configuration (communities, v3 users, targets).
	SNMPListen string       `yaml:"snmp_listen"`
	SNMP       agent.Config `yaml:"snmp"`
	Metrics    Listen       `yaml:"metrics"`
	Log        Log          `yaml:"log"`
	// DrainTimeout bounds how long the probe, when it stops, keeps
	// trying to deliver what its spools hold (0: until delivered when
	// reading files, 30s when capturing live; what is left stays spooled
	// for the next start).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Capture selects the capture sources.
type Capture struct {
	Files       []string `yaml:"files"`
	Interfaces  []string `yaml:"interfaces"`
	Snaplen     int      `yaml:"snaplen"`
	Promiscuous bool     `yaml:"promiscuous"`
}

// Meter sets flow-table limits.
type Meter struct {
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	ActiveTimeout time.Duration `yaml:"active_timeout"`
	TCPEndTimeout time.Duration `yaml:"tcp_end_timeout"`
	MaxFlows      int           `yaml:"max_flows"`
	// AppMetadata exports each flow's HTTP host, TLS/QUIC server name
	// and ALPN, and DNS question name and response code.
	AppMetadata bool `yaml:"app_metadata"`
}

// Pipeline sets the worker layout.
type Pipeline struct {
	// Workers is the number of flow-table shards (goroutines); 0 = 1.
	Workers int `yaml:"workers"`
	// QueueBatches bounds each worker's input queue, in batches.
	QueueBatches int `yaml:"queue_batches"`
	// Speed, when positive, replays capture files at Speed times their
	// own pace with live overload behaviour (mira-probe -r F --speed N).
	Speed float64 `yaml:"speed"`
	// Regulation tunes self-regulation (live capture and paced replay).
	Regulation Regulation `yaml:"regulation"`
}

// Regulation tunes self-regulation; the zero value means the defaults
// (appliance/pipeline.RegulationConfig).
type Regulation struct {
	Disabled bool          `yaml:"disabled"`
	High     float64       `yaml:"high"` // backlog fill that starts shedding, then sampling (default 0.5)
	Low      float64       `yaml:"low"`  // fill below which the probe steps back (default high/5)
	Hold     time.Duration `yaml:"hold"` // how long the fill must stay low first (default 2s)
}

// Export is one IPFIX export target.
type Export struct {
	URL             string        `yaml:"url"`
	TemplateRefresh time.Duration `yaml:"template_refresh"`
	MTU             int           `yaml:"mtu"`
	// Rate paces a udp:// target, in bytes a second (0: the default,
	// exporter.DefaultUDPRate; -1: unpaced); Burst is how many bytes
	// may go back to back (0: exporter.DefaultUDPBurst).
	Rate       int           `yaml:"rate"`
	Burst      int           `yaml:"burst"`
	FileRotate time.Duration `yaml:"file_rotate"`
	// TLS is used by tls:// URLs.
	TLS TLS `yaml:"tls"`
	// Spool keeps what is sent to a tcp:// or tls:// target on disk
	// until its delivery is known (exporter.Spool).
	Spool *Spool `yaml:"spool"`
}

// Spool is an export target's spool.
type Spool struct {
	// Dir holds the spool file; one directory per target.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool (0: 256 MiB); beyond it the oldest
	// messages are dropped and counted.
	MaxBytes int64 `yaml:"max_bytes"`
	// Window is how long a sent message stays spooled for a resend
	// after a reconnect (0: 10s).
	Window time.Duration `yaml:"window"`
}

// Symptoms selects the symptom database.
type Symptoms struct {
	// File is a symptom database; empty means the embedded default.
	File string `yaml:"file"`
	// Disabled turns payload scanning off.
	Disabled bool `yaml:"disabled"`
	// ScanLimit bounds the bytes scanned per flow direction (0 = unlimited).
	ScanLimit int64 `yaml:"scan_limit"`
}

// FastClass names fast-classification lists.
type FastClass struct {
	// Files are address/prefix lists: YAML, or CSV when named *.csv.
	Files []string `yaml:"files"`
}

// Listen is an optional listening address.
type Listen struct {
	Listen string `yaml:"listen"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Error is a configuration error with its position: file, line and key
// path.
type Error = yamlnode.Error

// LoadProbe reads the embedded defaults, then path if it is not empty.
func LoadProbe(path string) (*Probe, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseProbe(path, b)
}

// ParseProbe parses a probe configuration from memory over the defaults.
// Every problem is reported (joined), each with file, line and key.
func ParseProbe(name string, b []byte) (*Probe, error) {
	var c Probe
	if err := overlay(&c, "probe.yaml (embedded)", defaultProbe, name, b); err != nil {
		return nil, err
	}
	root, err := yamlnode.Parse(name, b)
	if err != nil {
		return nil, err
	}
	if err := c.validate(root); err != nil {
		return nil, err
	}
	return &c, nil
}

// readFile reads a configuration file; no path means no file.
func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

// overlay decodes the embedded defaults, then the user's bytes, into v.
func overlay(v any, defName string, def []byte, name string, b []byte) error {
	if err := decode(defName, def, v); err != nil {
		return err
	}
	return decode(name, b, v)
}

func decode(file string, b []byte, v any) error {
	return yamlnode.Decode(file, b, v)
}

// problems collects validation errors, each located in the user's file
// (root) by its key path.
type problems struct {
	root yamlnode.Node
	errs []error
}

func (p *problems) add(key string, format string, a ...any) {
	p.errs = append(p.errs, p.root.At(key, fmt.Errorf(format, a...)))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func (p *problems) log(l Log) {
	switch l.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.add("log.level", "invalid value %q (want debug, info, warn or error)", l.Level)
	}
	switch l.Format {
	case "", "text", "json":
	default:
		p.add("log.format", "invalid value %q (want text or json)", l.Format)
	}
}

// MaxWorkers bounds pipeline.workers (and mira-probe --workers): each
// worker is a goroutine with its own flow table, so far more than the
// machine's cores only costs memory, and a mistyped count exhausted it
// (100000 workers: the Go runtime's fatal "out of memory").
const MaxWorkers = 1024

func (c *Probe) validate(root yamlnode.Node) error {
	p := &problems{root: root}
	if c.Meter.MaxFlows < 0 {
		p.add("meter.max_flows", "must not be negative")
	} else if c.Meter.MaxFlows > meter.MaxFlowsLimit {
		p.add("meter.max_flows", "%d is more than a flow table holds (%d)", c.Meter.MaxFlows, meter.MaxFlowsLimit)
	}
	if c.Pipeline.Workers < 0 {
		p.add("pipeline.workers", "must not be negative")
	} else if c.Pipeline.Workers > MaxWorkers {
		p.add("pipeline.workers", "%d is more than %d", c.Pipeline.Workers, MaxWorkers)
	}
	// Negative durations and sizes meant the default before, silently.
	for _, d := range []struct {
		key string
		v   int64
	}{
		{"meter.idle_timeout", int64(c.Meter.IdleTimeout)}, {"meter.active_timeout", int64(c.Meter.ActiveTimeout)},
		{"meter.tcp_end_timeout", int64(c.Meter.TCPEndTimeout)}, {"drain_timeout", int64(c.DrainTimeout)},
		{"capture.snaplen", int64(c.Capture.Snaplen)}, {"pipeline.queue_batches", int64(c.Pipeline.QueueBatches)},
		{"pipeline.regulation.hold", int64(c.Pipeline.Regulation.Hold)}, {"symptoms.scan_limit", c.Symptoms.ScanLimit},
	} {
		if d.v < 0 {
			p.add(d.key, "must not be negative")
		}
	}
	for i, e := range c.Export {
		for _, d := range []struct {
			key string
			v   int64
		}{{"template_refresh", int64(e.TemplateRefresh)}, {"mtu", int64(e.MTU)}, {"file_rotate", int64(e.FileRotate)}} {
			if d.v < 0 {
				p.add(fmt.Sprintf("export[%d].%s", i, d.key), "must not be negative")
			}
		}
		if least := ipfix.MinMessageLen(); e.MTU > 0 && e.MTU < least {
			// Each record then went out alone, in a message over it.
			p.add(fmt.Sprintf("export[%d].mtu", i), "%d is less than a message with a flow template and one record needs (%d)", e.MTU, least)
		}
		if e.Rate < -1 {
			p.add(fmt.Sprintf("export[%d].rate", i), "%d: want bytes a second, 0 for the default or -1 for unpaced", e.Rate)
		}
		if e.Burst < 0 {
			p.add(fmt.Sprintf("export[%d].burst", i), "must not be negative")
		}
		if (e.Rate != 0 || e.Burst != 0) && !strings.HasPrefix(e.URL, "udp://") {
			key := "rate"
			if e.Rate == 0 {
				key = "burst"
			}
			p.add(fmt.Sprintf("export[%d].%s", i, key), "%s: only udp:// targets are paced (streams have flow control)", e.URL)
		}
		if e.Spool != nil && e.Spool.Window < 0 {
			p.add(fmt.Sprintf("export[%d].spool.window", i), "must not be negative")
		}
	}
	if c.Pipeline.Speed < 0 {
		p.add("pipeline.speed", "must not be negative")
	}
	if r := c.Pipeline.Regulation; r.High < 0 || r.High > 1 {
		p.add("pipeline.regulation.high", "%v is not a queue fill between 0 and 1", r.High)
	} else if r.Low < 0 || r.Low > 1 {
		p.add("pipeline.regulation.low", "%v is not a queue fill between 0 and 1", r.Low)
	}
	for i, e := range c.Export {
		key := fmt.Sprintf("export[%d].url", i)
		if e.URL == "" {
			p.add(key, "missing")
		} else if err := exporter.CheckURL(e.URL); err != nil {
			p.add(key, "%v", err)
		}
		if e.Spool != nil {
			key := fmt.Sprintf("export[%d].spool", i)
			if !strings.HasPrefix(e.URL, "tcp://") && !strings.HasPrefix(e.URL, "tls://") {
				p.add(key, "%s: only tcp:// and tls:// targets can be spooled (UDP reports no failure, files need none)", e.URL)
			}
			if e.Spool.Dir == "" {
				p.add(key+".dir", "missing")
			}
			if e.Spool.MaxBytes < 0 {
				p.add(key+".max_bytes", "must not be negative")
			}
		}
	}
	p.log(c.Log)
	if err := aggregate.Check(&c.Aggregates); err != nil {
		var ce *aggregate.ConfigError
		if errors.As(err, &ce) {
			p.errs = append(p.errs, root.At(ce.Key, ce.Err))
		} else {
			p.errs = append(p.errs, root.At("aggregates", err))
		}
	}
	if m, err := sampling.ParseMode(c.Sampling.Mode); err != nil {
		p.add("sampling.mode", "%v", err)
	} else if m != sampling.None && c.Sampling.Interval == 0 {
		// Interval 0 was taken as 1, every packet: a mode that samples
		// nothing, silently (the defaults' interval is 1).
		p.add("sampling.interval", "0 with mode %s: want N >= 1 (1 in N packets or flows)", c.Sampling.Mode)
	}
	if err := c.SNMP.Validate(); err != nil {
		var ce *agent.ConfigError
		if errors.As(err, &ce) {
			key := "snmp"
			if ce.Key != "" {
				key += "." + ce.Key
			}
			p.errs = append(p.errs, root.At(key, ce.Err))
		} else {
			p.errs = append(p.errs, root.At("snmp", err))
		}
	}
	return p.err()
}
