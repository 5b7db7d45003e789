package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Usage is the `mira image` part of mira's usage text.
const Usage = `  image   build [--config probe.yaml] [--system system.yaml] [--collector [--collector-config C]] [--size 8G]
                [--sign KEY] [--update-cert CRT --update-key KEY] -o mira.img
                     write a bootable appliance disk image (UEFI and BIOS)
  image   update --to https://probe:8443 --token T [--ca CA.pem] [--sig mira.img.sig] mira.img
                     write a probe's inactive slot, boot it once, keep it if healthy
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
		fmt.Fprint(stdout, "usage: mira image build [flags] -o mira.img\n       mira image update --to URL --token T mira.img\n(mira image build --help, mira image update --help list the flags)\n")
		return flag.ErrHelp
	case "update":
		return runUpdate(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown image command %q (build, update)", args[0])
	}
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira image build", flag.ContinueOnError)
	var o Options
	cfg := fs.String("config", "", "probe configuration put at mira/probe.yaml on the boot partition (default: capture eth1, SNMP on :161)")
	sys := fs.String("system", "", "appliance settings put at mira/system.yaml (default: eth0 by DHCP, NTP pool)")
	fs.StringVar(&o.Output, "o", "", "output raw disk image (required)")
	fs.BoolVar(&o.Collector, "collector", false, "add mira-collector (all-in-one box; its store needs the data partition grown: write the image to a disk\nof 1 GB or more, or give --size)")
	collCfg := fs.String("collector-config", "", "with --collector: mira/collector.yaml (default: store on the data partition, web UI on :8080\nwith a password made for this image, printed)")
	sizeFlag := fs.String("size", "", "make the image file this large (e.g. 2G, 512M; sparse): the data partition is grown over the rest\nat the first boot, as when the image is written to a larger disk")
	fs.StringVar(&o.Bin, "bin", "", "directory with prebuilt mira-init, mira-probe, mira-collector (default: build them)")
	fs.StringVar(&o.Kernel, "kernel", "", "kernel bzImage with EFI stub (default: the "+KernelModule+" module's)")
	fs.StringVar(&o.SignKey, "sign", "", "ed25519 private key (PEM): accept only updates signed with it; writes OUTPUT.sig")
	fs.StringVar(&o.UpdateCert, "update-cert", "", "TLS certificate (PEM) of the update endpoint, put on the data partition (tls/update.crt):\nthe endpoint is HTTPS from the first boot (mira image update --ca names it or its CA)")
	fs.StringVar(&o.UpdateKey, "update-key", "", "the --update-cert's private key (PEM), put at tls/update.key")
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
	if *sizeFlag != "" {
		if o.Size, err = parseSize(*sizeFlag); err != nil {
			return fmt.Errorf("--size: %w", err)
		}
	}
	password := ""
	if *collCfg != "" {
		if !o.Collector {
			return errors.New("--collector-config needs --collector")
		}
		if o.CollectorYAML, err = os.ReadFile(*collCfg); err != nil {
			return err
		}
	} else if o.Collector {
		password = newPassword()
		o.CollectorYAML = defaultCollectorYAML(password)
	}
	if *verbose {
		o.Log = stderr
	}
	if err := Build(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d MiB)\n", o.Output, max(o.Size, ImageSize)>>20)
	if password != "" {
		fmt.Fprintf(stdout, "web UI and HTTP API: http://PROBE:8080/ user mira password %s (mira/collector.yaml on the boot partition)\n", password)
	}
	return nil
}

// parseSize parses 512M, 2G, 1T or a number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"):
		mult = 1 << 30
	case strings.HasSuffix(s, "T"):
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("not a size (512M, 2G)")
	}
	if n*mult < ImageSize {
		return 0, fmt.Errorf("%d bytes is smaller than the image (%d MiB)", n*mult, ImageSize>>20)
	}
	return n * mult, nil
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mira image update", flag.ContinueOnError)
	to := fs.String("to", "", "the probe's update endpoint, https://probe:port (required)")
	token := fs.String("token", "", "the probe's update token (required)")
	ca := fs.String("ca", "", "PEM certificate the probe's TLS certificate must chain to")
	sigFile := fs.String("sig", "", "signature file (default: IMAGE.sig when it exists)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the probe to come back")
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
	if *to == "" || *token == "" || fs.NArg() != 1 {
		return errors.New("usage: mira image update --to https://probe:port --token T [--ca CA.pem] [--sig FILE] mira.img")
	}
	img := fs.Arg(0)
	var sig []byte
	name := *sigFile
	if name == "" {
		if _, err := os.Stat(img + ".sig"); err == nil {
			name = img + ".sig"
		}
	}
	if name != "" {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if sig, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	p, err := ReadPayload(img)
	if err != nil {
		return err
	}
	c, err := NewClient(*to, *token, *ca)
	if err != nil {
		return err
	}
	before, err := c.Status(ctx)
	if err != nil {
		return err
	}
	target := "b"
	if before.Slot == "b" {
		target = "a"
	}
	fmt.Fprintf(stdout, "probe runs slot %s; sending %d + %d bytes for slot %s\n", before.Slot, len(p.Root), len(p.Kernel), target)
	if err := c.Send(ctx, p, sig); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "slot %s written; waiting for the probe to boot it\n", target)
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ok, st, err := c.WaitBoot(wctx, before.BootID, target)
	if err != nil {
		return fmt.Errorf("waiting for the probe: %w", err)
	}
	if !ok {
		return fmt.Errorf("the probe came back on slot %s: %s", st.Slot, st.Message)
	}
	fmt.Fprintf(stdout, "the probe runs slot %s: %s\n", st.Slot, st.Message)
	return nil
}
