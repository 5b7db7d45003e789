package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/tools/peertest"
)

// tuple is what the corpus comparison keys on: innermost addresses and
// transport ports (protocol and VLAN are summed over, since tshark cannot
// name the transport of every IPv6 extension chain the same way).
type tuple struct {
	src, dst     netip.Addr
	sport, dport uint16
}

type agg struct {
	packets, octets uint64
	first, last     int64
}

func (a *agg) add(packets, octets uint64, first, last int64) {
	if a.packets == 0 || first < a.first {
		a.first = first
	}
	if last > a.last {
		a.last = last
	}
	a.packets += packets
	a.octets += octets
}

// Layers MIRA decapsulates; tshark's protocol list is walked through
// these to find the innermost IP header.
var tunnelCarriers = map[string]bool{"vxlan": true, "teredo": true, "gtp": true}

var tsharkFields = []string{
	"frame.time_epoch", "frame.protocols",
	"ip.src", "ip.dst", "ip.len", "ip.id", "ip.flags.mf", "ip.frag_offset", "ip.proto",
	"ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.fraghdr.ident", "ipv6.fraghdr.more", "ipv6.fraghdr.offset",
	"tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport",
	"icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
}

// tsharkFlows computes per-tuple counts with tshark, independently of
// MIRA's decoder. Fragments: tshark's reassembly is turned off; later
// fragments take the ports of their datagram's first fragment (by IP id),
// as the issue asks of the meter.
func tsharkFlows(t *testing.T, tshark, file string) (map[tuple]*agg, error) {
	args := []string{"-r", file, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-o", "ip.check_checksum:FALSE", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tshark, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(stderr.String(), "cut short in the middle of a packet") {
		return nil, fmt.Errorf("tshark: %v: %s", err, stderr.String())
	}
	type fragKey struct {
		src, dst netip.Addr
		id       string
	}
	fragPorts := map[fragKey][2]uint16{}
	res := map[tuple]*agg{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		col := strings.Split(sc.Text(), "\t")
		if len(col) != len(tsharkFields) {
			return nil, fmt.Errorf("tshark: %d fields in %q", len(col), sc.Text())
		}
		f := map[string][]string{}
		for i, name := range tsharkFields {
			if col[i] != "" {
				f[name] = strings.Split(col[i], ",")
			}
		}
		ts, err := parseEpoch(col[0])
		if err != nil {
			return nil, err
		}
		// Walk the layers to the innermost IP header MIRA keys on,
		// counting occurrences so the fields of that header and of its
		// transport are picked, not those of a header quoted deeper
		// (ICMP errors) or of a tunnel MIRA does not open.
		layers := strings.Split(col[1], ":")
		var n4, n6, inner4, inner6, nUDP, nTCP, nSCTP, tOcc int
		outer := ""
		innerV := ""
		transport := ""
		type snap struct {
			n4, n6, inner4, inner6, nUDP int
			innerV                       string
		}
		var carrier *snap
	walk:
		for i, l := range layers {
			switch l {
			case "ip", "ipv6":
				if l == "ip" {
					n4++
					inner4 = n4
				} else {
					n6++
					inner6 = n6
				}
				innerV = l
				if outer == "" {
					outer = l
				}
				carrier = nil // the tunnel did carry IP
			case "tcp":
				nTCP++
				transport, tOcc = l, nTCP
				break walk
			case "sctp":
				nSCTP++
				transport, tOcc = l, nSCTP
				break walk
			case "icmp", "icmpv6":
				transport = l
				break walk
			case "udp":
				nUDP++
				transport, tOcc = l, nUDP
				if i+1 < len(layers) && tunnelCarriers[layers[i+1]] {
					carrier = &snap{n4, n6, inner4, inner6, nUDP, innerV}
					transport = ""
					continue
				}
				break walk
			case "esp", "ah":
				break walk
			}
		}
		if carrier != nil && transport == "" {
			// The tunnel carried no IP: MIRA keys on the carrier.
			n4, n6, inner4, inner6, innerV = carrier.n4, carrier.n6, carrier.inner4, carrier.inner6, carrier.innerV
			transport, tOcc = "udp", carrier.nUDP
		}
		if innerV == "" {
			continue // not IP: MIRA counts it as non-IP
		}
		get := func(name string, occ int) string {
			v := f[name]
			if occ < 1 || occ > len(v) {
				return ""
			}
			return v[occ-1]
		}
		var tp tuple
		var fk fragKey
		var later, first bool
		if innerV == "ip" {
			tp.src, _ = netip.ParseAddr(get("ip.src", inner4))
			tp.dst, _ = netip.ParseAddr(get("ip.dst", inner4))
			fk = fragKey{tp.src, tp.dst, "4/" + get("ip.id", inner4) + "/" + get("ip.proto", inner4)}
			off := get("ip.frag_offset", inner4)
			later = off != "" && off != "0"
			first = !later && get("ip.flags.mf", inner4) == "1"
		} else {
			tp.src, _ = netip.ParseAddr(get("ipv6.src", inner6))
			tp.dst, _ = netip.ParseAddr(get("ipv6.dst", inner6))
			if id := get("ipv6.fraghdr.ident", 1); id != "" {
				fk = fragKey{tp.src, tp.dst, "6/" + id}
				off := get("ipv6.fraghdr.offset", 1)
				later = off != "" && off != "0"
				first = !later
			}
		}
		// Transport fields: the occurrence the walk stopped at.
		last := func(name string) string { return get(name, tOcc) }
		atoi := func(s string) uint16 { n, _ := strconv.Atoi(s); return uint16(n) }
		switch transport {
		case "tcp":
			tp.sport, tp.dport = atoi(last("tcp.srcport")), atoi(last("tcp.dstport"))
		case "udp":
			tp.sport, tp.dport = atoi(last("udp.srcport")), atoi(last("udp.dstport"))
		case "sctp":
			tp.sport, tp.dport = atoi(last("sctp.srcport")), atoi(last("sctp.dstport"))
		case "icmp":
			tp.dport = atoi(get("icmp.type", 1))<<8 | atoi(get("icmp.code", 1))
		case "icmpv6":
			tp.dport = atoi(get("icmpv6.type", 1))<<8 | atoi(get("icmpv6.code", 1))
		}
		if later {
			if p, ok := fragPorts[fk]; ok {
				tp.sport, tp.dport = p[0], p[1]
			} else {
				tp.sport, tp.dport = 0, 0
			}
		} else if first {
			fragPorts[fk] = [2]uint16{tp.sport, tp.dport}
		}
		// Octets: the outermost IP header's length.
		var octets uint64
		if outer == "ip" {
			n, _ := strconv.Atoi(get("ip.len", 1))
			octets = uint64(n)
		} else {
			n, _ := strconv.Atoi(get("ipv6.plen", 1))
			octets = uint64(n) + 40
		}
		a := res[tp]
		if a == nil {
			a = &agg{}
			res[tp] = a
		}
		a.add(1, octets, ts, ts)
	}
	return res, sc.Err()
}

