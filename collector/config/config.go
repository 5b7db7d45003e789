package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/mira-project/mira/internal/endpoint"
	"github.com/mira-project/mira/internal/tlsconf"
	"github.com/mira-project/mira/internal/yamlnode"
)

//go:embed collector.yaml
var defaultCollector []byte

// DefaultCollectorYAML returns the embedded default collector configuration.
func DefaultCollectorYAML() []byte { return bytes.Clone(defaultCollector) }

// Collector is mira-collector's configuration.
type Collector struct {
	Listen []string `yaml:"listen"`
	DB     string   `yaml:"db"`
	HTTP   string   `yaml:"http"`
	// Web guards the HTTP address (web UI, /api/, /metrics).
	Web   Web    `yaml:"web"`
	Rules string `yaml:"rules"`
	// AS is the prefix to AS table of /api/report?by=as (none: empty).
	AS string `yaml:"as"`
	// Services is the service list of /api/report?by=app (empty: the
	// embedded default list).
	Services  string `yaml:"services"`
	Retention struct {
		MaxAge  time.Duration `yaml:"max_age"`
		MaxSize int64         `yaml:"max_size"`
	} `yaml:"retention"`
	// Rollups are the usage totals kept at ingest (collector/store
	// rollup.go), each resolution with its own retention (0: forever).
	Rollups struct {
		Enabled bool          `yaml:"enabled"`
		Minute  time.Duration `yaml:"minute_retention"`
		Hour    time.Duration `yaml:"hour_retention"`
	} `yaml:"rollups"`
	Metrics Listen `yaml:"metrics"`
	Log     Log    `yaml:"log"`
	// Forward re-exports the consolidated biflows (RFC 5103 IPFIX) to
	// these collectors: udp://, tcp://, tls:// or file:///dir URLs.
	Forward []string `yaml:"forward"`
	// TLS is the certificate of tls:// listeners, and the CA whose
	// client certificates they require (none: any exporter may connect).
	TLS TLS `yaml:"tls"`
	// Allow lists the exporters accepted, as addresses or prefixes
	// (empty: all); see AllowPrefixes.
	Allow []string `yaml:"allow"`
	// Limits bound the collecting process's state (see collector.Config).
	Limits Limits `yaml:"limits"`
	// Cluster tunes the scale-out roles (mira-collector --nats).
	Cluster Cluster `yaml:"cluster"`
}

// Cluster tunes the scale-out roles.
type Cluster struct {
	// PublishRetry is how long an ingest node keeps publishing a record
	// batch JetStream did not acknowledge (a NATS node lost, a leader
	// election) before its records count as dropped; meanwhile the
	// batch stays in flight (see collector/cluster maxInFlight).
	PublishRetry time.Duration `yaml:"publish_retry"`
}

// Bounds of cluster.publish_retry: at least a leader election's worth, at
// most well within the flow stream's 2-minute duplicate window (a batch
// published again after it could be stored twice).
const (
	MinPublishRetry = time.Second
	MaxPublishRetry = 90 * time.Second
)

// Limits bound the state the collecting process keeps for exporters.
type Limits struct {
	TemplatesPerExporter int           `yaml:"templates_per_exporter"`
	Templates            int           `yaml:"templates"`
	DomainsPerExporter   int           `yaml:"domains_per_exporter"`
	UDPExporters         int           `yaml:"udp_exporters"`
	TCPConnections       int           `yaml:"tcp_connections"`
	TemplateLifetime     time.Duration `yaml:"template_lifetime"`
}

// TLS names the certificate files of the collector's TLS listeners (PEM);
// see tlsconf.TLS.
type TLS = tlsconf.TLS

