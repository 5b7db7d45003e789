package decode

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/tools/peertest"
)

// corpusDir returns the pcaps folder of the captures shipped in
// testdata/corpus, which the tests below name one by one.
func corpusDir(t testing.TB) string {
	t.Helper()
	return peertest.CorpusFile(t, "pcaps")
}

// capPacket is one packet read from a capture file.
type capPacket struct {
	data []byte
	ci   drivers.CaptureInfo
}

// readCapture reads a pcap or pcapng file, failing the test on error.
func readCapture(t testing.TB, path string) []capPacket {
	t.Helper()
	pkts, err := loadCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

// loadCapture reads a pcap or pcapng file.
func loadCapture(path string) ([]capPacket, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type reader interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var (
		r  reader
		lt drivers.LinkType
	)
	if len(raw) >= 4 && bytes.Equal(raw[:4], []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, lt = ng, drivers.LinkType(ng.LinkType())
	} else {
		pr, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, lt = pr, drivers.LinkType(pr.LinkType())
	}
	var out []capPacket
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, capPacket{data: data, ci: drivers.CaptureInfo{
			Timestamp: ci.Timestamp.UnixNano(), CaptureLength: ci.CaptureLength, Length: ci.Length, LinkType: lt,
		}})
	}
}

// tsharkView is tshark's idea of a packet's innermost IP flow.
type tsharkView struct {
	ok           bool // tshark saw an IP header
	ver          int
	src, dst     netip.Addr
	hasTransport bool
	proto        uint8
	sport, dport uint16
	protocols    string
	// The outermost IP header, how many IP headers tshark saw before any
	// stop token, and the outermost datagram length (0 if the field is 0).
	outerSrc, outerDst netip.Addr
	nIP                int
	outerLen           int
	// The link's leading VLAN tags (outermost first).
	vlans []uint16
}

var tsharkFields = []string{
	"frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
	"tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
	"sctp.srcport", "sctp.dstport", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
	"ip.len", "ipv6.plen", "vlan.id", "ieee8021ad.id",
}

// stopTokens are tshark protocols after which we expect no decapsulation:
// tunnels MIRA does not follow, and ICMP errors quoting a packet.
var stopTokens = map[string]bool{
	"icmp": true, "icmpv6": true, "ayiya": true, "l2tp": true,
	"capwap.data": true, "capwap": true, "udpencap": true,
	"esp": true, "igmp": true,
}

// runTshark decodes a capture with tshark and returns one view per frame.
func runTshark(t *testing.T, path string) []tsharkView {
	t.Helper()
	bin := peertest.Program(t, "tshark")
	args := []string{"-r", path, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-d", "udp.port==8472,vxlan", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", path, err, stderr.String())
	}
	var views []tsharkView
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		for len(cols) < len(tsharkFields) {
			cols = append(cols, "")
		}
		views = append(views, parseView(t, cols))
	}
	return views
}

func nth(col string, i int) string {
	parts := strings.Split(col, ",")
	if i < len(parts) {
		return parts[i]
	}
	return ""
}

