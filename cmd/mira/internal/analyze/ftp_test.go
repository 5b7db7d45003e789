package analyze_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/collector/classify"
	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// tsharkFTP returns the data ports tshark's FTP dissector finds
// announced in a capture (PORT, EPRT, 227 and 229) and the connections
// its ftp-data dissector decodes (those that carried data).
func tsharkFTP(t *testing.T, tshark, path string) (ports []string, data []flow.Key) {
	t.Helper()
	out, err := exec.Command(tshark, "-r", path, "-n", "-Y", "ftp.passive.port || ftp.active.port || ftp.eprt.port || ftp.epsv.port",
		"-T", "fields", "-E", "separator=,", "-e", "ftp.passive.port", "-e", "ftp.active.port", "-e", "ftp.eprt.port", "-e", "ftp.epsv.port").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	for _, f := range strings.FieldsFunc(string(out), func(r rune) bool { return r == ',' || r == '\n' }) {
		if !slices.Contains(ports, f) {
			ports = append(ports, f)
		}
	}
	out, err = exec.Command(tshark, "-r", path, "-n", "-Y", "ftp-data", "-T", "fields", "-E", "separator=\t",
		"-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		c := strings.Split(line, "\t")
		if len(c) != 6 {
			continue
		}
		src, err1 := netip.ParseAddr(c[0] + c[1])
		dst, err2 := netip.ParseAddr(c[3] + c[4])
		sp, err3 := strconv.ParseUint(c[2], 10, 16)
		dp, err4 := strconv.ParseUint(c[5], 10, 16)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			t.Fatalf("tshark line %q", line)
		}
		k := connOf(flow.Key{Src: src, Dst: dst, Sport: uint16(sp), Dport: uint16(dp), Proto: 6})
		if !slices.Contains(data, k) {
			data = append(data, k)
		}
	}
	return ports, data
}

// withoutPairCounts is the default rule set less its rules that read
// pair (the data connection found by symptoms of the connections beside
// it): what is left finds data connections only through ftp_data.
func withoutPairCounts(t *testing.T) *classify.Rules {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for _, ru := range classify.Default().Rules() {
		if !strings.Contains(ru.When, "pair") {
			fmt.Fprintf(&b, "  - category: %q\n    when: %q\n", ru.Category, ru.When)
		}
	}
	r, err := classify.Parse("no-pair-counts.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFTPDataAnnounced runs real FTP captures (passive PASV and EPSV,
// active PORT and EPRT, IPv4 and IPv6) through the chain: the control
// connection's biflow lists the data ports tshark's FTP dissector finds
// announced, and every data connection tshark's ftp-data dissector
// decodes is FTP by its announcement alone (the rules that read pair
// counts removed), while no connection outside the announcements is.
func TestFTPDataAnnounced(t *testing.T) {
	tshark := peertest.Program(t, "tshark")
	files := []string{
		peertest.CorpusFile(t, "pcaps", "zeek", "ftp__retr.pcap"),
		peertest.CorpusFile(t, "pcaps", "zeek", "ftp__ipv6.pcap"),
	}
	if dir, ok := peertest.SharedCorpus(); ok {
		for _, f := range []string{"ftp__ipv4.pcap", "ftp__bigtransfer.pcap"} {
			p := filepath.Join(dir, "pcaps", "zeek", f)
			if _, err := os.Stat(p); err == nil {
				files = append(files, p)
			}
		}
	}
	rules := withoutPairCounts(t)
	total := 0
	for _, f := range files {
		name := filepath.Base(f)
		st := analyzed(t, f)
		rep, err := report.FromStoreQuery(context.Background(), st, store.Query{}, report.Options{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		ports, data := tsharkFTP(t, tshark, f)
		if len(ports) == 0 || len(data) == 0 {
			t.Fatalf("%s: tshark finds no announcements (%v) or data connections (%v)", name, ports, data)
		}
		var announced []string
		cat := map[flow.Key]string{}
		for _, b := range rep.Biflows {
			k := connOf(b.Key)
			if b.Dport == 21 || b.Sport == 21 {
				for _, p := range strings.Split(b.Meta.FTPData, ",") {
					if p != "" && !slices.Contains(announced, p) {
						announced = append(announced, p)
					}
				}
				continue
			}
			if cat[k] == "" || b.Category == "FTP" {
				cat[k] = b.Category
			}
			if b.Category == "FTP" && !slices.Contains(ports, strconv.Itoa(int(b.Dport))) && !slices.Contains(ports, strconv.Itoa(int(b.Sport))) {
				t.Errorf("%s: %v is FTP but on no announced port (%v)", name, b.Key, ports)
			}
		}
		slices.Sort(announced)
		slices.Sort(ports)
		if !slices.Equal(announced, ports) {
			t.Errorf("%s: the control connection announced %v, tshark finds %v", name, announced, ports)
		}
		for _, k := range data {
			total++
			if cat[k] != "FTP" {
				t.Errorf("%s: data connection %v is %q, want FTP from its announcement", name, k, cat[k])
			}
		}
	}
	t.Logf("%d data connections in %d captures found through their announcements", total, len(files))
}
