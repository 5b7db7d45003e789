// Package endpoint parses the URLs that name IPFIX transport endpoints:
// an exporting process's targets (udp://, tcp://, tls://host:port and
// file:///dir, RFC 5655 files) and a collecting process's listeners
// (udp://, tcp://, tls://host:port). The probe's exporter, the
// collector's forwarding and both configurations check them alike.
package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target parses an export target URL; errors name the URL.
func Target(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("export target %q: %w", raw, err)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
		_, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, fmt.Errorf("export target %q: want %s://host:port: %w", raw, u.Scheme, err)
		}
		if err := checkPort(port); err != nil {
			return nil, fmt.Errorf("export target %q: %w", raw, err)
		}
	case "file":
		if u.Path == "" {
			return nil, fmt.Errorf("export target %q: want file:///directory", raw)
		}
	default:
		return nil, fmt.Errorf("export target %q: unsupported scheme %q (want udp, tcp, tls or file)", raw, u.Scheme)
	}
	return u, nil
}

// Listener parses a collector listener URL; errors name the URL.
func Listener(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", raw, err)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return nil, fmt.Errorf("listener %q: unsupported scheme %q (want udp, tcp or tls)", raw, u.Scheme)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("listener %q: want %s://host:port: %w", raw, u.Scheme, err)
	}
	if err := checkPort(port); err != nil {
		return nil, fmt.Errorf("listener %q: %w", raw, err)
	}
	return u, nil
}

// checkPort refuses a port number beyond 65535, which was found only
// when the collector listened (after opening its store) or the probe
// exported; service names (ipfix) are left to the resolver.
func checkPort(port string) error {
	if port == "" {
		return errors.New("missing port")
	}
	if n, err := strconv.ParseUint(port, 10, 64); err == nil && n > 65535 {
		return fmt.Errorf("port %s is out of range (0 to 65535)", port)
	} else if err != nil && strings.Trim(port, "0123456789") == "" {
		return fmt.Errorf("port %s is out of range (0 to 65535)", port)
	}
	return nil
}
