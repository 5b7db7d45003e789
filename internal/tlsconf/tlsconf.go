// Package tlsconf turns the certificate files named in a configuration
// into crypto/tls configurations: an exporter's client side (the probe's
// export targets) and a collector's listener side. The probe's and the
// collector's configurations share it.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS names the certificate files of a TLS endpoint (PEM).
type TLS struct {
	// CA verifies the peer's certificate: for an exporter, the
	// collector's (empty: the system's roots); for a collector, the
	// exporters' client certificates, which are then required.
	CA string `yaml:"ca"`
	// Cert and Key are this end's certificate and private key: required
	// for a collector, optional (client authentication) for an exporter.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the exporter expects in the collector's
	// certificate (default: the host of the URL).
	ServerName string `yaml:"server_name"`
}

// IsZero says nothing is configured.
func (t TLS) IsZero() bool { return t == TLS{} }

func (t TLS) pool() (*x509.CertPool, error) {
	b, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls ca %s: no PEM certificate in it", t.CA)
	}
	return p, nil
}

func (t TLS) keyPair() ([]tls.Certificate, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	if t.Cert == "" || t.Key == "" {
		return nil, errors.New("tls: cert and key go together")
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls cert %s / key %s: %w", t.Cert, t.Key, err)
	}
	return []tls.Certificate{c}, nil
}

// Client is the configuration of an exporter connecting to a collector.
func (t TLS) Client() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	var err error
	if t.CA != "" {
		if c.RootCAs, err = t.pool(); err != nil {
			return nil, err
		}
	}
	if c.Certificates, err = t.keyPair(); err != nil {
		return nil, err
	}
	return c, nil
}

// Server is the configuration of a collector's TLS listener: its own
// certificate, and with CA set, exporters must present a certificate it
// signed.
func (t TLS) Server() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	var err error
	if c.Certificates, err = t.keyPair(); err != nil {
		return nil, err
	}
	if len(c.Certificates) == 0 {
		return nil, errors.New("tls: a collector needs cert and key")
	}
	if t.CA != "" {
		if c.ClientCAs, err = t.pool(); err != nil {
			return nil, err
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
