// Command mira-collector is the MIRA collector daemon: it receives IPFIX
// from probes (and from standard exporters), stores the flow records and
// serves them to `mira report` and `mira flows`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/collector/config"
	"github.com/mira-project/mira/collector/consolidate"
	"github.com/mira-project/mira/collector/server"
	"github.com/mira-project/mira/exporter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is mira-collector with its arguments; it returns the exit code: 0
// done (or --help, --version), 1 the collector failed, 2 bad flags or
// configuration.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mira-collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "configuration file (YAML); built-in defaults without it")
	var listen cli.Strings
	fs.Var(&listen, "listen", "IPFIX listener: udp://host:port, tcp://host:port or tls://host:port\n(certificates in the configuration's tls section) (repeatable)")
	db := fs.String("db", "", "flow store (bbolt file)")
	httpAddr := fs.String("http", "", "serve the HTTP API (/api/) and /metrics on this address")
	rules := fs.String("rules", "", "classification rules file (default: the embedded rules)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	natsURL := fs.String("nats", "", "scale out over NATS JetStream: with --listen, an ingest node publishing the records;\nwith --worker, a consolidation worker; \"embedded\": an in-process NATS server (see --nats-listen)")
	worker := fs.Bool("worker", false, "with --nats and --db: run as a consolidation worker")
	workerName := fs.String("name", "", "worker name, stable across restarts (default: the --db file's name)")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "address of the NATS server that --nats embedded starts")
	natsReplicas := fs.Int("nats-replicas", 0, "replication factor of the JetStream streams and buckets (3 on a three-node NATS cluster;\n0: keep the existing streams' factor, 1 when creating them)")
	var logLevel cli.Level
	fs.Var(&logLevel, "log-level", "debug, info, warn or error")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mira-collector [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *version {
		cli.PrintVersion(stdout, "mira-collector")
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mira-collector: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg, err := config.LoadCollector(*cfgFile)
	if err != nil {
		fmt.Fprintln(stderr, "mira-collector:", err)
		return 2
	}
	for _, u := range listen {
		if err := config.CheckListenURL(u); err != nil {
			fmt.Fprintf(stderr, "mira-collector: --listen: %v\n", err)
			return 2
		}
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
	if logLevel.Given {
		cfg.Log.Level = logLevel.Name
	}
	logger, err := cli.Logger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "mira-collector:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *natsURL != "" {
		return runCluster(ctx, cfg, clusterFlags{url: *natsURL, worker: *worker, name: *workerName,
			listen: len(listen) > 0, embeddedAddr: *natsListen, replicas: *natsReplicas}, logger, stderr)
	}
	if *worker {
		fmt.Fprintln(stderr, "mira-collector: --worker needs --nats")
		return 2
	}
	srv := server.New(cfg, logger)
	srv.ForwardTo = forwardTo
	if err := srv.Run(ctx); err != nil {
		logger.Error("collector failed", "err", err)
		return 1
	}
	return 0
}

// forwardTo opens the exporter that re-exports consolidated biflows to a
// collector.yaml forward URL: the probe's exporting process, which the
// collector packages do not import. UDP pacing holds the collector's
// consolidation at most exporter.LivePaceWait a second while it runs.
func forwardTo(url string) (consolidate.BiflowExporter, error) {
	e, err := exporter.New(url, &exporter.Config{PaceMaxWait: exporter.LivePaceWait})
	if err != nil {
		return nil, err
	}
	return e, nil
}