func parseView(t *testing.T, cols []string) tsharkView {
	v := tsharkView{protocols: cols[0]}
	counts := map[string]int{}
	ipIdx := -1
	nv, nad := 0, 0
tags:
	for _, tok := range strings.Split(cols[0], ":") {
		switch tok {
		case "eth", "ethertype", "sll", "vntag":
		case "vlan":
			id, _ := strconv.Atoi(nth(cols[17], nv))
			nv++
			v.vlans = append(v.vlans, uint16(id))
		case "ieee8021ad":
			id, _ := strconv.Atoi(nth(cols[18], nad))
			nad++
			v.vlans = append(v.vlans, uint16(id))
		default:
			break tags
		}
	}
	for _, tok := range strings.Split(cols[0], ":") {
		idx := counts[tok]
		counts[tok]++
		switch tok {
		case "ip", "ipv6":
			v.ok, v.hasTransport = true, false
			ipIdx = idx
			if tok == "ip" {
				v.ver = 4
				v.src, _ = netip.ParseAddr(nth(cols[1], idx))
				v.dst, _ = netip.ParseAddr(nth(cols[2], idx))
			} else {
				v.ver = 6
				v.src, _ = netip.ParseAddr(nth(cols[3], idx))
				v.dst, _ = netip.ParseAddr(nth(cols[4], idx))
			}
			if v.nIP == 0 {
				v.outerSrc, v.outerDst = v.src, v.dst
				if tok == "ip" {
					v.outerLen, _ = strconv.Atoi(nth(cols[15], 0))
				} else if n, _ := strconv.Atoi(nth(cols[16], 0)); n > 0 {
					v.outerLen = 40 + n
				}
			}
			v.nIP++
			continue
		case "tcp", "udp", "sctp", "icmp", "icmpv6":
			if ipIdx < 0 || v.hasTransport {
				break
			}
			v.hasTransport = true
			c := map[string][2]int{"tcp": {5, 6}, "udp": {7, 8}, "sctp": {9, 10}, "icmp": {11, 12}, "icmpv6": {13, 14}}[tok]
			a, _ := strconv.Atoi(nth(cols[c[0]], idx))
			b, _ := strconv.Atoi(nth(cols[c[1]], idx))
			switch tok {
			case "tcp":
				v.proto = 6
			case "udp":
				v.proto = 17
			case "sctp":
				v.proto = 132
			case "icmp":
				v.proto = 1
			case "icmpv6":
				v.proto = 58
			}
			if tok == "icmp" || tok == "icmpv6" {
				v.sport, v.dport = 0, uint16(a<<8|b)
			} else {
				v.sport, v.dport = uint16(a), uint16(b)
			}
		}
		if stopTokens[tok] {
			break
		}
	}
	return v
}

// corpusFiles are the captures compared with tshark packet by packet.
var corpusFiles = []string{
	"ndpi/4in4tunnel.pcap", "ndpi/6in4tunnel.pcap", "ndpi/4in6tunnel.pcap", "ndpi/6in6tunnel.pcap",
	"ndpi/gre.pcapng", "ndpi/teredo.pcap", "ndpi/vxlan.pcap", "ndpi/pptp.pcap", "ndpi/ipv6_in_gtp.pcap",
	"ndpi/dlt_ppp.pcap",
	"arkime/gtp-u.pcap", "arkime/pppoe.pcap", "arkime/6-4-gre-ppp-udp-4-dns.pcap", "arkime/gre-erspan.pcap",
	"arkime/gre-sample.pcap", "arkime/ipv6-in-ipv4.pcap", "arkime/ipv6-gtp6.pcap", "arkime/dot1ad.pcap",
	"arkime/twovlan.pcap", "arkime/mpls-basic.pcap", "arkime/vxlan.pcap", "arkime/gtp-iphone.pcap",
	"arkime/http-empty-useragent.pcap", "arkime/sctp-www.pcap", "arkime/mqtt_synthetic.pcap",
	"libtrace/qinq.pcap", "libtrace/mpls.pcap", "libtrace/vxlan.pcap", "libtrace/10_mpls_ip.pcap", "libtrace/vlan.pcap",
	"tcpdump/LINKTYPE_IPV4.pcap", "tcpdump/LINKTYPE_IPV6.pcap", "tcpdump/LINKTYPE_RAW_ipv4.pcap",
	"tcpdump/LINKTYPE_RAW_ipv6.pcap", "tcpdump/ppp_ip_udp_dns.pcap", "tcpdump/pppoe.pcap",
	"tcpdump/erspan-type-i-1.pcap", "tcpdump/erspan-type-ii-1.pcap", "tcpdump/erspan-type-iii-ft-0.pcap",
	"tcpdump/vxlan.pcap", "tcpdump/vxlan_port_8472.pcap", "tcpdump/various_gre.pcap",
	"tcpdump/bigtcp-ipv6-hbh.pcap", "tcpdump/gso-ipv6.pcap",
	"zeek/tunnels__4in4.pcap", "zeek/tunnels__4in6.pcap", "zeek/tunnels__6in4.pcap",
	"zeek/tunnels__6in6-tunnel-change.pcap", "zeek/tunnels__6in6.pcap", "zeek/tunnels__6in6in6.pcap",
	"zeek/tunnels__Teredo.pcap", "zeek/tunnels__gre-erspan3-dot1q.pcap", "zeek/tunnels__gre-pptp.pcap",
	"zeek/tunnels__gre-sample.pcap", "zeek/tunnels__gre-within-gre.pcap", "zeek/tunnels__gre-aruba.pcap",
	"zeek/tunnels__gtp__gtp1_gn_normal_incl_fragmentation.pcap", "zeek/tunnels__gtp__gtp8_teredo.pcap",
	"zeek/tunnels__ping6-in-ipv4.pcap", "zeek/tunnels__teredo-udp-in-udp.pcap",
	"zeek/tunnels__teredo_bubble_with_payload.pcap", "zeek/tunnels__vxlan-encapsulated-http.pcap",
	"zeek/tunnels__vxlan.pcap", "zeek/ipv4__fragmented-1.pcap", "zeek/ipv4__fragmented-2.pcap",
	"zeek/ipv4__fragmented-3.pcap", "zeek/ipv4__fragmented-4.pcap", "zeek/ipv4__fragmented-syn.pcap",
	"zeek/ipv6-fragmented-dns.pcap", "zeek/ipv6-http-atomic-frag.pcap", "zeek/ipv6-hbh-routing0.pcap",
	"zeek/linux_dlt_sll2.pcap", "zeek/pppoe-over-qinq.pcap", "zeek/q-in-q.pcap", "zeek/vlan-qinqinq.pcap",
	"zeek/mpls-in-vlan.pcap", "zeek/mixed-vlan-mpls.pcap", "zeek/pbb.pcap", "zeek/erspanII.pcap",
	"zeek/erspanIII.pcap", "zeek/ip6_esp.pcap",
	"converted/auckland-legacyatm-sunatm.pcap", "tcpdump/HDLC.pcap", "tcpdump/pppoes.pcap",
	"tcpdump/atm-heapoverflow.pcap", "tcpdump/atm-oam-heapoverflow.pcap", "tcpdump/atm-oam-loopback-print-overrun.pcap",
	"zeek/trunc__mpls-6in6-6in6-4in6-trunc.pcap", "zeek/trunc__ip6-trunc.pcap", "tcpdump/ip6_frag_asan.pcap",
	"tcpdump/ipv6_frag6_negative_len.pcap", "ndpi/1kxun.pcap", "zeek/vntag.pcap", "zeek/cisco-fabric-path.pcap",
	"arkime/nflog.pcap", "tcpdump/nflog.pcap",
	"tcpdump/geneve.pcap", "tcpdump/geneve-gcp.pcap", "zeek/tunnels__geneve.pcap", "zeek/tunnels__geneve-many-options.pcap",
	"tcpdump/wccp_redirect_gre.pcap", "arkime/gre-erspan-vxlan.pcap", "arkime/arkime_synthetic.pcap",
	"tcpdump/nsh-over-vxlan-gpe.pcap",
}

