package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// System is mira/system.yaml: the appliance settings mira-init applies
// before it starts mira-probe.
type System struct {
	Management struct {
		Interface string   `yaml:"interface"`
		DHCP      *bool    `yaml:"dhcp"`
		Address   string   `yaml:"address"` // static, CIDR
		Gateway   string   `yaml:"gateway"`
		DNS       []string `yaml:"dns"`
	} `yaml:"management"`
	NTP      []string `yaml:"ntp"`
	Syslog   string   `yaml:"syslog"`   // host:port, UDP
	Watchdog *bool    `yaml:"watchdog"` // default true
	Update   struct {
		// Listen is where the update endpoint listens (empty: no updates
		// over the network). HTTPS when data/tls/update.crt and
		// update.key exist, else HTTP.
		Listen string `yaml:"listen"`
		Token  string `yaml:"token"` // required with listen
		// Trial is how long an updated slot has to come up healthy.
		Trial time.Duration `yaml:"trial"`
	} `yaml:"update"`
}

// DHCPEnabled reports whether the management address comes from DHCP
// (the default unless a static address is given).
func (s *System) DHCPEnabled() bool {
	if s.Management.DHCP != nil {
		return *s.Management.DHCP
	}
	return s.Management.Address == ""
}

// WatchdogEnabled reports whether /dev/watchdog is fed.
func (s *System) WatchdogEnabled() bool { return s.Watchdog == nil || *s.Watchdog }

// ParseSystem parses mira/system.yaml over the defaults (nil b: the
// defaults). Errors name name:line.
func ParseSystem(name string, b []byte) (*System, error) {
	var s System
	if err := strictYAML(DefaultSystemYAML, &s); err != nil {
		return nil, fmt.Errorf("system.yaml (embedded): %w", err)
	}
	if b != nil {
		if err := strictYAML(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if s.Management.Interface == "" {
		return nil, fmt.Errorf("%s: management.interface: empty", name)
	}
	if s.Management.Address != "" {
		if _, err := netip.ParsePrefix(s.Management.Address); err != nil {
			return nil, fmt.Errorf("%s: management.address: %v", name, err)
		}
	}
	if s.Management.Gateway != "" {
		if _, err := netip.ParseAddr(s.Management.Gateway); err != nil {
			return nil, fmt.Errorf("%s: management.gateway: %v", name, err)
		}
	}
	for _, d := range s.Management.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return nil, fmt.Errorf("%s: management.dns: %v", name, err)
		}
	}
	if !s.DHCPEnabled() && s.Management.Address == "" {
		return nil, fmt.Errorf("%s: management: dhcp is off and no address is given", name)
	}
	if s.Update.Listen != "" && len(s.Update.Token) < 16 {
		return nil, fmt.Errorf("%s: update.token: at least 16 characters are required with update.listen", name)
	}
	if s.Update.Trial <= 0 {
		s.Update.Trial = 2 * time.Minute
	}
	if s.Syslog != "" && !strings.Contains(s.Syslog, ":") {
		s.Syslog += ":514"
	}
	return &s, nil
}

func strictYAML(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// DefaultCollectorYAML is mira/collector.yaml of an all-in-one image.
var DefaultCollectorYAML = []byte(`# mira-collector on the appliance (--collector images). Changes apply at the next boot.
listen: [udp://:4739, tcp://:4739]
db: /data/collector/mira.db
`)
