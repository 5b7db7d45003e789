// Command mira-probe is the MIRA appliance daemon: it captures packets from
// pcap files (-r) or interfaces (-i), meters flows, scans payloads for
// symptoms and exports flow records as IPFIX (--export).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/probe"
	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/exporter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is mira-probe with its arguments; it returns the exit code: 0 done
// (or --help, --version), 1 the probe failed, 2 bad flags or configuration.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mira-probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "configuration file (YAML); built-in defaults without it")
	var files, ifaces, exports cli.Strings
	fs.Var(&files, "r", "read packets from a pcap/pcapng file (repeatable; gzip allowed)")
	fs.Var(&ifaces, "i", "capture live on an interface (repeatable)")
	fs.Var(&exports, "export", "IPFIX target: udp://host:port, tcp://host:port, tls://host:port\n(certificates in the configuration's export[].tls) or file:///dir (repeatable)")
	symptoms := fs.String("symptoms", "", "symptom database file (default: the embedded one)")
	snmp := fs.String("snmp", "", "serve SNMP on this address (e.g. 127.0.0.1:1161)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	var domain cli.Uint32
	fs.Var(&domain, "domain", "IPFIX observation domain id (0 to 4294967295; default: the configuration's)")
	var workers cli.Count
	fs.Var(&workers, "workers", "flow-table shards (worker goroutines; 0: the configuration's)")
	speed := fs.Float64("speed", 0, "replay -r files at N times their own pace, with live overload behaviour\n(self-regulation, counted queue drops)")
	var drain cli.Duration
	fs.Var(&drain, "drain-timeout", "when stopping, how long (a `duration`) to keep delivering spooled records\n(0: until delivered; default: the configuration's drain_timeout);\nSIGTERM or SIGINT while draining stops at once, the rest staying spooled")
	var logLevel cli.Level
	fs.Var(&logLevel, "log-level", "debug, info, warn or error")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mira-probe [flags]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *version {
		cli.PrintVersion(stdout, "mira-probe")
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mira-probe: unexpected argument %q (files are given with -r)\n", fs.Arg(0))
		return 2
	}

	for _, u := range exports {
		if err := exporter.CheckURL(u); err != nil {
			fmt.Fprintf(stderr, "mira-probe: --export: %v\n", err)
			return 2
		}
	}
	if *speed < 0 {
		fmt.Fprintf(stderr, "mira-probe: --speed %v: must not be negative\n", *speed)
		return 2
	}
	if workers > config.MaxWorkers {
		fmt.Fprintf(stderr, "mira-probe: --workers %d: more than %d\n", workers, config.MaxWorkers)
		return 2
	}
	// load reads the configuration file and lays the flags over it; a
	// SIGHUP reloads it the same way.
	load := func() (*config.Probe, error) {
		cfg, err := config.LoadProbe(*cfgFile)
		if err != nil {
			return nil, err
		}
		if len(files) > 0 {
			cfg.Capture.Files = files
		}
		if len(ifaces) > 0 {
			cfg.Capture.Interfaces = ifaces
		}
		for _, u := range exports {
			cfg.Export = append(cfg.Export, config.Export{URL: u})
		}
		if *symptoms != "" {
			cfg.Symptoms.File = *symptoms
		}
		if *metrics != "" {
			cfg.Metrics.Listen = *metrics
		}
		if domain.Given {
			cfg.Probe.ObservationDomain = domain.N
		}
		if workers > 0 {
			cfg.Pipeline.Workers = int(workers)
		}
		if *speed > 0 {
			cfg.Pipeline.Speed = *speed
		}
		if logLevel.Given {
			cfg.Log.Level = logLevel.Name
		}
		if drain.Given {
			cfg.DrainTimeout = drain.D
		}
		if *snmp != "" {
			cfg.SNMPListen = *snmp
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(stderr, "mira-probe:", err)
		return 2
	}
	logger, err := cli.Logger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "mira-probe:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the probe flushes its flows and drains
		// its spools; a second one ends it at once (the default action),
		// what is spooled staying on disk for the next start.
		<-ctx.Done()
		stop()
	}()
	p := probe.New(cfg, probe.Options{Logger: logger})
	// SIGHUP reloads the configuration (probe.Reload): symptoms,
	// fast-class lists, aggregates and export targets; a bad file is
	// refused with its error and the running configuration stays.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			logger.Info("SIGHUP: reloading the configuration", "file", *cfgFile)
			if err := p.ReloadFrom(load); err != nil {
				logger.Error("reload failed", "err", err)
			}
		}
	}()
	if err := p.Run(ctx); err != nil {
		logger.Error("probe failed", "err", err)
		return 1
	}
	return 0
}
