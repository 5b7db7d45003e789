package synth

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/tools/peertest"
)

// needTool returns the path of a peer program, skipping the test when it
// is absent (failing under MIRA_REQUIRE_PEERS=1).
func needTool(t *testing.T, name string) string {
	t.Helper()
	return peertest.Program(t, name)
}

// testConfigs are the traces checked against tshark: the sample, a
// stress mix (mostly IPv6, tunnelled, tagged, every marker straddling,
// every DNS answer fragmented) and a small trace shaped like Large.
func testConfigs() map[string]Config {
	stress := Default()
	stress.Seed = 9
	stress.Flows = 80
	stress.IPv6Share, stress.TunnelShare, stress.VLANShare = 0.5, 0.6, 0.5
	stress.StraddleShare, stress.FragmentShare = 1, 1
	stress.LongFlows = 0
	large := Large()
	large.Flows = 1200
	large.LongFlows = 2
	real := Realistic()
	real.Flows = 1200
	real.LongFlows = 2
	return map[string]Config{"default": Default(), "stress": stress, "large-shape": large, "realistic": real}
}

// writeTrace writes the trace of cfg to a temporary pcap.
func writeTrace(t *testing.T, cfg Config) (string, *Truth) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trace.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := WritePcap(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, tr
}

// TestTsharkExpert decodes every packet with checksum validation on: no
// malformed packet (except eMule hellos, which tshark 4.0 misreads), no
// bad checksum, no TCP analysis finding, and the only warnings are the
// planted resets.
func TestTsharkExpert(t *testing.T) {
	tshark := needTool(t, "tshark")
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) { tsharkExpert(t, tshark, cfg) })
	}
}

func tsharkExpert(t *testing.T, tshark string, cfg Config) {
	path, tr := writeTrace(t, cfg)
	sums := []string{"ip", "tcp", "udp", "icmp", "icmpv6"}
	args := []string{"-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|",
		"-e", "frame.number", "-e", "_ws.expert.message", "-e", "vxlan.vni", "-e", "_ws.expert.severity", "-e", "edonkey.message.type"}
	for _, p := range sums {
		args = append(args, "-e", p+".checksum.status")
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	resets, ed2kHellos := 0, 0
	verified := map[string]int{}
	for line := range strings.Lines(string(out)) {
		c := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(c) != 5+len(sums) {
			t.Fatalf("tshark line %q", line)
		}
		num := c[0]
		if c[1] != "" {
			// Severity: 0x200000 chat, 0x400000 note, 0x600000 warn, 0x800000 error.
			sev := strings.Split(c[3], "|")
			for i, m := range strings.Split(c[1], "|") {
				switch {
				case i < len(sev) && sev[i] != "" && atoi(t, sev[i]) < 0x600000:
				case m == "Connection reset (RST)":
					resets++
				case m == "Malformed Packet (Exception occurred)" && c[4] == "0x01":
					// tshark 4.0 reads an eMule hello without its hash
					// size byte (eMule protocol specification 0.50a §6.2.1).
					ed2kHellos++
				default:
					t.Errorf("frame %s: tshark expert info %q", num, m)
				}
			}
		}
		for i, p := range sums {
			st := strings.Split(c[5+i], "|")
			if p == "udp" && c[2] != "" {
				st = st[1:] // RFC 7348: the outer VXLAN datagram carries no checksum
			}
			for _, v := range st {
				switch v {
				case "":
				case "1":
					verified[p]++
				default:
					t.Errorf("frame %s: %s checksum status %s (0 bad, 2 unverified)", num, p, v)
				}
			}
		}
	}
	// No retransmission, loss, duplicate ACK, window or keep-alive finding.
	an, err := exec.Command(tshark, "-r", path, "-Y", "tcp.analysis.flags", "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	for line := range strings.Lines(string(an)) {
		t.Errorf("tcp analysis: frame %s", strings.TrimSpace(line))
	}
	rstSessions := 0
	for _, f := range tr.Flows {
		if f.End == "rst" && f.Initiator {
			rstSessions++
		}
	}
	if resets != rstSessions || resets == 0 {
		t.Errorf("tshark saw %d resets, truth has %d reset sessions", resets, rstSessions)
	}
	hellos := 0
	for _, f := range tr.Flows {
		if f.App == "edonkey" && f.Initiator {
			hellos++
		}
	}
	if ed2kHellos > hellos {
		t.Errorf("%d malformed eDonkey hellos, %d sessions", ed2kHellos, hellos)
	}
	for _, p := range sums[:4] {
		if verified[p] == 0 {
			t.Errorf("no %s checksum verified", p)
		}
	}
}

type tkey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	vlan         uint16
}

