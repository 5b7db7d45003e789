package symptom

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mira-project/mira/tools/peertest"
)

// corpusDir returns the pcaps folder of the captures shipped in
// testdata/corpus.
func corpusDir(t *testing.T) string {
	t.Helper()
	return peertest.CorpusFile(t, "pcaps")
}

type dirKey struct {
	src, dst     string
	sport, dport uint16
	proto        uint8
}

type dirState struct {
	st     State
	next   uint32 // next expected TCP sequence number
	seen   bool
	offset uint64
}

// scanCapture feeds every flow direction of a capture through db the way
// the probe does: TCP payload in sequence order (retransmissions skipped, a
// gap resets the state), each UDP datagram as its own message. It returns
// the counts per symptom summed over all flows.
func scanCapture(t *testing.T, db *DB, path string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	type reader interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var r reader
	var lt layers.LinkType
	if bytes.Equal(magic[:], []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		r, lt = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r, lt = pr, pr.LinkType()
	}
	dirs := map[dirKey]*dirState{}
	total := map[string]uint64{}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkt := gopacket.NewPacket(data, lt, gopacket.Default)
		var k dirKey
		var payload []byte
		var tcp *layers.TCP
		for _, l := range pkt.Layers() {
			switch v := l.(type) {
			case *layers.IPv4:
				k.src, k.dst = v.SrcIP.String(), v.DstIP.String()
			case *layers.IPv6:
				k.src, k.dst = v.SrcIP.String(), v.DstIP.String()
			case *layers.TCP:
				k.sport, k.dport, k.proto = uint16(v.SrcPort), uint16(v.DstPort), 6
				payload, tcp = v.Payload, v
			case *layers.UDP:
				k.sport, k.dport, k.proto = uint16(v.SrcPort), uint16(v.DstPort), 17
				payload, tcp = v.Payload, nil
			}
		}
		if k.proto == 0 || len(payload) == 0 {
			continue
		}
		d := dirs[k]
		if d == nil {
			d = &dirState{}
			dirs[k] = d
		}
		var c Counts
		if tcp != nil {
			seq := tcp.Seq
			switch {
			case !d.seen:
				d.seen = true
			case int32(seq-d.next) < 0:
				continue // retransmission
			case seq != d.next:
				d.st.Reset() // gap
				d.offset += uint64(seq - d.next)
			}
			db.Scan(&d.st, &c, payload, d.offset)
			d.offset += uint64(len(payload))
			d.next = seq + uint32(len(payload))
		} else {
			var st State
			db.Scan(&st, &c, payload, 0)
		}
		for i := 0; i < c.Len(); i++ {
			id, n := c.At(i)
			total[db.Name(id)] += uint64(n)
		}
	}
	return total
}

// TestDefaultOnCaptures runs the default database over real captures from
// projects that label their protocols (nDPI, Arkime, Zeek) and wants the
// symptom of the labelled protocol to fire.
func TestDefaultOnCaptures(t *testing.T) {
	dir := corpusDir(t)
	db := Default()
	for _, tc := range []struct{ file, symptom string }{
		{"arkime/smtp-data-250.pcap", "MAIL"},
		{"zeek/smtp.pcap", "MAIL"},
		{"arkime/imap.pcap", "MAIL"},
		{"ndpi/pop3_stls.pcap", "MAIL"},
		{"arkime/http-simple-get.pcap", "WEB"},
		{"arkime/v6-http.pcap", "WEB"},
		{"arkime/ftp.pcap", "FTP"},
		{"zeek/ftp__retr.pcap", "FTP"},
		{"arkime/bt-tcp.pcap", "P2P"},
		{"arkime/bt-udp.pcap", "P2P"},
		{"zeek/bittorrent__tracker.pcap", "P2P"},
		{"ndpi/gnutella.pcap", "P2P"},
		{"ndpi/hls.pcapng", "VIDEO"},
		{"ndpi/mpeg-dash.pcap", "VIDEO"},
		{"ndpi/rtsp.pcap", "VIDEO"},
		{"ndpi/source_engine.pcap", "GAMES"},
		{"ndpi/raknet.pcap", "GAMES"},
		{"ndpi/teamspeak3.pcap", "VOIP"},
		{"arkime/irc.pcap", "CHAT"},
		{"ndpi/sip.pcap", "VOIP"},
		{"arkime/openssl-tls1_2.pcap", "TLS"},
		{"arkime/tls13.pcap", "TLS"},
		{"arkime/https-connect.pcap", "TLS"},
		{"arkime/ssh2.pcap", "SSH"},
		{"arkime/dns-udp.pcap", "DNS"},
		{"arkime/dns-tcp.pcap", "DNS"},
		{"ndpi/exe_download.pcap", "EXECUTABLE"},
		{"ndpi/portable_executable.pcap", "EXECUTABLE"},
		{"arkime/http-content-zip.pcap", "ARCHIVE"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("corpus file missing: %v", err)
			}
			got := scanCapture(t, db, path)
			t.Logf("%v", got)
			if got[tc.symptom] == 0 {
				t.Errorf("%s did not fire: %v", tc.symptom, got)
			}
		})
	}
}
