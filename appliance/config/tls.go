package config

import "github.com/mira-project/mira/internal/tlsconf"

// TLS names the certificate files of a TLS export target (PEM); see
// tlsconf.TLS.
type TLS = tlsconf.TLS
