package image

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mira-project/mira/internal/yamlnode"
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
// defaults). Errors name name:line: key (internal/yamlnode), every one.
func ParseSystem(name string, b []byte) (*System, error) {
	var s System
	if err := yamlnode.Decode("system.yaml (embedded)", DefaultSystemYAML, &s); err != nil {
		return nil, err
	}
	if err := yamlnode.Decode(name, b, &s); err != nil {
		return nil, err
	}
	root, err := yamlnode.Parse(name, b)
	if err != nil {
		return nil, err
	}
	var errs []error
	bad := func(key string, format string, a ...any) {
		errs = append(errs, root.At(key, fmt.Errorf(format, a...)))
	}
	if s.Management.Interface == "" {
		bad("management.interface", "empty")
	}
	if s.Management.Address != "" {
		if _, err := netip.ParsePrefix(s.Management.Address); err != nil {
			bad("management.address", "%v", err)
		}
	}
	if s.Management.Gateway != "" {
		if _, err := netip.ParseAddr(s.Management.Gateway); err != nil {
			bad("management.gateway", "%v", err)
		}
	}
	for i, d := range s.Management.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			bad(fmt.Sprintf("management.dns[%d]", i), "%v", err)
		}
	}
	if !s.DHCPEnabled() && s.Management.Address == "" {
		bad("management", "dhcp is off and no address is given")
	}
	if s.Update.Listen != "" && len(s.Update.Token) < 16 {
		bad("update.token", "at least 16 characters are required with update.listen")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.Update.Trial <= 0 {
		s.Update.Trial = 2 * time.Minute
	}
	if s.Syslog != "" && !strings.Contains(s.Syslog, ":") {
		s.Syslog += ":514"
	}
	return &s, nil
}

// DefaultCollectorYAML is mira/collector.yaml of an all-in-one image,
// with the web UI's password left to fill (defaultCollectorYAML).
var DefaultCollectorYAML = defaultCollectorYAML("change-me")

// defaultCollectorYAML is mira/collector.yaml of an all-in-one image:
// IPFIX from the box's own probe (and others), the store on the data
// partition, the web UI and HTTP API on the management port behind a
// password made for each image (printed by mira image build).
func defaultCollectorYAML(password string) []byte {
	return []byte(`# mira-collector on the appliance (--collector images). Changes apply at the next boot.
listen: [udp://:4739, tcp://:4739]
db: /data/collector/mira.db
# The web UI and HTTP API (/api/report, /api/flows), user mira.
http: 0.0.0.0:8080
web: {user: mira, password: "` + password + `"}
# Keep the store within the data partition (grown over the disk at the first boot).
retention: {max_age: 720h}
`)
}

// DefaultAllInOneProbeYAML is mira/probe.yaml of a --collector image
// without --config: the probe exports to the box's own collector.
var DefaultAllInOneProbeYAML = []byte(`# MIRA probe configuration (mira-probe). Edit it on any PC: this file is on
# the boot partition (FAT) at mira/probe.yaml. A copy at mira/probe.yaml on
# the data partition, if present, takes precedence. Changes apply at the next boot.
capture: {interfaces: [eth1]}
export: [{url: "udp://127.0.0.1:4739"}]   # this box's mira-collector
snmp_listen: 0.0.0.0:161
snmp: {communities: [{name: public, sources: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8]}]}
`)

// newPassword is 16 random letters and digits.
func newPassword() string {
	const chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}
