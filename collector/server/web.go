package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/service"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/collector/web"
)

// httpServer is the HTTP address's server: the web UI at /, the API at
// /api/ and /metrics, behind the configured token or basic
// authentication, over TLS when a certificate is configured.
func (s *Server) httpServer(st *store.Store, rules *classify.Rules, services *service.List, metrics http.Handler) (*http.Server, error) {
	return NewHTTPServer(s.cfg, APIConfig{Store: st, Rules: rules, Services: services, ASFile: s.cfg.AS, Rollups: s.rollSrc, Before: func() { s.commit(); s.saveStats() }}, metrics)
}

// NewHTTPServer is the server of cfg.HTTP for the store (or store
// source) of api: the web UI at /, the API at /api/ and, when metrics is
// not nil, /metrics, behind cfg.Web's token or basic authentication,
// over TLS when a certificate is configured. mira-collector serves it
// over its own store, and in cluster mode over the workers' merged
// results (api.Acquire).
func NewHTTPServer(cfg *config.Collector, api APIConfig, metrics http.Handler) (*http.Server, error) {
	wc := web.Config{Store: api.Store, Before: api.Before, Acquire: api.Acquire}
	mux := http.NewServeMux()
	mux.Handle("/api/", API(api))
	mux.Handle("/api/probes", web.Handler(wc))
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	mux.Handle("/", web.Handler(wc))
	w := cfg.Web
	srv := &http.Server{
		Handler:           web.Protect(mux, web.Access{Token: w.Token, User: w.User, Password: w.Password}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if w.Cert != "" {
		cert, err := tls.LoadX509KeyPair(w.Cert, w.Key)
		if err != nil {
			return nil, fmt.Errorf("collector: web: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return srv, nil
}