// corpusRejects are captures with frames tshark shows as IP that the
// decoder rightly rejects, and the reason it gives.
var corpusRejects = map[string]Reason{
	// Crafted: IPv6 payload length 0 (so no room for any extension
	// header), yet a fragment header announced and 32 kB on the wire.
	"tcpdump/ipv6_frag6_negative_len.pcap": ReasonBadHeaderLength,
}

// TestCorpusAgainstTshark decodes real captures and compares every
// packet's innermost addresses, protocol and ports with tshark's.
func TestCorpusAgainstTshark(t *testing.T) {
	dir := corpusDir(t)
	total := 0
	files := corpusFiles
	if testing.Short() {
		files = files[:12] // the tunnels of the brief; the full list takes a minute of tshark
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			path := peertest.File(t, filepath.Join(dir, name), "corpus file")
			pkts := readCapture(t, path)
			views := runTshark(t, path)
			if len(views) != len(pkts) {
				t.Fatalf("tshark gave %d frames, we read %d", len(views), len(pkts))
			}
			d := New(nil)
			var p Packet
			bad, rejected := 0, 0
			for i, pk := range pkts {
				err := d.Decode(pk.data, pk.ci, &p)
				var de *Error
				if r, ok := corpusRejects[name]; ok && errors.As(err, &de) && de.Reason == r {
					rejected++
					continue
				}
				snapped := pk.ci.CaptureLength < pk.ci.Length
				if msg := compareView(&p, err, views[i], snapped); msg != "" {
					bad++
					if bad <= 8 {
						t.Errorf("frame %d (%s): %s", i+1, views[i].protocols, msg)
					}
				}
			}
			if _, ok := corpusRejects[name]; ok && rejected == 0 {
				t.Errorf("listed in corpusRejects but no frame was rejected with %v", corpusRejects[name])
			}
			total += len(pkts)
			c := d.Counters()
			t.Logf("%d frames: %d ip, %d non-ip, %d errors; reasons %v", len(pkts), c.Packets, c.NonIP, c.Errors, reasonMap(c))
			if c.Packets+c.NonIP+c.Errors != uint64(len(pkts)) {
				t.Errorf("counters do not add up to %d frames: %+v", len(pkts), c)
			}
		})
	}
	if total == 0 {
		t.Fatal("no packet compared")
	}
}

