package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/appliance/aggregate"
	"github.com/mira-project/mira/appliance/sampling"
)

//go:embed probe.yaml
var defaultProbe []byte

//go:embed collector.yaml
var defaultCollector []byte

// DefaultProbeYAML returns the embedded default probe configuration.
func DefaultProbeYAML() []byte { return bytes.Clone(defaultProbe) }

// DefaultCollectorYAML returns the embedded default collector configuration.
func DefaultCollectorYAML() []byte { return bytes.Clone(defaultCollector) }

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
	SNMPListen string    `yaml:"snmp_listen"`
	SNMP       yaml.Node `yaml:"snmp"`
	Metrics    Listen    `yaml:"metrics"`
	Log        Log       `yaml:"log"`
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
}

// Pipeline sets the worker layout.
type Pipeline struct {
	// Workers is the number of flow-table shards (goroutines); 0 = 1.
	Workers int `yaml:"workers"`
	// QueueBatches bounds each worker's input queue, in batches.
	QueueBatches int `yaml:"queue_batches"`
}

// Export is one IPFIX export target.
type Export struct {
	URL             string        `yaml:"url"`
	TemplateRefresh time.Duration `yaml:"template_refresh"`
	MTU             int           `yaml:"mtu"`
	FileRotate      time.Duration `yaml:"file_rotate"`
	// TLS is used by tls:// URLs.
	TLS TLS `yaml:"tls"`
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

// Collector is mira-collector's configuration.
type Collector struct {
	Listen    []string `yaml:"listen"`
	DB        string   `yaml:"db"`
	HTTP      string   `yaml:"http"`
	Rules     string   `yaml:"rules"`
	Retention struct {
		MaxAge  time.Duration `yaml:"max_age"`
		MaxSize int64         `yaml:"max_size"`
	} `yaml:"retention"`
	Metrics Listen `yaml:"metrics"`
	Log     Log    `yaml:"log"`
	// Forward re-exports the consolidated biflows (RFC 5103 IPFIX) to
	// these collectors: udp://, tcp:// or file:///dir URLs.
	Forward []string `yaml:"forward"`
	// TLS is the certificate of tls:// listeners, and the CA whose
	// client certificates they require (none: any exporter may connect).
	TLS TLS `yaml:"tls"`
	// Allow lists the exporters accepted, as addresses or prefixes
	// (empty: all); see AllowPrefixes.
	Allow []string `yaml:"allow"`
}

// AllowPrefixes parses Allow: "192.0.2.9", "2001:db8::/32".
func (c *Collector) AllowPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for i, a := range c.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ad, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return nil, &Error{Key: fmt.Sprintf("allow[%d]", i), Msg: fmt.Sprintf("%q is neither an address nor a prefix", a)}
			}
			p = netip.PrefixFrom(ad.Unmap(), ad.Unmap().BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// Error is a configuration error with its position.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// LoadProbe reads the embedded defaults, then path if it is not empty.
func LoadProbe(path string) (*Probe, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseProbe(path, b)
}

// ParseProbe parses a probe configuration from memory over the defaults.
func ParseProbe(name string, b []byte) (*Probe, error) {
	var c Probe
	if err := overlay(&c, "probe.yaml (embedded)", defaultProbe, name, b); err != nil {
		return nil, err
	}
	if err := c.validate(name); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadCollector reads the embedded defaults, then path if not empty.
func LoadCollector(path string) (*Collector, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCollector(path, b)
}

// ParseCollector parses a collector configuration from memory over the defaults.
func ParseCollector(name string, b []byte) (*Collector, error) {
	var c Collector
	if err := overlay(&c, "collector.yaml (embedded)", defaultCollector, name, b); err != nil {
		return nil, err
	}
	if _, err := c.AllowPrefixes(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = name
		}
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

var (
	reLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	reNotFound = regexp.MustCompile(`^field (\S+) not found in type`)
	reCannot   = regexp.MustCompile(`^cannot unmarshal !!\S+ .(.*). into (\S+)$`)
)

func decode(file string, b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return syntaxError(file, err)
	}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	err := d.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return syntaxError(file, err)
	}
	// Report the first problem with its key path.
	m := reLine.FindStringSubmatch(te.Errors[0])
	if m == nil {
		return &Error{File: file, Msg: te.Errors[0]}
	}
	line, _ := strconv.Atoi(m[1])
	e := &Error{File: file, Line: line, Key: keyAt(&root, line, nil), Msg: m[2]}
	if n := reNotFound.FindStringSubmatch(m[2]); n != nil {
		// A flow mapping ({a: 1, b: 2}) puts several keys on one line:
		// name the one yaml refused.
		e.Key = keyAt(&root, line, func(k, _ *yaml.Node) bool { return k.Value == n[1] })
		e.Msg = "unknown key"
	} else if n := reCannot.FindStringSubmatch(m[2]); n != nil {
		val := strings.TrimSuffix(n[1], "...") // yaml shortens long values
		e.Key = keyAt(&root, line, func(_, v *yaml.Node) bool {
			return v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, val)
		})
		e.Msg = fmt.Sprintf("invalid value %q (want %s)", n[1], n[2])
	}
	if len(te.Errors) > 1 {
		e.Msg += fmt.Sprintf(" (and %d more errors)", len(te.Errors)-1)
	}
	return e
}

func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := reLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: m[2]}
	}
	return &Error{File: file, Msg: msg}
}

// keyAt returns the dotted path of the mapping key on the given line;
// when several keys share the line (a flow mapping), the first that
// match accepts (key and value nodes), or the first if none does.
func keyAt(n *yaml.Node, line int, match func(k, v *yaml.Node) bool) string {
	var first, matched string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line {
					if first == "" {
						first = p
					}
					if matched == "" && match != nil && match(k, v) {
						matched = p
					}
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode && first == "" {
					first = p
				}
				walk(c, p)
			}
		}
	}
	walk(n, "")
	if matched != "" {
		return matched
	}
	return first
}

func (c *Probe) validate(file string) error {
	if c.Meter.MaxFlows < 0 {
		return &Error{File: file, Key: "meter.max_flows", Msg: "must not be negative"}
	}
	if c.Pipeline.Workers < 0 {
		return &Error{File: file, Key: "pipeline.workers", Msg: "must not be negative"}
	}
	for i, e := range c.Export {
		if e.URL == "" {
			return &Error{File: file, Key: fmt.Sprintf("export[%d].url", i), Msg: "missing"}
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return &Error{File: file, Key: "log.level", Msg: fmt.Sprintf("invalid value %q (want debug, info, warn or error)", c.Log.Level)}
	}
	return nil
}
