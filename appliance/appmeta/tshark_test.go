package appmeta_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/meter"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// dirKey is a flow direction without its VLAN.
type dirKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

func keyOfFlow(k flow.Key) dirKey {
	return dirKey{k.Src.Unmap(), k.Dst.Unmap(), k.Sport, k.Dport, k.Proto}
}

// meterApps runs a capture through a meter with application metadata on
// and returns each direction's App (the first record's with one).
func meterApps(t *testing.T, path string) (map[dirKey]flow.App, error) {
	r, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := map[dirKey]flow.App{}
	tab := meter.New(&meter.Config{AppMetadata: true, ExportBatch: 1}, func(recs []flow.Record) {
		for i := range recs {
			k := keyOfFlow(recs[i].Key)
			if _, ok := out[k]; !ok && !recs[i].App.IsZero() {
				out[k] = recs[i].App
			}
		}
	})
	d := decode.New(nil)
	var p decode.Packet
	for {
		data, ci, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if d.Decode(data, ci, &p) != nil {
			continue
		}
		tab.Add(&p, ci.Timestamp, 0)
	}
	tab.Flush()
	return out, nil
}

// tsharkView is what tshark's dissectors say of one flow direction:
// every value of each field, in frame order.
type tsharkView struct {
	sni, host, qname []string
	rcode            []string
	ftp              []string // FTP data ports announced
}

// tsharkApps runs tshark over a capture for the fields MIRA extracts.
func tsharkApps(t *testing.T, tshark, path string) map[dirKey]*tsharkView {
	fields := []string{"ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
		"tls.handshake.extensions_server_name", "http.host", "dns.qry.name", "dns.flags.response", "dns.flags.rcode", "quic.long.packet_type",
		"ftp.passive.port", "ftp.active.port", "ftp.eprt.port", "ftp.epsv.port"}
	args := []string{"-r", path, "-n", "-o", "tcp.desegment_tcp_streams:FALSE", "-Y", "tls.handshake.type == 1 || http.request || dns || mdns || llmnr || quic || ftp",
		"-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	views := map[dirKey]*tsharkView{}
	last := func(s string) string {
		v := strings.Split(s, "|")
		return v[len(v)-1]
	}
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		c := strings.Split(line, "\t")
		if len(c) != len(fields) {
			continue
		}
		src, dst := c[0], c[1]
		if c[2] != "" && (src == "" || strings.Count(c[2], "|") >= 0 && len(c[2]) > 0 && ipv6Inner(c)) {
			src, dst = c[2], c[3]
		}
		var k dirKey
		var e1, e2 error
		k.src, e1 = netip.ParseAddr(last(src))
		k.dst, e2 = netip.ParseAddr(last(dst))
		if e1 != nil || e2 != nil {
			continue
		}
		sp, dp := c[4], c[5]
		k.proto = 6
		if sp == "" {
			sp, dp, k.proto = c[6], c[7], 17
		}
		a, _ := strconv.Atoi(last(sp))
		b, _ := strconv.Atoi(last(dp))
		k.sport, k.dport = uint16(a), uint16(b)
		v := views[k]
		if v == nil {
			v = &tsharkView{}
			views[k] = v
		}
		add := func(dst *[]string, s string) {
			if s != "" {
				*dst = append(*dst, strings.Split(s, "|")...)
			}
		}
		add(&v.sni, c[8])
		add(&v.host, c[9])
		add(&v.qname, c[10])
		if strings.HasPrefix(c[11], "True") || strings.HasPrefix(c[11], "1") {
			add(&v.rcode, strings.Split(c[12], "|")[0])
		}
		for _, f := range c[14:18] {
			for _, p := range strings.Split(f, "|") {
				if p != "" && !slices.Contains(v.ftp, p) {
					v.ftp = append(v.ftp, p)
				}
			}
		}
	}
	return views
}