func parseEpoch(s string) (int64, error) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return n*1e9 + ns, nil
}

func miraFlows(t *testing.T, file string) (map[tuple]*agg, error) {
	src, err := pcapfile.Open(file)
	if err != nil {
		return nil, err
	}
	var recs Records
	p := New(Config{Meter: meter.Config{IdleTimeout: time.Hour, ActiveTimeout: 24 * time.Hour}}, recs.Sink())
	if err := p.Run(context.Background(), []drivers.Source{src}, false); err != nil {
		return nil, err
	}
	res := map[tuple]*agg{}
	for _, r := range recs.Recs {
		tp := tuple{r.Src, r.Dst, r.Sport, r.Dport}
		a := res[tp]
		if a == nil {
			a = &agg{}
			res[tp] = a
		}
		a.add(r.Packets, r.Octets, r.First, r.Last)
	}
	return res, nil
}

// TestCorpusAgainstTshark checks, for every capture in the shared corpus
// whose link type MIRA supports, that per-flow packets, octets and
// first/last times equal what tshark computes from the same file.
func TestCorpusAgainstTshark(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	dir := peertest.Corpus(t, "pcaps")
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			switch filepath.Ext(p) {
			case ".pcap", ".pcapng", ".cap", ".gz":
				files = append(files, p)
			}
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatal("no captures in the corpus")
	}
	sort.Strings(files)
	var mu sync.Mutex
	var compared, unsupported, flows int
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, file := range files {
		name, _ := filepath.Rel(dir, file)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			mira, err := miraFlows(t, file)
			if errors.Is(err, pcapfile.ErrUnsupportedLinkType) {
				mu.Lock()
				unsupported++
				mu.Unlock()
				return
			}
			want, terr := tsharkFlows(t, tshark, file)
			if terr != nil {
				if err == nil {
					t.Errorf("%s: mira reads it but tshark cannot: %v", name, terr)
				}
				return
			}
			if err != nil {
				// A corrupt tail: compare what both read.
				t.Logf("%s: %v", name, err)
			}
			diffs := compare(want, mira)
			mu.Lock()
			defer mu.Unlock()
			compared++
			flows += len(want)
			if len(diffs) > 0 {
				if len(diffs) > 5 {
					diffs = append(diffs[:5], fmt.Sprintf("... and %d more", len(diffs)-5))
				}
				t.Errorf("%s: %d flows per tshark, mismatches:\n  %s", name, len(want), strings.Join(diffs, "\n  "))
			}
		}()
	}
	wg.Wait()
	t.Logf("compared %d captures (%d flows) with tshark; %d have link types MIRA does not decode", compared, flows, unsupported)
	if compared < len(files)/2 {
		t.Errorf("only %d of %d captures compared", compared, len(files))
	}
}

func compare(want, got map[tuple]*agg) []string {
	var diffs []string
	for k, w := range want {
		g := got[k]
		if g == nil {
			diffs = append(diffs, fmt.Sprintf("%v:%d > %v:%d: missing in mira (tshark %d pkts %d octets)", k.src, k.sport, k.dst, k.dport, w.packets, w.octets))
			continue
		}
		if *g != *w {
			diffs = append(diffs, fmt.Sprintf("%v:%d > %v:%d: mira %+v tshark %+v", k.src, k.sport, k.dst, k.dport, *g, *w))
		}
	}
	for k, g := range got {
		if want[k] == nil {
			diffs = append(diffs, fmt.Sprintf("%v:%d > %v:%d: extra in mira (%d pkts)", k.src, k.sport, k.dst, k.dport, g.packets))
		}
	}
	sort.Strings(diffs)
	return diffs
}