func reasonMap(c Counters) map[string]uint64 {
	m := map[string]uint64{}
	for r, n := range c.Reasons {
		if n > 0 {
			m[Reason(r).String()] = n
		}
	}
	return m
}

// compareView returns "" when our decode agrees with tshark's view.
func compareView(p *Packet, err error, v tsharkView, snapped bool) string {
	if v.ok && (!v.src.IsValid() || !v.dst.IsValid()) {
		// tshark shows a cut IP header; anything but a panic is fine.
		return ""
	}
	var de *Error
	if snapped && errors.As(err, &de) && de.Reason == ReasonTruncated {
		return ""
	}
	if !v.ok {
		if err == nil {
			return "we decoded " + p.Src.String() + " > " + p.Dst.String() + ", tshark saw no ip"
		}
		return ""
	}
	if err != nil {
		return "tshark saw ip " + v.src.String() + " > " + v.dst.String() + ", we failed: " + err.Error()
	}
	if p.Fragment && !v.hasTransport {
		// A later fragment: tshark (not reassembling) shows the bare IP
		// header; we report the identity of the datagram's first fragment.
		if p.Tunnel == 0 && (p.Src != v.src || p.Dst != v.dst) {
			return "fragment addresses " + p.Src.String() + " > " + p.Dst.String() + ", tshark " + v.src.String() + " > " + v.dst.String()
		}
		return ""
	}
	var msg []string
	var vl [2]uint16
	copy(vl[:], v.vlans)
	if p.VLAN != vl[0] || p.InnerVLAN != vl[1] {
		msg = append(msg, "vlans "+strconv.Itoa(int(p.VLAN))+"/"+strconv.Itoa(int(p.InnerVLAN))+
			", tshark "+strconv.Itoa(int(vl[0]))+"/"+strconv.Itoa(int(vl[1])))
	}
	if v.outerLen > 0 && p.OuterLen != v.outerLen {
		msg = append(msg, "outer length "+strconv.Itoa(p.OuterLen)+", tshark "+strconv.Itoa(v.outerLen))
	}
	switch {
	case v.nIP == 1 && p.Tunnel != 0:
		msg = append(msg, "tunnel "+p.Tunnel.String()+" but tshark saw one ip header")
	case v.nIP > 1 && (p.Tunnel == 0 || p.TunnelSrc != v.outerSrc || p.TunnelDst != v.outerDst):
		msg = append(msg, "tunnel "+p.Tunnel.String()+" "+p.TunnelSrc.String()+" > "+p.TunnelDst.String()+
			", tshark outer "+v.outerSrc.String()+" > "+v.outerDst.String())
	}
	if int(p.IPVersion) != v.ver || p.Src != v.src || p.Dst != v.dst {
		msg = append(msg, "addresses "+p.Src.String()+" > "+p.Dst.String()+", tshark "+v.src.String()+" > "+v.dst.String())
	}
	if v.hasTransport && v.proto != 1 && v.proto != 58 && v.sport == 0 && v.dport == 0 {
		// tshark found the transport header malformed (ports 0); compare
		// the protocol only.
		if p.Proto != v.proto {
			msg = append(msg, "protocol "+strconv.Itoa(int(p.Proto))+", tshark "+strconv.Itoa(int(v.proto)))
		}
	} else if v.hasTransport {
		if p.Proto != v.proto || p.Sport != v.sport || p.Dport != v.dport {
			msg = append(msg, "transport "+strconv.Itoa(int(p.Proto))+" "+strconv.Itoa(int(p.Sport))+" > "+strconv.Itoa(int(p.Dport))+
				", tshark "+strconv.Itoa(int(v.proto))+" "+strconv.Itoa(int(v.sport))+" > "+strconv.Itoa(int(v.dport)))
		}
	} else if p.Sport != 0 || p.Dport != 0 {
		switch p.Proto {
		case 6, 17, 132, 1, 58:
			// tshark stopped before the transport (snapped or unknown);
			// fine if it is truncated.
		default:
			msg = append(msg, "ports on a non-transport protocol "+strconv.Itoa(int(p.Proto)))
		}
	}
	return strings.Join(msg, "; ")
}

