// Command mira is the MIRA operator's tool: analyse captures end to end,
// read the collector's store, synthesise traffic, import rules.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/cmd/mira/internal/rules"
	"github.com/mira-project/mira/image"
	"github.com/mira-project/mira/synth"
)

const usage = `usage: mira COMMAND [flags]

commands:
  analyze [--format table|json|csv] [--symptoms FILE] [--rules FILE] [FILE...]
                     probe and collector in one process; no FILE: the built-in sample
  flows   --db FILE  list the flow records in a collector store
  report  --db FILE  [--by aggregate|category|as|probe] [--rules FILE]
                     usage report from a collector store
  synth   -o FILE.pcap [--seed N] [--large] [--truth FILE.json]
                     write a synthetic capture with its ground truth
  rules   import-snort [-o OUT.yaml] FILE
                     convert Snort/Suricata rules into a symptom database
  rules   check FILE check a classification rules file
` + image.Usage

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "analyze", "analyse":
		err = analyze.Run(ctx, args, os.Stdout, os.Stderr)
	case "flows":
		err = runFlows(ctx, args, os.Stdout)
	case "report":
		err = runReport(ctx, args, os.Stdout)
	case "synth":
		err = runSynth(args, os.Stdout)
	case "rules":
		err = rules.Run(ctx, args, os.Stdout, os.Stderr)
	case "image":
		err = image.Run(ctx, args, os.Stdout, os.Stderr)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "mira: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "mira "+cmd+":", err)
		os.Exit(1)
	}
}

func runSynth(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mira synth", flag.ContinueOnError)
	out := fs.String("o", "", "output pcap file (required)")
	truth := fs.String("truth", "", "write the ground truth (JSON) here")
	seed := fs.Int64("seed", 0, "random seed (0: the default sample's seed)")
	flows := fs.Int("flows", 0, "number of flows (0: the preset's)")
	large := fs.Bool("large", false, "the large benchmark trace (~200k flows, ~3.5M packets)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	cfg := synth.Default()
	if *large {
		cfg = synth.Large()
	}
	if *seed != 0 {
		cfg.Seed = *seed
	}
	if *flows > 0 {
		cfg.Flows = *flows
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	tr, err := synth.WritePcap(cfg, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if *truth != "" {
		tf, err := os.Create(*truth)
		if err != nil {
			return err
		}
		if err := tr.WriteJSON(tf); err != nil {
			tf.Close()
			return err
		}
		if err := tf.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d flows\n", *out, len(tr.Flows))
	return nil
}
