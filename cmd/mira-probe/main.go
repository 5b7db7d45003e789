// Command mira-probe is the MIRA appliance daemon: it captures packets from
// pcap files (-r) or interfaces (-i), meters flows, scans payloads for
// symptoms and exports flow records as IPFIX (--export).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/probe"
	"github.com/mira-project/mira/cmd/internal/cli"
)

func main() {
	fs := flag.NewFlagSet("mira-probe", flag.ExitOnError)
	cfgFile := fs.String("config", "", "configuration file (YAML); built-in defaults without it")
	var files, ifaces, exports cli.Strings
	fs.Var(&files, "r", "read packets from a pcap/pcapng file (repeatable; gzip allowed)")
	fs.Var(&ifaces, "i", "capture live on an interface (repeatable)")
	fs.Var(&exports, "export", "IPFIX target: udp://host:port, tcp://host:port or file:///dir (repeatable)")
	symptoms := fs.String("symptoms", "", "symptom database file (default: the embedded one)")
	snmp := fs.String("snmp", "", "serve SNMP on this address (e.g. 127.0.0.1:1161)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	domain := fs.Int("domain", -1, "IPFIX observation domain id")
	workers := fs.Int("workers", 0, "flow-table shards (worker goroutines)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mira-probe: unexpected argument %q (files are given with -r)\n", fs.Arg(0))
		os.Exit(2)
	}

	cfg, err := config.LoadProbe(*cfgFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mira-probe:", err)
		os.Exit(2)
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
	if *domain >= 0 {
		cfg.Probe.ObservationDomain = uint32(*domain)
	}
	if *workers > 0 {
		cfg.Pipeline.Workers = *workers
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if *snmp != "" {
		cfg.SNMPListen = *snmp
	}
	logger := cli.Logger(cfg.Log.Level, cfg.Log.Format)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := probe.New(cfg, probe.Options{Logger: logger}).Run(ctx); err != nil {
		logger.Error("probe failed", "err", err)
		os.Exit(1)
	}
}
