// Package endpoint parses the URLs that name IPFIX transport endpoints:
// an exporting process's targets (udp://, tcp://, tls://host:port and
// file:///dir, RFC 5655 files) and a collecting process's listeners
// (udp://, tcp://, tls://host:port). The probe's exporter, the
// collector's forwarding and both configurations check them alike.
package endpoint

import (
	"fmt"
	"net"
	"net/url"
)

// Target parses an export target URL; errors name the URL.
func Target(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("export target %q: %w", raw, err)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("export target %q: want %s://host:port: %w", raw, u.Scheme, err)
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
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("listener %q: want %s://host:port: %w", raw, u.Scheme, err)
	}
	return u, nil
}
