package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/cluster"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/server"
	"github.com/mira-project/mira/collector/service"
)

type clusterFlags struct {
	url          string
	worker       bool
	name         string
	listen       bool // --listen given: run an ingest node
	embeddedAddr string
	replicas     int
}

// runCluster runs the scale-out roles: an ingest node (--listen), a
// consolidation worker (--worker --db), or both, against the NATS server
// at f.url or an embedded one.
func runCluster(ctx context.Context, cfg *config.Collector, f clusterFlags, log *slog.Logger, stderr io.Writer) int {
	if !f.listen && !f.worker && cfg.HTTP == "" {
		fmt.Fprintln(stderr, "mira-collector: --nats needs --listen (ingest), --worker --db FILE (consolidation worker) or --http ADDR (merged API and web UI)")
		return 2
	}
	var rules *classify.Rules
	var services *service.List
	var rulesYAML []byte // nil: the embedded rules
	if cfg.Rules != "" && (cfg.HTTP != "" || f.worker) {
		var err error
		if rulesYAML, err = os.ReadFile(cfg.Rules); err != nil {
			fmt.Fprintln(stderr, "mira-collector:", err)
			return 2
		}
	}
	if cfg.HTTP != "" {
		rules, services = classify.Default(), service.Default()
		var err error
		if cfg.Rules != "" {
			if rules, err = classify.Load(cfg.Rules); err != nil {
				fmt.Fprintln(stderr, "mira-collector:", err)
				return 2
			}
		}
		if cfg.Services != "" {
			if services, err = service.Load(cfg.Services); err != nil {
				fmt.Fprintln(stderr, "mira-collector:", err)
				return 2
			}
		}
	}
	if f.worker && cfg.DB == "" {
		fmt.Fprintln(stderr, "mira-collector: --worker needs --db FILE")
		return 2
	}
	url := f.url
	if url == "embedded" {
		dir := "mira-nats"
		if cfg.DB != "" {
			dir = cfg.DB + ".nats"
		}
		ns, u, err := cluster.Embedded(f.embeddedAddr, dir)
		if err != nil {
			log.Error("embedded NATS", "err", err)
			return 1
		}
		defer ns.Shutdown()
		log.Info("embedded NATS", "url", u, "dir", dir)
		url = u
	}
	nc, js, err := cluster.Connect(url, "mira-collector")
	if err != nil {
		log.Error("nats", "err", err)
		return 1
	}
	defer nc.Close()
	// A NATS cluster that is electing leaders (a node just lost or
	// restarted) times requests out: try again for a minute.
	for deadline := time.Now().Add(time.Minute); ; {
		err := cluster.Setup(ctx, js, f.replicas)
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			log.Error("nats", "err", err)
			return 1
		}
		log.Warn("nats setup, trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	// One role failing stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// /metrics (on --http and --metrics): the ingest node's and the
	// worker's counters.
	metrics := &cluster.Metrics{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			log.Error("metrics", "err", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsHandler)
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go msrv.Serve(ln)
		defer msrv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	if cfg.HTTP != "" {
		// The HTTP API and web UI over the workers' merged results,
		// gathered again when more than 2 s old.
		dir, err := os.MkdirTemp("", "mira-merged-")
		if err != nil {
			log.Error("http", "err", err)
			return 1
		}
		defer os.RemoveAll(dir)
		view := &cluster.View{NC: nc, JS: js, Dir: dir, MaxAge: 2 * time.Second}
		defer view.Close()
		// /api/report (every source) is made by the workers and this
		// process together (cluster.Report); the rest reads the view.
		reportFn := func(ctx context.Context, p *report.Params) (*report.Report, error) {
			p.ServicesFile, p.Services = cfg.Services, services
			d, err := os.MkdirTemp(dir, "report-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(d)
			rep, _, err := cluster.Report(ctx, nc, js, p, rulesYAML, d)
			return rep, err
		}
		srv, err := server.NewHTTPServer(cfg, server.APIConfig{Acquire: view.Acquire, Report: reportFn, Rules: rules, Services: services, ASFile: cfg.AS}, metricsHandler)
		if err != nil {
			log.Error("http", "err", err)
			return 2
		}
		ln, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			log.Error("http", "err", err)
			return 1
		}
		if srv.TLSConfig != nil {
			go srv.ServeTLS(ln, "", "")
		} else {
			go srv.Serve(ln)
		}
		defer srv.Close()
		log.Info("http api (merged cluster results)", "addr", ln.Addr().String())
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if f.listen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cluster.RunIngestMetrics(ctx, cfg, js, log, nil, metrics)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	if f.worker {
		name := f.name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(cfg.DB), filepath.Ext(cfg.DB))
		}
		w, err := cluster.OpenWorker(name, cfg.DB, nc, js, log)
		if err != nil {
			log.Error("worker", "err", err)
			return 2
		}
		// The retention keys a single collector applies to its store,
		// applied to the worker's records and rollups.
		w.Retention = cluster.Retention{MaxAge: cfg.Retention.MaxAge, MaxSize: cfg.Retention.MaxSize,
			Minute: cfg.Rollups.Minute, Hour: cfg.Rollups.Hour}
		w.Rules = rulesYAML
		metrics.SetWorker(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.Run(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	if !f.listen && !f.worker {
		<-ctx.Done() // only the HTTP API
	}
	wg.Wait()
	close(errs)
	code := 0
	for err := range errs {
		if err != nil {
			log.Error("collector failed", "err", err)
			code = 1
		}
	}
	return code
}
