//go:build linux

// Command fatmsim serves a simulated Fore-style ATM capture device over
// FUSE, fed from the IP packets of pcap files segmented into cells on the
// given VCs, so that mira-probe's fore driver can be tested end to end
// without hardware:
//
//	fatmsim -dir /tmp/dev -vcs 1/100,1/101,2/300 trace.pcap &
//	mira-probe -i fore:/tmp/dev/fatm0,vc=1/100 --export udp://127.0.0.1:4739
//
// It needs root and /dev/fuse, prints the device path once mounted, and
// serves until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/fatmfs"
	"github.com/mira-project/mira/drivers/pcapfile"
)

func main() {
	fs := flag.NewFlagSet("fatmsim", flag.ExitOnError)
	dir := fs.String("dir", "", "mount point (an existing empty directory)")
	name := fs.String("name", "fatm0", "device file name")
	vcList := fs.String("vcs", "1/100", "VPI/VCI list to spread the conversations over")
	ring := fs.Int("ring", 1<<20, "mmap ring size in bytes (negative: read() only)")
	fs.Parse(os.Args[1:])
	if *dir == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: fatmsim -dir DIR [-vcs 1/100,...] FILE.pcap...")
		os.Exit(2)
	}
	if err := run(*dir, *name, *vcList, *ring, fs.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "fatmsim:", err)
		os.Exit(1)
	}
}

func run(dir, name, vcList string, ring int, files []string) error {
	var vcs []atm.VC
	for _, s := range strings.Split(vcList, ",") {
		a, b, ok := strings.Cut(s, "/")
		vpi, err1 := strconv.ParseUint(a, 0, 16)
		vci, err2 := strconv.ParseUint(b, 0, 16)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("-vcs: %q is not VPI/VCI", s)
		}
		vcs = append(vcs, atm.MakeVC(uint16(vpi), uint16(vci)))
	}
	var pkts []fatmfs.Packet
	for _, f := range files {
		p, err := readPcap(f)
		if err != nil {
			return err
		}
		pkts = append(pkts, p...)
	}
	srv, err := fatmfs.Mount(dir, name, fatmfs.Segment(pkts, vcs), &fatmfs.Config{RingSize: ring})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println(srv.Path())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// readPcap reads the packets of a pcap or pcapng file (drivers/pcapfile)
// to segment: IP frames of an Ethernet capture with their Ethernet
// header stripped, raw IP as it is.
func readPcap(path string) ([]fatmfs.Packet, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []fatmfs.Packet
	for {
		data, ci, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		link := ci.LinkType
		if link != drivers.LinkEthernet && link != drivers.LinkRaw {
			return nil, fmt.Errorf("%s: link type %s: only Ethernet and raw IP are segmented", path, pcapfile.LinkTypeName(link))
		}
		data = bytes.Clone(data) // Next's slice is valid only until the next call
		if link == drivers.LinkEthernet && len(data) >= 14 {
			// Routed IP is what a WAN PVC carries: strip Ethernet from IP frames.
			if et := uint16(data[12])<<8 | uint16(data[13]); et == 0x0800 || et == 0x86dd {
				out = append(out, fatmfs.Packet{Timestamp: ci.Timestamp, Data: data[14:], Link: drivers.LinkRaw})
				continue
			}
		}
		out = append(out, fatmfs.Packet{Timestamp: ci.Timestamp, Data: data, Link: link})
	}
}
