package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mira-project/mira/collector/cluster"
	"github.com/mira-project/mira/collector/config"
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
	if !f.listen && !f.worker {
		fmt.Fprintln(stderr, "mira-collector: --nats needs --listen (ingest) or --worker --db FILE (consolidation worker)")
		return 2
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
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if f.listen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cluster.RunIngest(ctx, cfg, js, log, nil)
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