type tflow struct {
	packets, octets uint64
	inner           uint64
	flags           int
	first, last     int64
	counts          map[string]int
	straddles       int
	stream          []byte // TCP payload in order
	bounds          []int  // segment boundaries in stream
	nxtseq, maxAck  int    // highest relative next sequence sent and acknowledgement
	protos          map[string]bool
}

// dissected names the protocol tshark must find in a session of each
// application (in either direction).
var dissected = map[string]string{
	"smtp": "smtp", "http": "http", "mp3-over-http": "http", "video-over-http": "mp4", "exe-over-http": "http",
	"ftp-control": "ftp", "ftp-data": "ftp-data", "dns": "dns", "tls": "tls", "ssh": "ssh",
	"bittorrent": "bittorrent", "bittorrent-dht": "bt-dht", "edonkey": "edonkey", "gnutella": "gnutella",
	"game-udp": "quake3", "irc": "irc", "icmp-echo": "icmp", "random": "",
}

// plain are the protocols a random-payload frame may show.
var plain = map[string]bool{"eth": true, "ethertype": true, "vlan": true, "ip": true, "ipv6": true,
	"tcp": true, "udp": true, "data": true, "gre": true, "vxlan": true}

func field(cols []string, i int, last bool) string {
	v := cols[i]
	if v == "" {
		return ""
	}
	parts := strings.Split(v, ",")
	if last {
		return parts[len(parts)-1]
	}
	return parts[0]
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	if s == "" {
		return 0
	}
	base := 10
	if strings.HasPrefix(s, "0x") {
		s, base = s[2:], 16
	}
	v, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		t.Fatalf("tshark field %q: %v", s, err)
	}
	return int(v)
}

// countMarkers counts every marker in b by symptom.
func countMarkers(c map[string]int, b []byte) {
	for _, m := range Markers() {
		if n := bytes.Count(b, []byte(m.Text)); n > 0 {
			c[m.Symptom] += n
		}
	}
}

// TestTruthAgainstTshark groups tshark's view of the Default trace by
// innermost 5-tuple and VLAN and compares packets, octets, first and last
// with the truth, then counts the markers in each flow's payload
// independently and compares them with the planted counts.
func TestTruthAgainstTshark(t *testing.T) {
	tshark := needTool(t, "tshark")
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) { truthAgainstTshark(t, tshark, cfg) })
	}
}