// ipv6Inner reports whether the innermost IP header of a tshark row is
// IPv6: tshark lists a packet's IPv4 and IPv6 headers in separate fields,
// so the order is unknown; MIRA's corpus tunnels of IPv6 inside IPv4
// carry the IPv6 header innermost, and IPv4 inside IPv6 is rare.
func ipv6Inner(c []string) bool { return c[0] == "" || !strings.Contains(c[2], ".") }

// likely names captures that may hold what MIRA looks for even when it
// found nothing in them.
var likely = regexp.MustCompile(`(?i)http|tls|ssl|dns|quic|www|web|dav|chrome|firefox|google|ftp`)

// TestTsharkAgrees compares, per flow direction, the server name, HTTP
// host and DNS question name the meter extracts with tshark's
// tls.handshake.extensions_server_name (TLS, and QUIC's, which tshark
// decrypts from the Initial), http.host and dns.qry.name, and the FTP
// data ports announced with ftp.passive.port, ftp.active.port,
// ftp.eprt.port and ftp.epsv.port (the direction's set): where MIRA
// found a value it must be one tshark shows for that direction, and
// where tshark shows one MIRA must have found one.
func TestTsharkAgrees(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	var files []string
	for _, dir := range []string{peertest.Corpus(t, "pcaps")} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".pcap") || strings.HasSuffix(p, ".pcapng")) {
				files = append(files, p)
			}
			return nil
		})
	}
	if len(files) == 0 {
		t.Fatal("no captures in the corpus")
	}
	type tally struct{ agree, missed, wrong, extra int }
	tallies := map[string]*tally{"sni": {}, "host": {}, "qname": {}, "rcode": {}, "ftp": {}}
	for _, f := range files {
		ours, err := meterApps(t, f)
		if err != nil {
			continue // a capture the reader does not take
		}
		if len(ours) == 0 && !likely.MatchString(filepath.Base(f)) {
			continue // spare tshark the captures of other protocols
		}
		theirs := tsharkApps(t, tshark, f)
		name, _ := filepath.Rel(filepath.Dir(filepath.Dir(f)), f)
		check := func(field, got string, want []string) {
			tl := tallies[field]
			switch {
			case got == "" && len(want) == 0:
			case got == "":
				tl.missed++
				t.Logf("%s: %s: tshark %q, MIRA none", name, field, want)
			case slices.Contains(want, got):
				tl.agree++
			case len(want) == 0:
				tl.extra++
				t.Logf("%s: %s: MIRA %q, tshark none", name, field, got)
			default:
				tl.wrong++
				t.Errorf("%s: %s: MIRA %q, tshark %q", name, field, got, want)
			}
		}
		keys := map[dirKey]bool{}
		for k := range ours {
			keys[k] = true
		}
		for k := range theirs {
			keys[k] = true
		}
		for k := range keys {
			a, v := ours[k], theirs[k]
			if v == nil {
				v = &tsharkView{}
			}
			check("sni", a.ServerName, v.sni)
			check("host", a.HTTPHost, v.host)
			check("qname", a.DNSName, v.qname)
			rc := ""
			if a.DNSResponse {
				rc = fmt.Sprint(a.DNSRcode)
			}
			check("rcode", rc, v.rcode)
			// FTP data ports: the direction's whole list, as a set.
			var ours []string
			a.FTPDataPorts(func(p uint16) { ours = append(ours, fmt.Sprint(p)) })
			slices.Sort(ours)
			theirs := slices.Sorted(slices.Values(v.ftp))
			got, want := strings.Join(ours, ","), []string{strings.Join(theirs, ",")}
			if len(theirs) == 0 {
				want = nil
			}
			check("ftp", got, want)
		}
	}
	for _, field := range []string{"sni", "host", "qname", "rcode", "ftp"} {
		tl := tallies[field]
		t.Logf("%-5s agree %d, MIRA missed %d, MIRA differs %d, MIRA only %d", field, tl.agree, tl.missed, tl.wrong, tl.extra)
	}
}
