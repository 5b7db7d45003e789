package symptom

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func mpegFrames(n int, hdr uint32, r *rand.Rand) []byte {
	l, _ := mpegFrame(binary.BigEndian.AppendUint32(nil, hdr), 0)
	var out []byte
	for i := 0; i < n; i++ {
		f := make([]byte, l)
		binary.BigEndian.PutUint32(f, hdr)
		for j := 4; j < l; j++ {
			f[j] = byte(r.IntN(256))
		}
		out = append(out, f...)
	}
	return out
}

func tsPackets(n int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		p := make([]byte, 188)
		p[0], p[1], p[2], p[3] = 0x47, 0x40, 0x11, 0x10
		out = append(out, p...)
	}
	return out
}

func httpResp(ctype string, body []byte) []byte {
	h := "HTTP/1.1 200 OK\r\nContent-Type: " + ctype + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	return append([]byte(h), body...)
}

// defaultCases has, for every symptom of the default database, payloads of
// one flow direction on which it must fire (synthesised after the
// protocols' specifications and the captures in ../shared/corpus).
func defaultCases() map[string][][]byte {
	r := rand.New(rand.NewPCG(7, 8))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	elf := append([]byte{0x7F, 'E', 'L', 'F', 2, 1, 1, 0}, noise(56)...)
	pe := append([]byte("MZ\x90\x00"), make([]byte, 60)...)
	pe = append(pe, []byte("\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$")...)
	pe = append(pe, []byte("PE\x00\x00\x64\x86")...)
	cases := map[string][][]byte{
		"MAIL": {
			[]byte("220 mail.example.org ESMTP Postfix\r\n250-mail.example.org\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"),
			[]byte("EHLO client.example.com\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"),
			[]byte("+OK POP3 server ready\r\n+OK 2 messages\r\n"),
			[]byte("* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.\r\n"),
		},
		"WEB": {
			[]byte("GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n"),
			[]byte("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>"),
			[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
		},
		"FTP": {
			[]byte("220 (vsFTPd 3.0.3)\r\n331 Please specify the password.\r\n230 Login successful.\r\n215 UNIX Type: L8\r\n227 Entering Passive Mode (90,130,70,73,99,86).\r\n150 Opening BINARY mode data connection\r\n226 Transfer complete.\r\n"),
			[]byte("USER anonymous\r\nPASS guest\r\nSYST\r\nTYPE I\r\nPASV\r\nRETR file.bin\r\n"),
		},
		"P2P": {
			append([]byte("\x13BitTorrent protocol\x00\x00\x00\x00\x00\x10\x00\x05"), noise(40)...),
			[]byte("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"),
			[]byte("GET /announce?info_hash=%12%34&peer_id=-TR2940-abcdefghijkl&port=51413 HTTP/1.1\r\n"),
			append([]byte{0xE3, 0x4F, 0, 0, 0, 0x01, 0x10}, noise(80)...),
			[]byte("GNUTELLA CONNECT/0.6\r\nUser-Agent: LimeWire/4.12\r\nX-Ultrapeer: False\r\n\r\n"),
		},
		"MP3": {
			mpegFrames(4, 0xFFFB9064, r), // MPEG-1 layer III 128 kbit/s 44.1 kHz
			mpegFrames(4, 0xFFF3A8C4, r), // MPEG-2 layer III 160 kbit/s 22.05 kHz
			append([]byte("ID3\x04\x00\x00\x00\x00\x1f\x76"), noise(100)...),
			httpResp("audio/mpeg", mpegFrames(3, 0xFFFB9264, r)),
		},
		"AUDIO": {
			append([]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x12\x34\x56\x78\x00\x00\x00\x00\xaa\xbb\xcc\xdd\x01\x1e\x01vorbis\x00\x00\x00\x00"), noise(40)...),
			append([]byte("fLaC\x00\x00\x00\x22"), noise(34)...),
			append([]byte("RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00"), noise(40)...),
			[]byte("ICY 200 OK\r\nicy-metaint: 16000\r\nContent-Type: audio/aacp\r\n\r\n"),
		},
		"VIDEO": {
			append([]byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41\x00\x00\x00\x08free"), noise(64)...),
			append([]byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04"), noise(32)...),
			append([]byte("RIFF\x00\x10\x00\x00AVI LIST"), noise(32)...),
			[]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x12"),
			[]byte("\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8\x00\x00\x01\xbb"),
			tsPackets(7),
			[]byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:9.009,\nseg1.ts\n"),
			[]byte("<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\">"),
			[]byte("DESCRIBE rtsp://example.com/media.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
		},
		"GAMES": {
			[]byte("\xff\xff\xff\xffTSource Engine Query\x00"),
			[]byte("\xff\xff\xff\xffgetstatus\n"),
			append([]byte("\x01\x00\x00\x00\x00\x00\x01\x02\x03\x00\xff\xff\x00\xfe\xfe\xfe\xfe\xfd\xfd\xfd\xfd\x12\x34\x56\x78"), noise(8)...),
		},
		"CHAT": {
			[]byte("<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' version='1.0'>"),
			[]byte("NICK mira\r\nUSER mira 0 * :MIRA\r\nJOIN #measurement\r\nPRIVMSG #measurement :hello\r\n"),
			[]byte("GET /_matrix/client/v3/sync HTTP/1.1\r\n"),
		},
		"VOIP": {
			[]byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com\r\n"),
			[]byte("SIP/2.0 200 OK\r\n"),
		},
		"TLS": {
			append([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), noise(64)...),
			append([]byte("\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03"), noise(64)...),
			append([]byte("220 2.0.0 Ready to start TLS\r\n\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"), noise(64)...),
		},
		"SSH": {
			[]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
			[]byte("SSH-1.99-Cisco-1.25\r\n"),
		},
		"DNS": {
			[]byte("\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"),
			[]byte("\xab\xcd\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"),
			[]byte("\x00\x1d\xab\xcd\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x07example\x03com\x00\x00\x01\x00\x01"),
		},
		"EXECUTABLE": {
			httpResp("application/x-msdownload", pe),
			elf,
			append([]byte("\xcf\xfa\xed\xfe\x0c\x00\x00\x01\x00\x00\x00\x00"), noise(20)...),
		},
		"ARCHIVE": {
			append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), noise(30)...),
			append([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"), noise(30)...),
			append([]byte("Rar!\x1a\x07\x01\x00"), noise(30)...),
			append([]byte("7z\xbc\xaf\x27\x1c\x00\x04"), noise(30)...),
		},
	}
	for k, v := range protoCases(noise) {
		cases[k] = v
	}
	for k, v := range protoExtra(noise) {
		cases[k] = append(cases[k], v...)
	}
	return cases
}

func scanAll(db *DB, payload []byte, packet int) *Counts {
	var st State
	c := new(Counts)
	for off := 0; off < len(payload); off += packet {
		end := min(off+packet, len(payload))
		db.Scan(&st, c, payload[off:end], uint64(off))
	}
	return c
}

func TestDefaultSymptomsFire(t *testing.T) {
	db := Default()
	cases := defaultCases()
	for _, s := range db.Symptoms() {
		payloads, ok := cases[s.Name]
		if !ok || len(payloads) == 0 {
			t.Errorf("symptom %s has no test case", s.Name)
			continue
		}
		for i, p := range payloads {
			c := scanAll(db, p, 1460)
			if c.Get(s.ID) == 0 {
				t.Errorf("%s case %d: did not fire; counts %v", s.Name, i, countsMap(c))
			}
		}
	}
}

// TestDefaultRandomSilent scans random bytes in 1460-byte packets, both as
// one long flow and as one flow per packet, and wants fewer than one
// occurrence per 100 MB. MIRA_RANDOM_MB sets the amount (default 64;
// the acceptance figure is 1024).
func TestDefaultRandomSilent(t *testing.T) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("MIRA_RANDOM_MB")); err == nil && v > 0 {
		mb = v
	}
	if testing.Short() {
		mb = 8
	}
	db := Default()
	r := rand.New(rand.NewPCG(11, 12))
	buf := make([]byte, 1460*256)
	var long State
	var cLong, cFlows Counts
	var off uint64
	total := 0
	for total < mb<<20 {
		for i := 0; i < len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
		}
		for p := 0; p < len(buf); p += 1460 {
			pkt := buf[p : p+1460]
			db.Scan(&long, &cLong, pkt, off)
			off += 1460
			var st State
			db.Scan(&st, &cFlows, pkt, 0)
		}
		total += len(buf)
	}
	limit := uint64(total / 100e6) // < 1 per 100 MB
	for name, c := range map[string]*Counts{"one flow": &cLong, "flow per packet": &cFlows} {
		t.Logf("%s: %d MB random, %d occurrences %v", name, total>>20, c.Total(), countsMap(c))
		if c.Total() > limit {
			t.Errorf("%s: %d occurrences in %d MB of random data (limit %d): %v", name, c.Total(), total>>20, limit, countsMap(c))
		}
	}
}

func TestDefaultYAMLParses(t *testing.T) {
	if _, err := Parse("default.yaml", DefaultYAML()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(DefaultYAML(), []byte("name: MP3")) {
		t.Fatal("default database lacks MP3")
	}
}
