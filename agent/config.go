package agent

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config configures the agent. The zero value is usable: it serves the
// read-only community "public" to loopback sources only, with a random
// engine ID and no persisted boots.
type Config struct {
	// System group values.
	SysName     string `yaml:"sys_name"`
	SysContact  string `yaml:"sys_contact"`
	SysLocation string `yaml:"sys_location"`
	SysDescr    string `yaml:"sys_descr"`

	Communities []Community `yaml:"communities"`
	Users       []User      `yaml:"users"`

	// EngineID is the snmpEngineID in hex (5 to 32 octets). Empty: one is
	// made up (RFC 3411 format 5 under enterprise 32473, random octets)
	// and kept in StateFile.
	EngineID string `yaml:"engine_id"`
	// StateFile keeps snmpEngineBoots (and a generated engine ID) across
	// restarts. Without it boots is 1 on every start, which lets a
	// captured v3 request be replayed after a restart.
	StateFile string `yaml:"state_file"`

	// MaxMessageSize bounds responses (and is snmpEngineMaxMessageSize);
	// default 1472, the largest unfragmented UDP payload on Ethernet.
	MaxMessageSize int `yaml:"max_message_size"`

	Targets []Target `yaml:"notification_targets"`
	// PollInterval is how often the provider is checked for notification
	// events (overload, collector lost); default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Community is a read-only SNMPv1/v2c community and the source prefixes
// allowed to use it.
type Community struct {
	Name    string   `yaml:"name"`
	Sources []string `yaml:"sources"` // CIDR prefixes, e.g. 192.0.2.0/24, ::1/128
}

// User is an SNMPv3 USM user.
type User struct {
	Name string `yaml:"name"`
	// Auth is SHA (SHA-1), SHA-224, SHA-256, SHA-384 or SHA-512.
	Auth         string `yaml:"auth"`
	AuthPassword string `yaml:"auth_password"`
	// Priv is AES (AES-128 CFB) or empty for authNoPriv.
	Priv         string `yaml:"priv"`
	PrivPassword string `yaml:"priv_password"`
}

// Target is a notification receiver.
type Target struct {
	Address   string `yaml:"address"` // host:port (port 162 if absent)
	Version   string `yaml:"version"` // v2c or v3
	Community string `yaml:"community"`
	User      string `yaml:"user"`   // v3: a name from Users
	Inform    bool   `yaml:"inform"` // acknowledged informs instead of traps
	// Timeout and Retries apply to informs; defaults 1s and 2.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// ConfigError names where in the configuration a value is wrong.
type ConfigError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("snmp config")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads a YAML agent configuration. Unknown keys are errors.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("snmp config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses a YAML agent configuration; file names it in errors.
func ParseConfig(file string, data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			line, key := yamlErrPos(te.Errors[0])
			return nil, &ConfigError{File: file, Line: line, Key: key, Err: errors.New(te.Errors[0])}
		}
		return nil, &ConfigError{File: file, Err: err}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = file
			ce.Line = findLine(&root, ce.Key)
		}
		return nil, err
	}
	return &c, nil
}

// yamlErrPos pulls the line and key out of a yaml.v3 type error such as
// "line 3: field foo not found in type agent.Config".
func yamlErrPos(msg string) (int, string) {
	var line int
	if _, err := fmt.Sscanf(msg, "line %d:", &line); err != nil {
		return 0, ""
	}
	if i := strings.Index(msg, "field "); i >= 0 {
		rest := msg[i+len("field "):]
		if j := strings.IndexByte(rest, ' '); j > 0 {
			return line, rest[:j]
		}
	}
	return line, ""
}

// findLine finds the line of a dotted key path (users.1.auth) in a YAML
// document, or 0.
func findLine(root *yaml.Node, path string) int {
	if root == nil || path == "" {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscanf(part, "%d", &idx); err != nil || idx < 0 || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

func cfgErr(key string, format string, args ...any) error {
	return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	for i, cm := range c.Communities {
		key := fmt.Sprintf("communities.%d", i)
		if cm.Name == "" {
			return cfgErr(key+".name", "empty community")
		}
		if len(cm.Name) > 255 {
			return cfgErr(key+".name", "community longer than 255 octets")
		}
		if len(cm.Sources) == 0 {
			return cfgErr(key+".sources", "no source prefixes: list the managers allowed to use %q (0.0.0.0/0 and ::/0 for any)", cm.Name)
		}
		for j, s := range cm.Sources {
			if _, err := netip.ParsePrefix(s); err != nil {
				return cfgErr(fmt.Sprintf("%s.sources.%d", key, j), "%v", err)
			}
		}
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users.%d", i)
		if u.Name == "" || len(u.Name) > 32 {
			return cfgErr(key+".name", "user name must be 1 to 32 octets")
		}
		for _, r := range u.Name {
			if r < 0x21 || r > 0x7e {
				return cfgErr(key+".name", "user name %q must be printable ASCII without spaces", u.Name)
			}
		}
		if seen[u.Name] {
			return cfgErr(key+".name", "duplicate user %q", u.Name)
		}
		seen[u.Name] = true
		if _, ok := authProtocols[strings.ToUpper(u.Auth)]; !ok {
			return cfgErr(key+".auth", "unknown auth protocol %q (want SHA, SHA-224, SHA-256, SHA-384 or SHA-512)", u.Auth)
		}
		if len(u.AuthPassword) < 8 {
			return cfgErr(key+".auth_password", "shorter than 8 characters (RFC 3414)")
		}
		switch strings.ToUpper(u.Priv) {
		case "":
		case "AES", "AES-128", "AES128":
			if len(u.PrivPassword) < 8 {
				return cfgErr(key+".priv_password", "shorter than 8 characters (RFC 3414)")
			}
		default:
			return cfgErr(key+".priv", "unknown privacy protocol %q (want AES)", u.Priv)
		}
	}
	if c.EngineID != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(c.EngineID), "0x"))
		if err != nil {
			return cfgErr("engine_id", "not hex: %v", err)
		}
		if len(b) < 5 || len(b) > 32 {
			return cfgErr("engine_id", "%d octets, want 5 to 32", len(b))
		}
	}
	if c.MaxMessageSize != 0 && (c.MaxMessageSize < 484 || c.MaxMessageSize > 65507) {
		return cfgErr("max_message_size", "%d, want 484 to 65507", c.MaxMessageSize)
	}
	for i, t := range c.Targets {
		key := fmt.Sprintf("notification_targets.%d", i)
		if t.Address == "" {
			return cfgErr(key+".address", "empty address")
		}
		switch t.Version {
		case "v2c", "2c", "":
			if t.Community == "" {
				return cfgErr(key+".community", "v2c target needs a community")
			}
		case "v3", "3":
			if !seen[t.User] {
				return cfgErr(key+".user", "unknown user %q", t.User)
			}
		default:
			return cfgErr(key+".version", "unknown version %q (want v2c or v3)", t.Version)
		}
		if t.Retries < 0 {
			return cfgErr(key+".retries", "negative")
		}
	}
	if c.PollInterval < 0 {
		return cfgErr("poll_interval", "negative")
	}
	return nil
}