func truthAgainstTshark(t *testing.T, tshark string, cfg Config) {
	path, tr := writeTrace(t, cfg)
	fields := []string{"frame.time_epoch", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.len", "ipv6.plen",
		"ip.proto", "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "vlan.id",
		"icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code", "ip.id", "tcp.payload", "udp.payload", "tcp.nxtseq", "tcp.ack", "tcp.flags"}
	args := []string{"-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "separator=/t"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	idx := map[string]int{}
	for i, f := range fields {
		idx[f] = i
	}
	flows := map[tkey]*tflow{}
	type fragKey struct {
		src, dst netip.Addr
		id       int
	}
	type pending struct {
		key           tkey // ports unknown
		t             int64
		octets, inner int
		fragKey       fragKey
	}
	var pend []pending
	ports := map[fragKey][2]uint16{}
	var protos []string // of the current frame
	var innerLen int    // of the current frame
	add := func(k tkey, ts int64, octets int) *tflow {
		f := flows[k]
		if f == nil {
			f = &tflow{first: ts, counts: map[string]int{}, protos: map[string]bool{}}
			flows[k] = f
		}
		f.packets++
		f.octets += uint64(octets)
		f.inner += uint64(innerLen)
		f.last = ts
		for _, p := range protos {
			f.protos[p] = true
		}
		return f
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	frames := 0
	for sc.Scan() {
		frames++
		c := strings.Split(sc.Text(), "\t")
		if len(c) != len(fields) {
			t.Fatalf("tshark line with %d fields: %q", len(c), sc.Text())
		}
		get := func(f string, last bool) string { return field(c, idx[f], last) }
		secs, frac, _ := strings.Cut(get("frame.time_epoch", false), ".")
		frac = (frac + "000000000")[:9]
		ts := int64(atoi(t, secs))*1e9 + int64(atoi(t, strings.TrimLeft(frac, "0")))
		protos = strings.Split(get("frame.protocols", false), ":")
		first, inner := "", ""
		for _, p := range protos {
			if p == "ip" || p == "ipv6" {
				if first == "" {
					first = p
				}
				inner = p
			}
		}
		var octets int
		if first == "ip" {
			octets = atoi(t, get("ip.len", false))
		} else {
			octets = atoi(t, get("ipv6.plen", false)) + ipv6Hdr
		}
		if inner == "ip" {
			innerLen = atoi(t, get("ip.len", true))
		} else {
			innerLen = atoi(t, get("ipv6.plen", true)) + ipv6Hdr
		}
		var k tkey
		if inner == "ip" {
			k.src = netip.MustParseAddr(get("ip.src", true))
			k.dst = netip.MustParseAddr(get("ip.dst", true))
			k.proto = uint8(atoi(t, get("ip.proto", true)))
		} else {
			k.src = netip.MustParseAddr(get("ipv6.src", true))
			k.dst = netip.MustParseAddr(get("ipv6.dst", true))
			k.proto = uint8(atoi(t, get("ipv6.nxt", true)))
		}
		k.vlan = uint16(atoi(t, get("vlan.id", false)))
		switch k.proto {
		case 6:
			k.sport, k.dport = uint16(atoi(t, get("tcp.srcport", true))), uint16(atoi(t, get("tcp.dstport", true)))
			f := add(k, ts, octets)
			f.nxtseq = max(f.nxtseq, atoi(t, get("tcp.nxtseq", true)))
			f.flags |= atoi(t, get("tcp.flags", true))
			f.maxAck = max(f.maxAck, atoi(t, get("tcp.ack", true)))
			if p := get("tcp.payload", true); p != "" {
				b, err := hex.DecodeString(p)
				if err != nil {
					t.Fatal(err)
				}
				if len(f.stream) > 0 {
					f.bounds = append(f.bounds, len(f.stream))
				}
				f.stream = append(f.stream, b...)
			}
		case 17:
			fk := fragKey{k.src, k.dst, atoi(t, get("ip.id", true))}
			if get("udp.srcport", true) == "" {
				pend = append(pend, pending{k, ts, octets, innerLen, fk})
				continue
			}
			k.sport, k.dport = uint16(atoi(t, get("udp.srcport", true))), uint16(atoi(t, get("udp.dstport", true)))
			ports[fk] = [2]uint16{k.sport, k.dport}
			f := add(k, ts, octets)
			b, err := hex.DecodeString(get("udp.payload", true))
			if err != nil {
				t.Fatal(err)
			}
			countMarkers(f.counts, b)
		case 1:
			k.dport = uint16(atoi(t, get("icmp.type", false))<<8 | atoi(t, get("icmp.code", false)))
			add(k, ts, octets)
		case 58:
			k.dport = uint16(atoi(t, get("icmpv6.type", false))<<8 | atoi(t, get("icmpv6.code", false)))
			add(k, ts, octets)
		default:
			t.Errorf("frame %d: unexpected protocol %d", frames, k.proto)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if uint64(frames) != tr.Packets {
		t.Fatalf("tshark read %d frames, truth has %d packets", frames, tr.Packets)
	}
	// Fragments without ports belong to the datagram reassembled later.
	for _, p := range pend {
		pp, ok := ports[p.fragKey]
		if !ok {
			t.Errorf("fragment of %v never reassembled", p.fragKey)
			continue
		}
		k := p.key
		k.sport, k.dport = pp[0], pp[1]
		f := flows[k]
		if f == nil {
			t.Errorf("fragment of unknown flow %+v", k)
			continue
		}
		f.packets++
		f.octets += uint64(p.octets)
		f.inner += uint64(p.inner)
		f.first = min(f.first, p.t)
		f.last = max(f.last, p.t)
	}
	for _, f := range flows {
		if f.stream == nil {
			continue
		}
		countMarkers(f.counts, f.stream)
		for _, m := range Markers() {
			for off := 0; ; {
				i := bytes.Index(f.stream[off:], []byte(m.Text))
				if i < 0 {
					break
				}
				s, e := off+i, off+i+len(m.Text)
				for _, b := range f.bounds {
					if b > s && b < e {
						f.straddles++
					}
				}
				off = e
			}
		}
	}

	// Each session is dissected as its protocol; random payload as data.
	sessionProtos := map[int]map[string]bool{}
	for _, tf := range tr.Flows {
		f := flows[tkey{tf.Src, tf.Dst, tf.Sport, tf.Dport, tf.Proto, tf.VLAN}]
		if f == nil {
			continue
		}
		if sessionProtos[tf.Session] == nil {
			sessionProtos[tf.Session] = map[string]bool{}
		}
		for p := range f.protos {
			sessionProtos[tf.Session][p] = true
		}
	}
	for _, tf := range tr.Flows {
		if !tf.Initiator {
			continue
		}
		want, ok := dissected[tf.App]
		if !ok {
			t.Errorf("no expected dissection for application %q", tf.App)
			continue
		}
		got := sessionProtos[tf.Session]
		if tf.Proto == 58 {
			want = "icmpv6"
		}
		if want == "ftp-data" && !got[want] && splitControl(tr, tf) {
			// tshark's FTP dissector does not reassemble a PASV or
			// PORT reply split over two segments, so it cannot tie
			// the data connection to it.
			continue
		}
		if want != "" && !got[want] {
			t.Errorf("session %d (%s): tshark dissected %v, no %s", tf.Session, tf.App, sortedKeys(got), want)
		}
		if want == "" {
			for p := range got {
				if !plain[p] {
					t.Errorf("session %d (random): tshark dissected %s", tf.Session, p)
				}
			}
		}
	}

	seen := map[tkey]bool{}
	var random, straddled, symptoms int
	for _, tf := range tr.Flows {
		k := tkey{tf.Src, tf.Dst, tf.Sport, tf.Dport, tf.Proto, tf.VLAN}
		name := fmt.Sprintf("%s %v:%d>%v:%d/%d vlan %d", tf.App, tf.Src, tf.Sport, tf.Dst, tf.Dport, tf.Proto, tf.VLAN)
		if seen[k] {
			t.Errorf("%s: two truth flows with one key", name)
		}
		seen[k] = true
		f := flows[k]
		if f == nil {
			t.Errorf("%s: not seen by tshark", name)
			continue
		}
		if f.packets != tf.Packets || f.octets != tf.Octets || f.inner != tf.InnerOctets || f.flags != int(tf.TCPFlags) {
			t.Errorf("%s: tshark %d packets %d octets %d inner flags %#x, truth %d packets %d octets %d inner flags %#x",
				name, f.packets, f.octets, f.inner, f.flags, tf.Packets, tf.Octets, tf.InnerOctets, tf.TCPFlags)
		}
		if f.first != tf.First.UnixNano() || f.last != tf.Last.UnixNano() {
			t.Errorf("%s: tshark first %d last %d, truth %d %d", name, f.first, f.last, tf.First.UnixNano(), tf.Last.UnixNano())
		}
		want := tf.Symptoms
		if want == nil {
			want = map[string]int{}
		}
		if fmt.Sprint(f.counts) != fmt.Sprint(want) {
			t.Errorf("%s: markers found %v, planted %v", name, f.counts, want)
		}
		if tf.End == "fin" {
			r := flows[tkey{k.dst, k.src, k.dport, k.sport, k.proto, k.vlan}]
			if r == nil {
				t.Errorf("%s: no reverse flow", name)
			} else if r.maxAck != f.nxtseq {
				t.Errorf("%s: sent up to relative sequence %d (FIN included), peer acknowledged %d", name, f.nxtseq, r.maxAck)
			}
		}
		if f.straddles != tf.Straddles {
			t.Errorf("%s: %d markers straddle segments, truth says %d", name, f.straddles, tf.Straddles)
		}
		if tf.App == "random" && f.octets > 0 {
			random++
		}
		straddled += tf.Straddles
		for _, n := range tf.Symptoms {
			symptoms += n
		}
	}
	for k := range flows {
		if !seen[k] {
			t.Errorf("tshark flow %+v missing from truth", k)
		}
	}
	if random == 0 || straddled == 0 || symptoms == 0 {
		t.Errorf("trace lacks random flows (%d), straddling markers (%d) or symptoms (%d)", random, straddled, symptoms)
	}
}

// TestDefaultCoverage checks that the sample exercises every feature the
// meter must handle.
func TestDefaultCoverage(t *testing.T) {
	var pw countWriter
	tr, err := Generate(Default(), &pw)
	if err != nil {
		t.Fatal(err)
	}
	if pw.packets < 2000 || pw.packets > 20000 {
		t.Errorf("default trace has %d packets, want a few thousand", pw.packets)
	}
	have := map[string]int{}
	for _, f := range tr.Flows {
		have["app "+f.App]++
		have["symptom "+strings.Join(sortedKeys(f.Symptoms), ",")] += 0
		for s := range f.Symptoms {
			have["symptom "+s]++
		}
		if f.Tunnel != "" {
			have["tunnel "+f.Tunnel]++
		}
		if f.Src.Is6() {
			have["ipv6"]++
		}
		if f.VLAN != 0 {
			have["vlan"]++
		}
		if f.Fragments > 0 {
			have["fragments"]++
		}
		if f.Straddles > 0 {
			have["straddle"]++
		}
		if f.End != "" {
			have["end "+f.End]++
		}
		if f.Last.Sub(f.First) > 60*time.Second {
			have["long"]++
		}
	}
	for _, want := range []string{"app smtp", "app http", "app mp3-over-http", "app video-over-http", "app exe-over-http",
		"app ftp-control", "app ftp-data", "app dns", "app tls", "app ssh", "app bittorrent", "app bittorrent-dht",
		"app edonkey", "app gnutella", "app game-udp", "app irc", "app icmp-echo", "app random",
		"symptom MAIL", "symptom WEB", "symptom FTP", "symptom P2P", "symptom MP3", "symptom VIDEO", "symptom GAMES",
		"symptom CHAT", "symptom TLS", "symptom SSH", "symptom DNS", "symptom EXECUTABLE",
		"tunnel 6in4", "tunnel ipip", "tunnel gre", "tunnel vxlan", "ipv6", "vlan", "fragments", "straddle",
		"end fin", "end rst", "long"} {
		if have[want] == 0 {
			t.Errorf("default trace has no %s", want)
		}
	}
	if n := len(tr.ByKey()); n != len(tr.Flows) {
		t.Errorf("%d flows share %d keys", len(tr.Flows), n)
	}
	var packets, octets uint64
	for _, f := range tr.Flows {
		packets += f.Packets
		octets += f.Octets
		if f.Packets == 0 {
			t.Errorf("flow %+v has no packets", f)
		}
	}
	if packets != tr.Packets || packets != pw.packets || octets != tr.Octets {
		t.Errorf("flows sum to %d packets %d octets; trace %d/%d; written %d", packets, octets, tr.Packets, tr.Octets, pw.packets)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

// splitControl says whether an FTP control connection between the hosts
// of the data flow d has a marker split over two segments.
func splitControl(tr *Truth, d TruthFlow) bool {
	for _, f := range tr.Flows {
		if f.App == "ftp-control" && f.Straddles > 0 && (f.Src == d.Src || f.Src == d.Dst) && (f.Dst == d.Src || f.Dst == d.Dst) {
			return true
		}
	}
	return false
}

type countWriter struct {
	packets uint64
	bytes   uint64
	last    int64
	err     error
}

func (w *countWriter) WritePacket(ci drivers.CaptureInfo, data []byte) error {
	if ci.Timestamp < w.last && w.err == nil {
		w.err = fmt.Errorf("packet %d at %d before %d", w.packets, ci.Timestamp, w.last)
	}
	if (len(data) < minFrameLen || ci.Length != len(data)) && w.err == nil {
		w.err = fmt.Errorf("packet %d: %d bytes, length %d", w.packets, len(data), ci.Length)
	}
	w.last = ci.Timestamp
	w.packets++
	w.bytes += uint64(len(data))
	return nil
}

// decodeWriter counts the generated frames by transport payload length as
// the probe's decoder reads them.
type decodeWriter struct {
	d     *decode.Decoder
	p     decode.Packet
	sizes PayloadSizes
	err   error
}

func (w *decodeWriter) WritePacket(ci drivers.CaptureInfo, data []byte) error {
	if err := w.d.Decode(data, ci, &w.p); err != nil && w.err == nil {
		w.err = fmt.Errorf("frame %d: %w", w.sizes.Empty+w.sizes.Small+w.sizes.Medium+w.sizes.Large, err)
	}
	w.sizes.Add(w.p.PayloadLen)
	return nil
}

// TestPayloadSizes checks the truth's payload classes against the frames
// decoded, and that the realistic mix has the reference trace's shape
// (issue 13: 38 % of packets empty, 30 % 1-100 B, 22 % >= 1400 B) at a
// tenth of its sessions.
func TestPayloadSizes(t *testing.T) {
	cfg := Realistic()
	cfg.Flows /= 10
	cfg.LongFlows /= 10
	w := &decodeWriter{d: decode.New(&decode.Config{})}
	tr, err := Generate(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.sizes != tr.Payloads {
		t.Fatalf("decoded payload classes %+v, truth %+v", w.sizes, tr.Payloads)
	}
	t.Logf("%d packets, %d octets: %v", tr.Packets, tr.Octets, tr.Payloads)
	share := func(n uint64) float64 { return 100 * float64(n) / float64(tr.Packets) }
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"empty", share(tr.Payloads.Empty), 38}, {"1-100 B", share(tr.Payloads.Small), 30}, {">= 1400 B", share(tr.Payloads.Large), 22}} {
		if c.got < c.want-3 || c.got > c.want+3 {
			t.Errorf("%s: %.1f %% of packets, want %v +- 3", c.name, c.got, c.want)
		}
	}
	// Most bytes are TLS, as on today's links.
	var tls, all uint64
	for _, f := range tr.Flows {
		all += f.Octets
		if f.App == "tls" {
			tls += f.Octets
		}
	}
	if tls*2 < all {
		t.Errorf("TLS carries %d of %d octets, want most", tls, all)
	}
	if _, err := Default().WithPayloadMix("bulk"); err == nil {
		t.Error("unknown payload mix accepted")
	}
}

func TestDeterminism(t *testing.T) {
	gen := func(seed int64) ([]byte, []byte) {
		cfg := Default()
		cfg.Seed = seed
		var pc, js bytes.Buffer
		tr, err := WritePcap(cfg, &pc)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		return pc.Bytes(), js.Bytes()
	}
	a, aj := gen(42)
	b, bj := gen(42)
	if !bytes.Equal(a, b) || !bytes.Equal(aj, bj) {
		t.Fatal("same seed gave different traces")
	}
	c, _ := gen(43)
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same trace")
	}
}

func TestOrderAndConfig(t *testing.T) {
	var w countWriter
	if _, err := Generate(Default(), &w); err != nil {
		t.Fatal(err)
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	for _, bad := range []Config{
		{Flows: -1},
		{Mix: []Share{{"telnet", 1}}},
		{Tunnels: []string{"gtp"}},
		{IPv6Share: 1.5},
		{VLANs: []uint16{5000}},
		{LongFlows: -1},
		{Clients: 70000},
	} {
		if _, err := Generate(bad, &w); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

// TestMarkersAbsentFromFiller checks the word lists and fixed texts plant
// no marker by accident.
func TestMarkersAbsentFromFiller(t *testing.T) {
	all := strings.Join(words, " ") + strings.Join(firstNames, " ") + strings.Join(domains, " ") +
		strings.Join(sites, " ") + strings.Join(songs, " ") + strings.Join(clips, " ") + strings.Join(programs, " ")
	var title []string
	for w := range strings.FieldsSeq(all) {
		title = append(title, strings.ToUpper(w[:1])+w[1:])
	}
	all += " " + strings.Join(title, " ")
	for _, m := range Markers() {
		if strings.Contains(all, m.Text) {
			t.Errorf("marker %q occurs in the word lists", m.Text)
		}
	}
}

func TestFrameNoAllocs(t *testing.T) {
	g := &generator{cfg: Default(), truth: &Truth{}, b: newBuilder(), used: map[sessionKey]struct{}{}}
	g.cfg, _ = g.cfg.withDefaults()
	g.apps, g.cum = []string{"tls"}, []float64{1}
	g.plan(5, g.cfg.Start.UnixNano())
	s := g.heap[0].s
	var data *pkt
	for i := range s.pkts {
		if s.pkts[i].n > 1000 {
			data = &s.pkts[i]
		}
	}
	if data == nil {
		t.Fatal("no data segment planned")
	}
	if n := testing.AllocsPerRun(100, func() { g.b.frame(s, data) }); n != 0 {
		t.Errorf("frame allocates %v times per packet", n)
	}
}

func BenchmarkGenerateDefault(b *testing.B) {
	b.ReportAllocs()
	var w countWriter
	for b.Loop() {
		if _, err := Generate(Default(), &w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.packets), "ns/packet")
}

func FuzzGenerate(f *testing.F) {
	f.Add(int64(1), uint8(10), uint8(20), uint8(50))
	f.Add(int64(-7), uint8(3), uint8(255), uint8(0))
	f.Fuzz(func(t *testing.T, seed int64, flows, v6, tun uint8) {
		cfg := Default()
		cfg.Seed = seed
		cfg.Flows = 1 + int(flows%16)
		cfg.LongFlows = 0
		cfg.IPv6Share = float64(v6) / 255
		cfg.TunnelShare = float64(tun) / 255
		var w countWriter
		tr, err := Generate(cfg, &w)
		if err != nil {
			t.Fatal(err)
		}
		if w.err != nil {
			t.Fatal(w.err)
		}
		var n uint64
		for _, fl := range tr.Flows {
			n += fl.Packets
		}
		if n != w.packets || tr.Packets != w.packets {
			t.Fatalf("flows sum to %d packets, %d written", n, w.packets)
		}
	})
}

// BenchmarkGenerateLarge generates the benchmark trace once per iteration
// (about 3.7 M packets); run it with -benchtime 1x.
func BenchmarkGenerateLarge(b *testing.B) {
	b.ReportAllocs()
	var w countWriter
	for b.Loop() {
		if _, err := Generate(Large(), &w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.packets), "ns/packet")
	b.ReportMetric(float64(w.packets)/float64(b.N), "packets/op")
}
