// Command mira-collector is the MIRA collector daemon: it receives IPFIX
// from probes (and from standard exporters), stores the flow records and
// serves them to `mira report` and `mira flows`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/collector/server"
)

func main() {
	fs := flag.NewFlagSet("mira-collector", flag.ExitOnError)
	cfgFile := fs.String("config", "", "configuration file (YAML); built-in defaults without it")
	var listen cli.Strings
	fs.Var(&listen, "listen", "IPFIX listener: udp://host:port or tcp://host:port (repeatable)")
	db := fs.String("db", "", "flow store (bbolt file)")
	httpAddr := fs.String("http", "", "serve the HTTP API on this address")
	rules := fs.String("rules", "", "classification rules file (default: the embedded rules)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	fs.Parse(os.Args[1:])

	cfg, err := config.LoadCollector(*cfgFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mira-collector:", err)
		os.Exit(2)
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	if *db != "" {
		cfg.DB = *db
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	if *rules != "" {
		cfg.Rules = *rules
	}
	if *metrics != "" {
		cfg.Metrics.Listen = *metrics
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	logger := cli.Logger(cfg.Log.Level, cfg.Log.Format)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.New(cfg, logger).Run(ctx); err != nil {
		logger.Error("collector failed", "err", err)
		os.Exit(1)
	}
}
