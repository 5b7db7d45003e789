package image

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Usage is the `mira image` part of mira's usage text.
const Usage = `  image   build [--config probe.yaml] [--system system.yaml] [--collector] -o mira.img
                     write a bootable appliance disk image (UEFI and BIOS)
`

// Run is `mira image ARGS`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: mira image build [flags] -o mira.img")
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		// Asked for: usage on stdout, and flag.ErrHelp, which mira
		// treats as success.
		fmt.Fprint(stdout, "usage: mira image build [flags] -o mira.img\n(mira image build --help lists the flags)\n")
		return flag.ErrHelp
	default:
		return fmt.Errorf("unknown image command %q (build)", args[0])
	}
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira image build", flag.ContinueOnError)
	var o Options
	cfg := fs.String("config", "", "probe configuration put at mira/probe.yaml on the boot partition (default: capture eth1, SNMP on :161)")
	sys := fs.String("system", "", "appliance settings put at mira/system.yaml (default: eth0 by DHCP, NTP pool)")
	fs.StringVar(&o.Output, "o", "", "output raw disk image (required)")
	fs.BoolVar(&o.Collector, "collector", false, "add mira-collector (all-in-one box)")
	fs.StringVar(&o.Bin, "bin", "", "directory with prebuilt mira-init, mira-probe, mira-collector (default: build them)")
	fs.StringVar(&o.Kernel, "kernel", "", "kernel bzImage with EFI stub (default: the "+KernelModule+" module's)")
	verbose := fs.Bool("v", false, "print the build steps")
	// -h and --help print the flags on stdout (asked for), errors on
	// stderr.
	var help bytes.Buffer
	fs.SetOutput(&help)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			stdout.Write(help.Bytes())
		} else {
			stderr.Write(help.Bytes())
		}
		return err
	}
	fs.SetOutput(stderr)
	if o.Output == "" || fs.NArg() > 0 {
		return errors.New("usage: mira image build [flags] -o mira.img")
	}
	var err error
	if *cfg != "" {
		if o.ProbeYAML, err = os.ReadFile(*cfg); err != nil {
			return err
		}
	}
	if *sys != "" {
		if o.SystemYAML, err = os.ReadFile(*sys); err != nil {
			return err
		}
	}
	if *verbose {
		o.Log = stderr
	}
	if err := Build(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d MiB)\n", o.Output, ImageSize>>20)
	return nil
}