// TestCorpusSunATM checks the VPI/VCI from the SunATM pseudo-header of the
// converted Auckland trace (all on VC 10/103).
func TestCorpusSunATM(t *testing.T) {
	path := filepath.Join(corpusDir(t), "converted", "auckland-legacyatm-sunatm.pcap")
	pkts := readCapture(t, path)
	d := New(nil)
	var p Packet
	n := 0
	for _, pk := range pkts {
		if pk.ci.LinkType != drivers.LinkSunATM {
			t.Fatalf("link type %d", pk.ci.LinkType)
		}
		if err := d.Decode(pk.data, pk.ci, &p); err != nil {
			continue
		}
		n++
		if !p.HasVC || p.VPI != 10 || p.VCI != 103 {
			t.Fatalf("vc %v %d/%d, want 10/103", p.HasVC, p.VPI, p.VCI)
		}
	}
	if n < len(pkts)/2 {
		t.Errorf("only %d of %d decoded", n, len(pkts))
	}
}

// TestCorpusAllInvariants decodes every capture of the corpus (including
// the malformed fuzz regressions of tcpdump) and checks the invariants the
// fuzz test checks, and that every frame is counted once.
func TestCorpusAllInvariants(t *testing.T) {
	dir := peertest.Corpus(t, "pcaps")
	var files []string
	err := filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && (strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var total Counters
	frames := 0
	for _, path := range files {
		pkts, err := loadCapture(path)
		if err != nil {
			continue // not a capture pcapgo reads (fuzz regressions of file readers)
		}
		d := New(nil)
		var p Packet
		for _, pk := range pkts {
			err := d.Decode(pk.data, pk.ci, &p)
			checkInvariants(t, pk.data, &p, err)
		}
		c := d.Counters()
		if c.Packets+c.NonIP+c.Errors != uint64(len(pkts)) {
			t.Errorf("%s: counters %+v for %d frames", path, c, len(pkts))
		}
		total.Packets += c.Packets
		total.NonIP += c.NonIP
		total.Errors += c.Errors
		for i := range c.Reasons {
			total.Reasons[i] += c.Reasons[i]
		}
		frames += len(pkts)
	}
	if frames < 10000 {
		t.Fatalf("only %d frames in the corpus", frames)
	}
	t.Logf("%d files, %d frames: %d ip, %d non-ip, %d errors; %v", len(files), frames, total.Packets, total.NonIP, total.Errors, reasonMap(total))
}

// TestCorpusTunnelledFragments checks that later fragments of fragmented
// GTP-U packets join the inner flow of their first fragment.
func TestCorpusTunnelledFragments(t *testing.T) {
	path := filepath.Join(corpusDir(t), "zeek", "tunnels__gtp__gtp1_gn_normal_incl_fragmentation.pcap")
	pkts := readCapture(t, path)
	type identity struct {
		src, dst     netip.Addr
		sport, dport uint16
		proto        uint8
	}
	firsts := map[uint16]identity{}
	d := New(nil)
	var p Packet
	later := 0
	for i, pk := range pkts {
		if err := d.Decode(pk.data, pk.ci, &p); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		b := pk.data
		if len(b) < 34 || be16(b[12:]) != etIPv4 {
			continue
		}
		id, ff := be16(b[18:]), be16(b[20:])
		got := identity{p.Src, p.Dst, p.Sport, p.Dport, p.Proto}
		switch {
		case ff&0x2000 != 0 && ff&0x1fff == 0:
			if p.Tunnel != flow.TunnelGTPU || p.Proto != protoTCP {
				t.Fatalf("frame %d: first fragment not decapsulated: %+v", i+1, p)
			}
			firsts[id] = got
		case ff&0x1fff != 0:
			later++
			want, ok := firsts[id]
			if !ok {
				t.Fatalf("frame %d: later fragment before its first", i+1)
			}
			if got != want || p.Tunnel != flow.TunnelGTPU || !p.Fragment {
				t.Errorf("frame %d: later fragment %+v, want the inner flow %+v", i+1, got, want)
			}
		}
	}
	if later == 0 {
		t.Fatal("no later fragment in the capture")
	}
	if n := d.Counters().Reasons[ReasonFragmentWithoutFirst]; n != 0 {
		t.Errorf("%d fragments without first", n)
	}
}
