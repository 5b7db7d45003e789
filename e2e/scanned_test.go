package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
	"github.com/mira-project/mira/tools/peertest"
)

// scannedCaptures are real captures whose TLS makes the probe stop
// scanning a direction early (tls13: the server's application data after
// its handshake; pop3_stls: both directions after STARTTLS), one whose
// TLS 1.2 payload is scanned whole, and plain HTTP over IPv6.
var scannedCaptures = []string{
	"arkime/tls13.pcap",
	"ndpi/pop3_stls.pcap",
	"arkime/openssl-tls1_2.pcap",
	"arkime/v6-http.pcap",
}

var captureScannedRE = regexp.MustCompile(`msg="capture ended" .* scanned_octets=(\d+)`)

// scanRec is one flow record as the scanned-octet comparison sees it.
type scanRec struct {
	src, dst        netip.Addr
	proto           uint8
	packets, octets uint64
	scanned         uint64
}

func (r scanRec) String() string {
	return fmt.Sprintf("%v->%v/%d %d pkts %d B scanned %d", r.src, r.dst, r.proto, r.packets, r.octets, r.scanned)
}

func compareScanRecs(a, b scanRec) int {
	return strings.Compare(a.String(), b.String())
}

// TestScannedOctetsEndToEnd: mira-probe reads real TLS captures and
// exports to mira-collector, to nfcapd and to an IPFIX file at once. The
// scanned octets `mira flows` shows per record add up to what the
// probe's meter counted, equal the scannedOctetDeltaCount ipfixDump
// decodes from the file record by record, are at most the TCP payload
// tshark counts per direction (fewer where the TLS bypass stopped
// scanning), and reach `mira report`'s biflows per direction as `mira
// analyze` (the same chain in one process) reports them; nfdump still
// reads every flow of the export.
func TestScannedOctetsEndToEnd(t *testing.T) {
	dump := peertest.Program(t, "ipfixDump")
	tshark := peertest.Program(t, "tshark")
	peertest.Program(t, "nfdump")
	var paths []string
	args := []string{}
	for _, c := range scannedCaptures {
		p := peertest.CorpusFile(t, "pcaps", c)
		paths = append(paths, p)
		args = append(args, "-r", p)
	}
	dir := t.TempDir()
	fileDir := filepath.Join(dir, "ipfix")
	if err := os.Mkdir(fileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	nf := peertest.StartNfcapd(t)
	coll := startCollector(t, true, false)
	_, stderr := runErr(t, bin(t, "mira-probe"), append([]string{"--log-level", "info",
		"--export", "udp://" + coll.udp, "--export", nf.URL(), "--export", "file://" + fileDir}, args...)...)
	m := captureEndedRE.FindStringSubmatch(stderr)
	s := captureScannedRE.FindStringSubmatch(stderr)
	if m == nil || s == nil {
		t.Fatalf("mira-probe printed no \"capture ended\" line with scanned_octets:\n%s", stderr)
	}
	records, _ := strconv.ParseUint(m[3], 10, 64)
	probeScanned, _ := strconv.ParseUint(s[1], 10, 64)
	coll.waitMetric(t, "mira_collector_stored_records_total", records)
	waitUDPDrained(t, coll.udpPort())
	coll.p.terminate(t, 20*time.Second)

	// mira flows: per record, and the sum is the meter's count.
	out := run(t, bin(t, "mira"), "flows", "--db", coll.db, "--format", "json")
	var fl miraFlows
	if err := json.Unmarshal(out, &fl); err != nil {
		t.Fatalf("mira flows --format json: %v\n%s", err, out)
	}
	if uint64(len(fl.Flows)) != records {
		t.Fatalf("mira flows lists %d flows, the probe exported %d records", len(fl.Flows), records)
	}
	var mira []scanRec
	var sum uint64
	scannedOf := map[flow.Key]uint64{} // by direction (the captures hold one connection per key)
	for _, f := range fl.Flows {
		if f.ScannedOctets == nil {
			t.Fatalf("mira flows: flow %v:%d -> %v:%d has no scanned_octets", f.Src, f.Sport, f.Dst, f.Dport)
		}
		mira = append(mira, scanRec{f.Src, f.Dst, f.Proto, f.Packets, f.Octets, *f.ScannedOctets})
		sum += *f.ScannedOctets
		scannedOf[flow.Key{Src: f.Src, Dst: f.Dst, Sport: f.Sport, Dport: f.Dport, Proto: f.Proto}] += *f.ScannedOctets
	}
	if sum != probeScanned || fl.Summary.ScannedOctets != probeScanned || probeScanned == 0 {
		t.Fatalf("mira flows: scanned octets sum to %d (summary %d), the probe's meter scanned %d", sum, fl.Summary.ScannedOctets, probeScanned)
	}

	// ipfixDump of the file export: the same values, record by record.
	files, _ := filepath.Glob(filepath.Join(fileDir, "*.ipfix"))
	if len(files) != 1 {
		t.Fatalf("file export: %v", files)
	}
	var xml strings.Builder
	if err := ipfix.WriteElementXML(&xml, 0); err != nil {
		t.Fatal(err)
	}
	xmlFile := filepath.Join(dir, "mira-elements.xml")
	if err := os.WriteFile(xmlFile, []byte(xml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	dumped := ipfixDumpScanned(t, string(run(t, dump, "--element-file", xmlFile, "--in", files[0])))
	slices.SortFunc(mira, compareScanRecs)
	slices.SortFunc(dumped, compareScanRecs)
	if !slices.Equal(mira, dumped) {
		t.Fatalf("mira flows and ipfixDump differ:\nmira flows:\n%v\nipfixDump:\n%v", mira, dumped)
	}

	// tshark: scanned octets are at most each direction's TCP payload,
	// and fewer where the TLS bypass stopped scanning.
	early := 0
	for _, p := range paths {
		tcp := run(t, tshark, "-r", p, "-Y", "tcp", "-T", "fields", "-E", "separator=,",
			"-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.len")
		payload := map[flow.Key]uint64{}
		for _, line := range strings.Split(strings.TrimSpace(string(tcp)), "\n") {
			f := strings.Split(line, ",")
			if len(f) != 7 {
				t.Fatalf("tshark line %q", line)
			}
			src, _ := netip.ParseAddr(f[0] + f[1])
			dst, _ := netip.ParseAddr(f[2] + f[3])
			sp, _ := strconv.ParseUint(f[4], 10, 16)
			dp, _ := strconv.ParseUint(f[5], 10, 16)
			n, _ := strconv.ParseUint(f[6], 10, 64)
			payload[flow.Key{Src: src, Dst: dst, Sport: uint16(sp), Dport: uint16(dp), Proto: 6}] += n
		}
		for k, n := range payload {
			sc, ok := scannedOf[k]
			switch {
			case !ok:
				t.Errorf("%s: tshark's direction %v has no record in mira flows", filepath.Base(p), k)
			case sc > n:
				t.Errorf("%s: %v: %d octets scanned, tshark counts %d of TCP payload", filepath.Base(p), k, sc, n)
			case sc < n:
				early++
				t.Logf("%s: %v: scanning stopped early: %d of %d payload octets scanned", filepath.Base(p), k, sc, n)
			}
		}
	}
	if early == 0 {
		t.Error("no direction of the TLS captures was scanned less than its payload (the bypass never stopped scanning)")
	}

	// mira report: per direction, as mira analyze reports the same
	// captures; each direction is its record's.
	type dirs struct{ fwd, rev uint64 }
	biflows := func(rep reportJSON) map[flow.Key]dirs {
		m := map[flow.Key]dirs{}
		for _, b := range rep.Biflows {
			m[b.Key] = dirs{b.ScannedOctets, b.RScannedOctets}
		}
		return m
	}
	stored := biflows(parseReport(t, "mira report", run(t, bin(t, "mira"), "report", "--db", coll.db, "--format", "json")))
	analyzed := biflows(analyzeJSON(t, paths...))
	if len(stored) == 0 || len(stored) != len(analyzed) {
		t.Fatalf("mira report has %d biflows, mira analyze %d", len(stored), len(analyzed))
	}
	for k, d := range stored {
		if a, ok := analyzed[k]; !ok || a != d {
			t.Errorf("biflow %v: mira report scanned %d/%d, mira analyze %v (found %v)", k, d.fwd, d.rev, a, ok)
		}
		rk := k.Reverse()
		rk.VLAN = 0
		k.VLAN = 0
		if d.fwd != scannedOf[k] || d.rev != scannedOf[rk] {
			t.Errorf("biflow %v: scanned %d/%d, its records %d/%d", k, d.fwd, d.rev, scannedOf[k], scannedOf[rk])
		}
	}

	// nfdump reads every flow of the same export (it skips the
	// enterprise element).
	nfFlows := nfdumpUniflows(t, nf.Records(t))
	miraFlows, _ := storeFlows(t, coll.db)
	sameFlows(t, "nfdump", nfFlows, "mira flows", miraFlows)
	t.Logf("%d records, %d octets scanned (the probe's meter: %d), %d directions stopped early", records, sum, probeScanned, early)
}

// ipfixDumpScanned reads the flow records of ipfixDump's output (options
// records have no octetDeltaCount and are left out); a record without
// scannedOctetDeltaCount (a template without it: nothing scanned) is 0.
func ipfixDumpScanned(t *testing.T, out string) []scanRec {
	t.Helper()
	var recs []scanRec
	for _, block := range strings.Split(out, "\n--- ")[1:] {
		if !strings.HasPrefix(block, "data record") {
			continue
		}
		if i := strings.Index(block, "+++ subTemplateList +++"); i >= 0 {
			block = block[:i] // the symptom list's records
		}
		fields := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			name, val, ok := strings.Cut(line, " : ")
			if !ok {
				continue
			}
			f := strings.Fields(name)
			fields[f[len(f)-1]] = strings.TrimSpace(val)
		}
		if fields["octetDeltaCount"] == "" {
			continue
		}
		num := func(k string) uint64 {
			v, err := strconv.ParseUint(fields[k], 10, 64)
			if err != nil && fields[k] != "" {
				t.Fatalf("ipfixDump %s = %q", k, fields[k])
			}
			return v
		}
		addr := func(v4, v6 string) netip.Addr {
			a, err := netip.ParseAddr(fields[v4] + fields[v6])
			if err != nil {
				t.Fatalf("ipfixDump address %q%q: %v", fields[v4], fields[v6], err)
			}
			return a
		}
		recs = append(recs, scanRec{
			src: addr("sourceIPv4Address", "sourceIPv6Address"), dst: addr("destinationIPv4Address", "destinationIPv6Address"),
			proto: uint8(num("protocolIdentifier")), packets: num("packetDeltaCount"), octets: num("octetDeltaCount"),
			scanned: num("scannedOctetDeltaCount"),
		})
	}
	if len(recs) == 0 {
		t.Fatalf("ipfixDump shows no flow records:\n%s", out)
	}
	return recs
}
