package synth

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"

	"github.com/mira-project/mira/flow"
)

// dnsName encodes a domain name as labels.
func dnsName(name string) string {
	var b strings.Builder
	for _, l := range strings.Split(name, ".") {
		b.WriteByte(byte(len(l)))
		b.WriteString(l)
	}
	b.WriteByte(0)
	return b.String()
}

func u16(v int) string { return string([]byte{byte(v >> 8), byte(v)}) }
func u32(v uint32) string {
	return string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

const ednsOPT = "\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00" // root, OPT, 4096, no flags, no data

func (g *generator) dns(r *rand.Rand, t int64) {
	frag := r.Float64() < g.cfg.FragmentShare
	s := g.newSession(r, "dns", "DNS", 17, 53, sessOpts{v4only: frag, noTunnel: frag})
	if s.v6 || s.tunnel != flow.TunnelNone {
		frag = false
	}
	queries := 1
	if !frag && r.IntN(4) == 0 {
		queries = 2 // A then AAAA
	}
	name := host(r)
	for q := range queries {
		id := u16(r.IntN(65536))
		qtype := [...]int{1, 1, 1, 28, 15, 65}[r.IntN(6)]
		if q == 1 {
			qtype = 28
		}
		edns := r.IntN(2) == 0
		if frag {
			qtype, edns = 16, true
		}
		ar := 0
		if edns {
			ar = 1
		}
		question := dnsName(name) + u16(qtype) + "\x00\x01"
		qm := msg().s(id).mark(mkDNSQuery).s(u16(ar), question)
		if edns {
			qm.s(ednsOPT)
		}
		g.datagram(s, 0, qm.done(), t)
		var answers []string
		switch {
		case frag:
			for range 10 + r.IntN(6) {
				v := token(r, 250)
				answers = append(answers, "\xc0\x0c\x00\x10\x00\x01"+u32(300)+u16(len(v)+1)+string([]byte{byte(len(v))})+v)
			}
		case qtype == 1:
			for range 1 + r.IntN(3) {
				a := serverAddr(r.IntN(g.cfg.Servers)+1, false).As4()
				answers = append(answers, "\xc0\x0c\x00\x01\x00\x01"+u32(uint32(60+r.IntN(3600)))+"\x00\x04"+string(a[:]))
			}
		case qtype == 28:
			a := serverAddr(r.IntN(g.cfg.Servers)+1, true).As16()
			answers = append(answers, "\xc0\x0c\x00\x1c\x00\x01"+u32(uint32(60+r.IntN(3600)))+"\x00\x10"+string(a[:]))
		case qtype == 15:
			mx := dnsName("mx" + itoa(r.IntN(3)+1) + "." + pick(r, domains))
			answers = append(answers, "\xc0\x0c\x00\x0f\x00\x01"+u32(3600)+u16(len(mx)+2)+u16(10)+mx)
		default: // HTTPS: priority 1, target ".", alpn h2
			rd := "\x00\x01\x00" + "\x00\x01\x00\x03\x02h2"
			answers = append(answers, "\xc0\x0c\x00\x41\x00\x01"+u32(300)+u16(len(rd))+rd)
		}
		resp := msg().s(id).mark(mkDNSResponse).s(string([]byte{byte(len(answers))}), "\x00\x00", u16(ar), question, strings.Join(answers, ""))
		if edns {
			resp.s(ednsOPT)
		}
		t += s.rtt + ms(r, 0.1, 20)
		g.datagram(s, 1, resp.done(), t)
		t += ms(r, 0.05, 2)
	}
	sortPkts(s)
	g.push(s)
}

// tlsRecords builds n bytes of application data records (at most 16 KiB
// of ciphertext each).
func tlsRecords(b *msgBuilder, r *rand.Rand, n int) *msgBuilder {
	for n > 0 {
		k := min(n, 16384+17)
		b.s("\x17\x03\x03", u16(k)).fill(fillRandom, k, r.Uint64())
		n -= k
	}
	return b
}

func (g *generator) tls(r *rand.Rand, t int64) {
	s := g.newSession(r, "tls", "Secure", 6, 443, sessOpts{})
	c := g.newConv(s, r, t)
	sni := host(r)
	// ClientHello, padded to 508 bytes of handshake as browsers do.
	exts := "\x00\x00" + u16(len(sni)+5) + u16(len(sni)+3) + "\x00" + u16(len(sni)) + sni +
		"\x00\x0a\x00\x08\x00\x06\x00\x1d\x00\x17\x00\x18" +
		"\x00\x0b\x00\x02\x01\x00" +
		"\x00\x0d\x00\x12\x00\x10\x04\x03\x08\x04\x04\x01\x05\x03\x08\x05\x05\x01\x08\x06\x06\x01" +
		"\x00\x10\x00\x0e\x00\x0c\x02h2\x08http/1.1" +
		"\x00\x2b\x00\x05\x04\x03\x04\x03\x03" +
		"\x00\x2d\x00\x02\x01\x01" +
		"\x00\x33\x00\x26\x00\x24\x00\x1d\x00\x20" + string(randBytes(r, 32))
	pad := 508 - (2 + 32 + 33 + 18 + 2 + 2 + len(exts) + 4)
	exts += "\x00\x15" + u16(pad) + string(make([]byte, pad))
	sid := string(randBytes(r, 32))
	ch := msg().mark(mkClientHello).bytes(randBytes(r, 32)).s("\x20", sid,
		"\x00\x10\x13\x01\x13\x02\x13\x03\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30\xcc\xa9", "\x01\x00", u16(len(exts)), exts)
	c.send(0, ch.done(), ms(r, 0.1, 5))
	sh := msg().mark(mkServerHello).bytes(randBytes(r, 32)).s("\x20", sid, "\x13\x01\x00", "\x00\x2e",
		"\x00\x2b\x00\x02\x03\x04", "\x00\x33\x00\x24\x00\x1d\x00\x20").bytes(randBytes(r, 32)).
		s("\x14\x03\x03\x00\x01\x01")
	c.send(1, tlsRecords(sh, r, 2000+r.IntN(3000)).done(), ms(r, 1, 20))
	c.send(0, tlsRecords(msg().s("\x14\x03\x03\x00\x01\x01"), r, 53).done(), ms(r, 0.5, 5))
	for range 1 + r.IntN(4) {
		c.send(0, tlsRecords(msg(), r, 100+r.IntN(700)).done(), ms(r, 1, 800))
		c.send(1, tlsRecords(msg(), r, g.bulk(r, 2000, 4e5)).done(), ms(r, 5, 100))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

// sshPacket wraps an SSH binary packet payload with length and padding.
func sshPacket(r *rand.Rand, payload string) string {
	pad := 8 - (5+len(payload))%8
	if pad < 4 {
		pad += 8
	}
	return u32(uint32(1+len(payload)+pad)) + string([]byte{byte(pad)}) + payload + string(randBytes(r, pad))
}

func nameList(s string) string { return u32(uint32(len(s))) + s }

func (g *generator) ssh(r *rand.Rand, t int64, long bool) {
	s := g.newSession(r, "ssh", "Secure", 6, 22, sessOpts{})
	c := g.newConv(s, r, t)
	c.send(1, msg().mark(mkSSH).s("OpenSSH_9.2p1 Debian-2+deb12u3\r\n").done(), ms(r, 1, 20))
	c.send(0, msg().mark(mkSSH).s("OpenSSH_9.6\r\n").done(), ms(r, 0.2, 2))
	kexinit := func() string {
		return sshPacket(r, "\x14"+string(randBytes(r, 16))+
			nameList("curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ext-info-c")+
			nameList("ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512")+
			nameList("chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com")+
			nameList("chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com")+
			nameList("umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com")+
			nameList("umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com")+
			nameList("none,zlib@openssh.com")+nameList("none,zlib@openssh.com")+
			nameList("")+nameList("")+"\x00"+u32(0))
	}
	c.send(0, lit(kexinit()), ms(r, 0.2, 2))
	c.send(1, lit(kexinit()), ms(r, 0.2, 2))
	c.send(0, lit(sshPacket(r, "\x1e"+nameList(string(randBytes(r, 32))))), ms(r, 0.2, 2))
	hostKey := nameList("ssh-ed25519") + nameList(string(randBytes(r, 32)))
	sig := nameList("ssh-rsa") + nameList(string(randBytes(r, 256)))
	c.send(1, lit(sshPacket(r, "\x1f"+nameList(hostKey)+nameList(string(randBytes(r, 32)))+nameList(sig)), sshPacket(r, "\x15")), ms(r, 1, 10))
	c.send(0, lit(sshPacket(r, "\x15")), ms(r, 0.2, 2))
	// Encrypted from here on: authentication, then the session.
	enc := func(n int) message { return msg().fill(fillRandom, n, r.Uint64()).done() }
	c.send(0, enc(44), ms(r, 0.2, 2))
	c.send(1, enc(44), ms(r, 1, 5))
	c.send(0, enc(68+r.IntN(400)), ms(r, 0.2, 2))
	c.send(1, enc(28), ms(r, 1, 50))
	end := c.last + ms(r, 2000, 20000)
	if long {
		end = c.last + int64(g.cfg.LongDuration)
	}
	for c.last < end {
		if !long && r.IntN(8) == 0 {
			c.send(1, enc(g.bulk(r, 1000, 2e5)), ms(r, 5, 50)) // command output
		}
		c.send(0, enc(36), ms(r, 80, 1500)) // keystroke
		c.send(1, enc(36+16*r.IntN(3)), ms(r, 0.1, 2))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

func (g *generator) bittorrent(r *rand.Rand, t int64) {
	s := g.newSession(r, "bittorrent", "P2P", 6, uint16(6881+r.IntN(9)), sessOpts{})
	c := g.newConv(s, r, t)
	hash := string(randBytes(r, 20))
	hs := func(client string) message {
		return msg().mark(mkBitTorrent).s("\x00\x00\x00\x00\x00\x10\x00\x05", hash, client, token(r, 12)).done()
	}
	c.send(0, hs("-qB4630-"), ms(r, 0.1, 2))
	c.send(1, hs("-TR4050-"), ms(r, 1, 10))
	pieces := 64 + r.IntN(64)
	bf := make([]byte, pieces/8)
	for i := range bf {
		bf[i] = byte(r.Uint32())
	}
	c.send(1, msg().s(u32(uint32(1+len(bf))), "\x05").bytes(bf).done(), ms(r, 0.1, 2))
	c.send(0, lit("\x00\x00\x00\x01\x02"), ms(r, 1, 20))
	c.send(1, lit("\x00\x00\x00\x01\x01"), ms(r, 1, 20))
	blocks := max(1, g.bulk(r, 4, 400))
	const block = 16384
	for i := 0; i < blocks; i += 4 {
		req := msg()
		n := min(4, blocks-i)
		for k := range n {
			req.s("\x00\x00\x00\x0d\x06", u32(uint32((i+k)/16)), u32(uint32((i+k)%16*block)), u32(block))
		}
		c.send(0, req.done(), ms(r, 0.1, 5))
		resp := msg()
		for k := range n {
			resp.s(u32(9+block), "\x07", u32(uint32((i+k)/16)), u32(uint32((i+k)%16*block))).fill(fillRandom, block, r.Uint64())
		}
		c.send(1, resp.done(), ms(r, 0.5, 10))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

func (g *generator) dht(r *rand.Rand, t int64) {
	s := g.newSession(r, "bittorrent-dht", "P2P", 17, uint16(1024+r.IntN(60000)), sessOpts{})
	self, peer := string(randBytes(r, 20)), string(randBytes(r, 20))
	for range 1 + r.IntN(3) {
		tid := token(r, 2)
		q := msg().mark(mkDHTQuery).s(self, "9:info_hash20:", string(randBytes(r, 20)), "e1:q9:get_peers1:t2:", tid, "1:y1:qe")
		g.datagram(s, 0, q.done(), t)
		t += s.rtt + ms(r, 0.1, 10)
		a := msg().mark(mkDHTReply).s(peer, "5:nodes208:", string(randBytes(r, 208)), "5:token8:", token(r, 8), "e1:t2:", tid, "1:y1:re")
		g.datagram(s, 1, a.done(), t)
		t += ms(r, 100, 3000)
	}
	sortPkts(s)
	g.push(s)
}

// ed2k frames an eDonkey message.
func ed2k(payload string) string {
	var h [5]byte
	h[0] = 0xe3
	binary.LittleEndian.PutUint32(h[1:], uint32(len(payload)))
	return string(h[:]) + payload
}

func le16(v int) string { return string([]byte{byte(v), byte(v >> 8)}) }
func le32(v uint32) string {
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

func (g *generator) edonkey(r *rand.Rand, t int64) {
	s := g.newSession(r, "edonkey", "P2P", 6, 4662, sessOpts{})
	c := g.newConv(s, r, t)
	tags := "\x02\x01\x00\x01\x08\x00mira" + token(r, 4) + "\x03\x01\x00\x11\x3c\x00\x00\x00"
	server := string(randBytes(r, 4)) + le16(4661)
	// eMule's hello carries the hash size (16) before the user hash; the
	// answer does not.
	hello := "\x10" + string(randBytes(r, 16)) + string(randBytes(r, 4)) + le16(4662) + le32(2) + tags + server
	c.send(0, msg().mark(mkEd2kHello).s(hello).done(), ms(r, 0.1, 2))
	answer := string(randBytes(r, 16)) + string(randBytes(r, 4)) + le16(4662) + le32(2) + tags + server
	c.send(1, msg().mark(mkEd2kHelloAnswer).s(answer).done(), ms(r, 1, 10))
	file := string(randBytes(r, 16))
	c.send(0, lit(ed2k("\x58"+file)), ms(r, 1, 50))
	name := pick(r, clips) + ".avi"
	c.send(1, lit(ed2k("\x59"+file+le16(len(name))+name)), ms(r, 1, 10))
	c.send(0, lit(ed2k("\x54"+file)), ms(r, 1, 50))
	c.send(1, lit(ed2k("\x55")), ms(r, 1, 10))
	total := g.bulk(r, 1e5, 4e6)
	const part = 10240
	for off := 0; off < total; off += 3 * part {
		req := "\x47" + file
		var ends [3]int
		for k := range 3 {
			ends[k] = min(off+(k+1)*part, total)
			req += le32(uint32(min(off+k*part, total)))
		}
		for k := range 3 {
			req += le32(uint32(ends[k]))
		}
		c.send(0, lit(ed2k(req)), ms(r, 1, 20))
		resp := msg()
		for k := range 3 {
			a, b := min(off+k*part, total), ends[k]
			if b <= a {
				continue
			}
			var h [5]byte
			h[0] = 0xe3
			binary.LittleEndian.PutUint32(h[1:], uint32(1+16+8+b-a))
			resp.bytes(h[:]).s("\x46", file, le32(uint32(a)), le32(uint32(b))).fill(fillRandom, b-a, r.Uint64())
		}
		c.send(1, resp.done(), ms(r, 1, 20))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

func (g *generator) gnutella(r *rand.Rand, t int64) {
	s := g.newSession(r, "gnutella", "P2P", 6, 6346, sessOpts{})
	c := g.newConv(s, r, t)
	c.send(0, msg().mark(mkGnutella).s(" CONNECT/0.6\r\nUser-Agent: LimeWire/4.18.8\r\nX-Ultrapeer: False\r\nX-Query-Routing: 0.1\r\n\r\n").done(), ms(r, 0.1, 2))
	c.send(1, msg().mark(mkGnutella).s("/0.6 200 OK\r\nUser-Agent: gtk-gnutella/1.2.2\r\nX-Ultrapeer: True\r\n\r\n").done(), ms(r, 1, 10))
	c.send(0, msg().mark(mkGnutella).s("/0.6 200 OK\r\n\r\n").done(), ms(r, 0.2, 5))
	desc := func(typ byte, payload string) string {
		return string(randBytes(r, 16)) + string([]byte{typ, 7, 0}) + le32(uint32(len(payload))) + payload
	}
	for range 2 + r.IntN(6) {
		c.send(0, lit(desc(0x00, "")), ms(r, 100, 3000))
		c.send(1, lit(desc(0x01, le16(6346)+string(randBytes(r, 4))+le32(uint32(r.IntN(500)))+le32(uint32(r.IntN(1<<20))))), ms(r, 1, 20))
		c.send(0, lit(desc(0x80, "\x00\x00"+pick(r, songs)+" "+pick(r, words)+"\x00")), ms(r, 100, 2000))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

func (g *generator) game(r *rand.Rand, t int64, long bool) {
	s := g.newSession(r, "game-udp", "Games", 17, 27960, sessOpts{})
	g.datagram(s, 0, msg().mark(mkGetInfo).s(" xxx\x00").done(), t)
	t += s.rtt + ms(r, 0.1, 2)
	g.datagram(s, 1, msg().mark(mkInfoResponse).s("\n\\sv_maxclients\\16\\clients\\", itoa(r.IntN(16)), "\\gamename\\baseq3\\hostname\\Example Arena\\mapname\\q3dm17\\protocol\\68\x00").done(), t)
	t += ms(r, 20, 200)
	g.datagram(s, 0, msg().mark(mkGetStatus).s("\n\x00").done(), t)
	t += s.rtt + ms(r, 0.1, 2)
	st := msg().mark(mkStatusResponse).s("\n\\sv_hostname\\Example Arena\\g_gametype\\0\\mapname\\q3dm17\n")
	for range r.IntN(6) {
		st.s(itoa(r.IntN(30)), " ", itoa(20+r.IntN(200)), " \"", pick(r, firstNames), "\"\n")
	}
	g.datagram(s, 1, st.s("\x00").done(), t)
	end := t + ms(r, 2000, 8000)
	if long {
		end = t + int64(g.cfg.LongDuration)
	}
	var seq [2]uint32
	step := [2]int64{ms(r, 30, 50), ms(r, 50, 100)}
	if long {
		step = [2]int64{ms(r, 300, 500), ms(r, 400, 700)}
	}
	next := [2]int64{t + ms(r, 50, 300), t + ms(r, 60, 300)}
	for {
		d := uint8(0)
		if next[1] < next[0] {
			d = 1
		}
		if next[d] > end {
			break
		}
		seq[d]++
		m := msg().s(le32(seq[d]))
		if d == 0 {
			m.s(le16(int(s.port[0]))).fill(fillRandom, 34+r.IntN(60), r.Uint64())
		} else {
			m.fill(fillRandom, 40+r.IntN(56), r.Uint64())
		}
		g.datagram(s, d, m.done(), next[d])
		next[d] += step[d]*9/10 + ms(r, 0, float64(step[d])/5e6)
	}
	sortPkts(s)
	g.push(s)
}

func (g *generator) irc(r *rand.Rand, t int64, long bool) {
	s := g.newSession(r, "irc", "Chat", 6, 6667, sessOpts{})
	c := g.newConv(s, r, t)
	nick := pick(r, firstNames) + itoa(r.IntN(100))
	srv := "irc." + pick(r, domains)
	ch := "#" + pick(r, words)
	c.send(0, lit("NICK ", nick, "\r\nUSER ", nick, " 0 * :", nick, "\r\n"), ms(r, 0.1, 2))
	c.send(1, lit(":", srv, " NOTICE * :*** Looking up your hostname...\r\n"), ms(r, 1, 20))
	c.send(1, lit(":", srv, " 001 ", nick, " :Welcome to the Example IRC Network ", nick, "\r\n:", srv, " 376 ", nick, " :End of /MOTD command.\r\n"), ms(r, 50, 500))
	c.send(0, lit("JOIN ", ch, "\r\n"), ms(r, 100, 1000))
	c.send(1, lit(":", nick, "!", nick, "@", host(r), " JOIN ", ch, "\r\n"), ms(r, 1, 20))
	end := c.last + ms(r, 5000, 40000)
	if long {
		end = c.last + int64(g.cfg.LongDuration)
	}
	for c.last < end {
		switch r.IntN(5) {
		case 0:
			c.send(0, msg().mark(mkPrivmsg).s(ch, " :", sentence(r, 3+r.IntN(10)), "\r\n").done(), ms(r, 500, 6000))
		case 1:
			c.send(1, lit("PING :", srv, "\r\n"), ms(r, 500, 6000))
			c.send(0, lit("PONG :", srv, "\r\n"), ms(r, 0.1, 2))
		default:
			who := pick(r, firstNames)
			c.send(1, msg().s(":", who, "!", who, "@", host(r), " ").mark(mkPrivmsg).s(ch, " :", sentence(r, 3+r.IntN(10)), "\r\n").done(), ms(r, 500, 6000))
		}
	}
	c.send(0, lit("QUIT :bye\r\n"), ms(r, 100, 1000))
	closeTCP(c, r, 1)
	g.push(s)
}

func (g *generator) icmp(r *rand.Rand, t int64) {
	s := g.newSession(r, "icmp-echo", "Network", 1, 0, sessOpts{})
	s.port[0] = uint16(r.IntN(65536))
	for i := range 3 + r.IntN(8) {
		var ts [8]byte
		binary.LittleEndian.PutUint64(ts[:], uint64(t/1e9))
		m := msg().bytes(ts[:])
		for b := 0x10; b < 0x38; b++ {
			m.bytes([]byte{byte(b)})
		}
		mi := s.addMsg(m.done())
		s.pkts = append(s.pkts, pkt{t: t, dir: 0, kind: kindICMP, msg: mi, off: int32(i + 1)},
			pkt{t: t + s.rtt, dir: 1, kind: kindICMP, msg: mi, off: int32(i + 1)})
		t += ms(r, 995, 1005)
	}
	sortPkts(s)
	g.push(s)
}

func (g *generator) random(r *rand.Rand, t int64) {
	port := uint16(10000 + r.IntN(20000))
	if r.IntN(10) < 3 {
		s := g.newSession(r, "random", "Unclassified", 17, port, sessOpts{})
		for range 1 + r.IntN(20) {
			g.datagram(s, 0, randomMsg(r, 20+r.IntN(1200)), t)
			t += s.rtt + ms(r, 0.1, 5)
			g.datagram(s, 1, randomMsg(r, 20+r.IntN(1400)), t)
			t += ms(r, 10, 2000)
		}
		sortPkts(s)
		g.push(s)
		return
	}
	s := g.newSession(r, "random", "Unclassified", 6, port, sessOpts{})
	c := g.newConv(s, r, t)
	for range 1 + r.IntN(5) {
		c.send(0, randomMsg(r, 10+r.IntN(2000)), ms(r, 1, 500))
		c.send(1, randomMsg(r, g.bulk(r, 100, 2e5)), ms(r, 1, 50))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

// randomMsg is n random bytes whose first byte is below 0x80: otherwise
// about one datagram in a few thousand looks to tshark's RTP, RTCP or
// Thrift heuristics like the start of their protocol and is reported
// malformed.
func randomMsg(r *rand.Rand, n int) message {
	return msg().bytes([]byte{byte(r.IntN(128))}).fill(fillRandom, n-1, r.Uint64()).done()
}