// Web is the access to the HTTP address: a bearer token and/or a user
// and password (basic authentication), and HTTPS when Cert and Key are
// set.
type Web struct {
	Token    string `yaml:"token"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
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

// AllowPrefixes parses Allow: "192.0.2.9", "2001:db8::/32".
func (c *Collector) AllowPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for i, a := range c.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ad, aerr := netip.ParseAddr(a)
			if aerr != nil {
				return nil, &Error{Key: fmt.Sprintf("allow[%d]", i), Err: fmt.Errorf("%q is neither an address nor a prefix", a)}
			}
			p = netip.PrefixFrom(ad.Unmap(), ad.Unmap().BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// LoadCollector reads the embedded defaults, then path if not empty.
func LoadCollector(path string) (*Collector, error) {
	var b []byte
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return ParseCollector(path, b)
}

// ParseCollector parses a collector configuration from memory over the
// defaults. Every problem is reported (joined), each with file, line and
// key.
func ParseCollector(name string, b []byte) (*Collector, error) {
	var c Collector
	if err := yamlnode.Decode("collector.yaml (embedded)", defaultCollector, &c); err != nil {
		return nil, err
	}
	if err := yamlnode.Decode(name, b, &c); err != nil {
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

func (c *Collector) validate(root yamlnode.Node) error {
	var errs []error
	add := func(key string, err error) { errs = append(errs, root.At(key, err)) }
	for i, u := range c.Listen {
		if err := CheckListenURL(u); err != nil {
			add(fmt.Sprintf("listen[%d]", i), err)
		}
	}
	for i, u := range c.Forward {
		if _, err := endpoint.Target(u); err != nil {
			add(fmt.Sprintf("forward[%d]", i), err)
		}
	}
	if _, err := c.AllowPrefixes(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			err = root.At(e.Key, e.Err)
		}
		errs = append(errs, err)
	}
	for _, l := range []struct {
		key string
		v   int
	}{
		{"limits.templates_per_exporter", c.Limits.TemplatesPerExporter}, {"limits.templates", c.Limits.Templates},
		{"limits.domains_per_exporter", c.Limits.DomainsPerExporter}, {"limits.udp_exporters", c.Limits.UDPExporters},
		{"limits.tcp_connections", c.Limits.TCPConnections},
	} {
		if l.v < 1 {
			add(l.key, fmt.Errorf("invalid value %d (want at least 1)", l.v))
		}
	}
	// Negative retention meant "keep forever", silently.
	for _, d := range []struct {
		key string
		v   int64
	}{
		{"retention.max_age", int64(c.Retention.MaxAge)}, {"retention.max_size", c.Retention.MaxSize},
		{"rollups.minute_retention", int64(c.Rollups.Minute)}, {"rollups.hour_retention", int64(c.Rollups.Hour)},
	} {
		if d.v < 0 {
			add(d.key, errors.New("must not be negative (0 keeps everything)"))
		}
	}
	if c.Limits.TemplateLifetime < time.Minute {
		add("limits.template_lifetime", fmt.Errorf("invalid value %v (want at least 1m: exporters resend templates every few minutes)", c.Limits.TemplateLifetime))
	}
	if r := c.Cluster.PublishRetry; r < MinPublishRetry || r > MaxPublishRetry {
		add("cluster.publish_retry", fmt.Errorf("invalid value %v (want %v to %v: a JetStream leader election takes seconds, and the flow stream's duplicate window is 2m)", r, MinPublishRetry, MaxPublishRetry))
	}
	if c.AS != "" {
		if _, err := os.Stat(c.AS); err != nil {
			add("as", err)
		}
	}
	for _, p := range [][2]string{{"cert", "key"}, {"user", "password"}} {
		v := map[string]string{"cert": c.Web.Cert, "key": c.Web.Key, "user": c.Web.User, "password": c.Web.Password}
		if a, b := v[p[0]], v[p[1]]; a != "" && b == "" {
			add("web."+p[0], fmt.Errorf("%s is set without %s", p[0], p[1]))
		} else if a == "" && b != "" {
			add("web."+p[1], fmt.Errorf("%s is set without %s", p[1], p[0]))
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		add("log.level", fmt.Errorf("invalid value %q (want debug, info, warn or error)", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		add("log.format", fmt.Errorf("invalid value %q (want text or json)", c.Log.Format))
	}
	return errors.Join(errs...)
}

// CheckListenURL checks a collector listener URL: udp://, tcp:// or
// tls://host:port.
func CheckListenURL(raw string) error {
	_, err := endpoint.Listener(raw)
	return err
}
