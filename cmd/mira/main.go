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

	"github.com/mira-project/mira/cmd/internal/cli"
	"github.com/mira-project/mira/cmd/mira/internal/analyze"
	"github.com/mira-project/mira/cmd/mira/internal/rules"
	"github.com/mira-project/mira/image"
	"github.com/mira-project/mira/synth"
)

const usage = `usage: mira COMMAND [flags]

commands:
  analyze [--format table|json|csv] [--symptoms FILE] [--rules FILE] [--progress] [FILE...]
                     probe and collector in one process; no FILE: the built-in sample
  flows   --db FILE  list the flow records in a collector store
  report  --db FILE  [--by aggregate|category|as|probe|host|symptom|app] [--rules FILE] [--source records|rollups|auto]
                     usage report from a collector store
  rollup  --db FILE  [--rules FILE] [--as FILE]
                     (re)build a store's rollups from its records (stores of older versions)
  report  --nats URL [...]
                     the same report merged from a cluster's consolidation workers
  synth   -o FILE.pcap [--seed N] [--flows N] [--large] [--payload-mix synthetic|realistic] [--truth FILE.json] [--progress]
                     write a synthetic capture with its ground truth
  rules   import-snort [-o OUT.yaml] FILE
                     convert Snort/Suricata rules into a symptom database
  rules   check FILE check a classification rules file
` + image.Usage + `  help               this text; mira COMMAND --help: the command's flags
  version            the version and VCS revision (also --version)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMira(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMira is mira with its arguments; it returns the exit code: 0 done (or
// help, --version), 1 the command failed, 2 no or an unknown command, or
// flags the command refuses.
func runMira(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "analyze", "analyse":
		err = analyze.Run(ctx, args, stdout, stderr)
	case "flows":
		err = runFlows(ctx, args, stdout)
	case "report":
		err = runReport(ctx, args, stdout)
	case "rollup":
		err = runRollup(ctx, args, stdout)
	case "synth":
		err = runSynth(args, stdout, stderr)
	case "rules":
		err = rules.Run(ctx, args, stdout, stderr)
	case "image":
		err = image.Run(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		cli.PrintVersion(stdout, "mira")
		return 0
	default:
		fmt.Fprintf(stderr, "mira: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the command printed its usage
	}
	if err != nil {
		fmt.Fprintln(stderr, "mira "+cmd+":", err)
		var ue *cli.UsageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func runSynth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira synth", flag.ContinueOnError)
	out := fs.String("o", "", "output pcap file (required)")
	truth := fs.String("truth", "", "write the ground truth (JSON) here")
	seed := fs.Int64("seed", 0, "random seed (0: the default sample's seed)")
	flows := fs.Int("flows", 0, "number of sessions (connections), each two unidirectional flows; FTP sessions add a data connection (0: the preset's)")
	large := fs.Bool("large", false, "the large benchmark trace (~200k flows, ~3.5M packets)")
	mix := fs.String("payload-mix", "synthetic", "application mix: synthetic (the preset's) or realistic (most bytes TLS, as on today's links, with plain web, media, DNS, mail, P2P, games; with --large the issue 13 reference trace's sizes: ~38 % of packets empty, 30 % 1-100 B, 22 % >= 1400 B)")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mira synth -o FILE.pcap [--seed N] [--flows N] [--large] [--payload-mix synthetic|realistic] [--truth FILE.json] [--progress]")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	cfg := synth.Default()
	if *large {
		cfg = synth.Large()
	}
	cfg, err := cfg.WithPayloadMix(*mix)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	if *seed != 0 {
		cfg.Seed = *seed
	}
	if *flows > 0 {
		cfg.Flows = *flows
	}
	prog := cli.NewProgress(cli.ProgressTarget(stderr, *progress))
	cfg.Progress = func(started, sessions int, packets uint64) {
		prog.Update("%s: %d of %d sessions started, %d packets written (%s)", *out, started, sessions, packets, prog.Elapsed())
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	tr, err := synth.WritePcap(cfg, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if tr != nil {
		prog.Done("%s: %d sessions, %d packets written in %s", *out, cfg.Flows, tr.Packets, prog.Elapsed())
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
	fmt.Fprintf(stdout, "wrote %s: %d flows, %d packets, %d IP octets; payloads %v\n", *out, len(tr.Flows), tr.Packets, tr.Octets, tr.Payloads)
	return nil
}
