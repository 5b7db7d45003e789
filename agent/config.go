package agent

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mira-project/mira/internal/yamlnode"
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

// ConfigError names where in the configuration a value is wrong: file,
// line and key path (users[0].auth).
type ConfigError = yamlnode.Error

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
	if err := yamlnode.Decode(file, data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			root, perr := yamlnode.Parse(file, data)
			if perr != nil {
				return nil, perr
			}
			return nil, root.At(ce.Key, ce.Err)
		}
		return nil, err
	}
	return &c, nil
}

func cfgErr(key string, format string, args ...any) error {
	return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	for i, cm := range c.Communities {
		key := fmt.Sprintf("communities[%d]", i)
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
				return cfgErr(fmt.Sprintf("%s.sources[%d]", key, j), "%v", err)
			}
		}
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
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
		key := fmt.Sprintf("notification_targets[%d]", i)
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
