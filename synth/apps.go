package synth

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
)

func msg() *msgBuilder { return &msgBuilder{} }

func lit(s ...string) message { return msg().s(s...).done() }

// closeTCP ends a conversation with FIN from closer, or (one time in
// twenty) a reset from the client.
func closeTCP(c *conv, r *rand.Rand, closer uint8) {
	if r.IntN(20) == 0 {
		c.close(0, ms(r, 1, 50), true)
		return
	}
	c.close(closer, ms(r, 1, 200), false)
}

func (g *generator) smtp(r *rand.Rand, t int64) {
	s := g.newSession(r, "smtp", "Mail", 6, 25, sessOpts{})
	c := g.newConv(s, r, t)
	server := "mail." + pick(r, domains)
	client := "host" + itoa(r.IntN(900)+100) + "." + pick(r, domains)
	c.send(1, lit("220 ", server, " ESMTP Postfix (Debian/GNU)\r\n"), ms(r, 1, 30))
	c.send(0, msg().mark(mkEHLO).s(client, "\r\n").done(), ms(r, 1, 10))
	c.send(1, lit("250-", server, "\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n"), ms(r, 1, 5))
	for range 1 + r.IntN(2) {
		from := pick(r, firstNames) + "@" + pick(r, domains)
		c.send(0, msg().mark(mkMailFrom).s("<", from, ">\r\n").done(), ms(r, 1, 10))
		c.send(1, lit("250 2.1.0 Ok\r\n"), ms(r, 1, 5))
		var to []string
		for range 1 + r.IntN(3) {
			rcpt := pick(r, firstNames) + "@" + pick(r, domains)
			to = append(to, rcpt)
			c.send(0, msg().mark(mkRcptTo).s("<", rcpt, ">\r\n").done(), ms(r, 1, 5))
			c.send(1, lit("250 2.1.5 Ok\r\n"), ms(r, 1, 5))
		}
		c.send(0, lit("DATA\r\n"), ms(r, 1, 5))
		c.send(1, lit("354 End data with <CR><LF>.<CR><LF>\r\n"), ms(r, 1, 5))
		body := "From: <" + from + ">\r\nTo: <" + to[0] + ">\r\nSubject: " + sentence(r, 4) + "\r\nDate: " +
			httpDate(t) + "\r\nMessage-ID: <" + token(r, 16) + "@" + pick(r, domains) + ">\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text(r, g.bulk(r, 2000, 60000)) + ".\r\n"
		c.send(0, lit(body), ms(r, 1, 5))
		c.send(1, lit("250 2.0.0 Ok: queued as ", token(r, 10), "\r\n"), ms(r, 5, 50))
	}
	c.send(0, lit("QUIT\r\n"), ms(r, 1, 10))
	c.send(1, lit("221 2.0.0 Bye\r\n"), ms(r, 1, 5))
	closeTCP(c, r, 1)
	g.push(s)
}

// httpResponse builds a response head and body.
func httpResponse(t int64, ctype string, body *msgBuilder) message {
	m := msg().mark(mkHTTP).s(" 200 OK\r\nDate: ", httpDate(t), "\r\nServer: nginx/1.22.1\r\nContent-Type: ", ctype,
		"\r\nContent-Length: ", itoa(body.m.size), "\r\nConnection: keep-alive\r\n\r\n")
	body.flush()
	off := m.m.size
	m.flush()
	m.m.pieces = append(m.m.pieces, body.m.pieces...)
	for _, mk := range body.m.marks {
		m.m.marks = append(m.m.marks, mark{mk.id, mk.off + off})
	}
	m.m.size += body.m.size
	return m.m
}

func httpRequest(method, path, h string, extra string) *msgBuilder {
	return msg().s(method, " ", path, " ").mark(mkHTTP).s("\r\nHost: ", h,
		"\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n",
		"Accept: */*\r\nAccept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n", extra,
		"Connection: keep-alive\r\n\r\n")
}

func (g *generator) http(r *rand.Rand, t int64) {
	port := uint16(80)
	if r.IntN(10) == 0 {
		port = 8080
	}
	s := g.newSession(r, "http", "Web", 6, port, sessOpts{})
	c := g.newConv(s, r, t)
	h := host(r)
	for i := range 1 + r.IntN(4) {
		if i > 0 && r.IntN(5) == 0 {
			form := "user=" + pick(r, firstNames) + "&comment=" + token(r, 20+r.IntN(200))
			c.send(0, httpRequest("POST", "/form/submit", h, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "+itoa(len(form))+"\r\n").s(form).done(), ms(r, 100, 2000))
			c.send(1, httpResponse(t, "text/html; charset=utf-8", msg().s("<html><body><p>", sentence(r, 8), "</p></body></html>\n")), ms(r, 5, 80))
			continue
		}
		var path, ctype string
		body := msg()
		switch i {
		case 0:
			path, ctype = "/", "text/html; charset=utf-8"
			body.s("<!DOCTYPE html>\n<html><head><title>", sentence(r, 3), "</title></head><body>\n")
			for range 3 + r.IntN(30) {
				body.s("<p>", sentence(r, 10+r.IntN(20)), "</p>\n")
			}
			body.s("</body></html>\n")
		case 1:
			path, ctype = "/static/site.css", "text/css"
			for range 5 + r.IntN(40) {
				body.s(".c", token(r, 6), " { margin: ", itoa(r.IntN(20)), "px; color: #", fmt.Sprintf("%06x", r.IntN(1<<24)), "; }\n")
			}
		case 2:
			path, ctype = "/img/"+token(r, 8)+".png", "image/png"
			body.bytes(png(r, 500+r.IntN(40000)))
		default:
			path, ctype = "/js/app.js", "application/javascript"
			for range 5 + r.IntN(60) {
				body.s("function f", token(r, 5), "(a, b) { return a + b * ", itoa(r.IntN(100)), "; }\n")
			}
		}
		c.send(0, httpRequest("GET", path, h, "").done(), ms(r, 20, 1500))
		c.send(1, httpResponse(t, ctype, body), ms(r, 5, 80))
	}
	closeTCP(c, r, 0)
	g.push(s)
}

// png returns a PNG image whose IDAT chunk holds n random bytes.
func png(r *rand.Rand, n int) []byte {
	chunk := func(b []byte, typ string, data []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		start := len(b)
		b = append(b, typ...)
		b = append(b, data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
	}
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(16+r.IntN(800)))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(16+r.IntN(600)))
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b = chunk(b, "IHDR", ihdr)
	b = chunk(b, "IDAT", randBytes(r, n))
	return chunk(b, "IEND", nil)
}

// mp3Body is an ID3v2.3 tag and n bytes of MPEG audio frames.
func mp3Body(r *rand.Rand, n int) *msgBuilder {
	title, artist := pick(r, songs), pick(r, firstNames)
	frame := func(id, v string) string {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(len(v)+1))
		return id + string(h[:]) + "\x00\x00\x00" + v
	}
	frames := frame("TIT2", title) + frame("TPE1", artist)
	size := len(frames)
	b := msg().mark(mkID3).s("\x00", string([]byte{byte(size >> 21 & 0x7f), byte(size >> 14 & 0x7f), byte(size >> 7 & 0x7f), byte(size & 0x7f)}), frames)
	return b.fill(fillMP3, n/mp3Frame*mp3Frame+mp3Frame, r.Uint64())
}

func mp4Body(r *rand.Rand, n int) *msgBuilder {
	b := msg().s("\x00\x00\x00\x20").mark(mkFtyp).s("\x00\x00\x02\x00isomiso2avc1mp41", "\x00\x00\x00\x08free")
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(n+8))
	return b.bytes(h[:]).s("mdat").fill(fillRandom, n, r.Uint64())
}

func exeBody(r *rand.Rand, n int) *msgBuilder {
	dos := make([]byte, 0x40)
	copy(dos, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8")
	binary.LittleEndian.PutUint32(dos[0x3c:], 0x80)
	dosCode := "\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
	b := msg().bytes(dos).s(dosCode).mark(mkDOSStub).s(".\r\r\n$")
	pad := 0x80 - b.m.size
	b.bytes(make([]byte, pad))
	coff := make([]byte, 24)
	copy(coff, "PE\x00\x00")
	binary.LittleEndian.PutUint16(coff[4:], 0x8664)
	binary.LittleEndian.PutUint16(coff[6:], 5)
	binary.LittleEndian.PutUint32(coff[8:], r.Uint32())
	binary.LittleEndian.PutUint16(coff[20:], 0xf0)
	binary.LittleEndian.PutUint16(coff[22:], 0x22)
	return b.bytes(coff).fill(fillRandom, n, r.Uint64())
}

func (g *generator) download(r *rand.Rand, t int64, app string) {
	s := g.newSession(r, app, "Leisure", 6, 80, sessOpts{})
	c := g.newConv(s, r, t)
	h := host(r)
	req := msg()
	var body *msgBuilder
	var ctype string
	switch app {
	case "mp3-over-http":
		req.s("GET /music/", pick(r, songs)).mark(mkMP3Name)
		body, ctype = mp3Body(r, g.bulk(r, 2e6, 8e6)), "audio/mpeg"
	case "video-over-http":
		req.s("GET /video/", pick(r, clips)).mark(mkMP4Name)
		body, ctype = mp4Body(r, g.bulk(r, 3e6, 20e6)), "video/mp4"
	default:
		g.truth.Flows[s.truth[0]].Category, g.truth.Flows[s.truth[1]].Category = "Web", "Web"
		req.s("GET /downloads/", pick(r, programs)).mark(mkExeName)
		body, ctype = exeBody(r, g.bulk(r, 5e5, 5e6)), "application/x-msdownload"
	}
	req.s(" ").mark(mkHTTP).s("\r\nHost: ", h, "\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
	c.send(0, req.done(), ms(r, 1, 50))
	c.send(1, httpResponse(t, ctype, body), ms(r, 5, 80))
	closeTCP(c, r, 0)
	g.push(s)
}

func (g *generator) ftp(r *rand.Rand, t int64) {
	s := g.newSession(r, "ftp-control", "FTP", 6, 21, sessOpts{v4only: true, noTunnel: true})
	c := g.newConv(s, r, t)
	c.send(1, lit("220 (vsFTPd 3.0.3)\r\n"), ms(r, 1, 30))
	c.send(0, lit("USER anonymous\r\n"), ms(r, 100, 800))
	c.send(1, lit("331 Please specify the password.\r\n"), ms(r, 1, 5))
	c.send(0, msg().mark(mkFTPPass).s(pick(r, firstNames), "@", pick(r, domains), "\r\n").done(), ms(r, 100, 800))
	c.send(1, lit("230 Login successful.\r\n"), ms(r, 1, 20))
	c.send(0, lit("TYPE I\r\n"), ms(r, 10, 100))
	c.send(1, lit("200 Switching to Binary mode.\r\n"), ms(r, 1, 5))
	active := r.IntN(3) == 0
	var cport, sport uint16
	a4, b4 := s.addr[0].As4(), s.addr[1].As4()
	if active {
		cport = ephemeral(r)
		c.send(0, msg().mark(mkFTPPort).s(fmt.Sprintf("%d,%d,%d,%d,%d,%d\r\n", a4[0], a4[1], a4[2], a4[3], cport>>8, cport&0xff)).done(), ms(r, 10, 100))
		c.send(1, msg().s("200 ").mark(mkFTPPort).s("command successful. Consider using PASV.\r\n").done(), ms(r, 1, 5))
	} else {
		sport = uint16(30000 + r.IntN(20000))
		c.send(0, msg().mark(mkFTPPasv).done(), ms(r, 10, 100))
		c.send(1, msg().mark(mkFTPPasvReply).s(fmt.Sprintf(" (%d,%d,%d,%d,%d,%d).\r\n", b4[0], b4[1], b4[2], b4[3], sport>>8, sport&0xff)).done(), ms(r, 1, 5))
	}
	var name string
	var file *msgBuilder
	size := g.bulk(r, 2e5, 2e7)
	retr := msg().mark(mkFTPRetr)
	if r.IntN(2) == 0 {
		name = pick(r, songs)
		retr.s("pub/music/", name).mark(mkMP3Name)
		name += ".mp3"
		file = mp3Body(r, size)
	} else {
		name = "release-" + itoa(r.IntN(10)) + "." + itoa(r.IntN(20)) + ".tar.gz"
		retr.s("pub/", name)
		file = msg().s("\x1f\x8b\x08\x00").fill(fillRandom, size, r.Uint64())
	}
	tRetr := c.send(0, retr.s("\r\n").done(), ms(r, 10, 300))
	fm := file.done()
	opening := msg().s("150 Opening BINARY mode data connection for ", name)
	if file.m.marks != nil && file.m.marks[0].id == mkID3 {
		opening.lit = opening.lit[:len(opening.lit)-len(".mp3")]
		opening.m.size -= len(".mp3")
		opening.mark(mkMP3Name)
	}
	c.send(1, opening.s(fmt.Sprintf(" (%d bytes).\r\n", fm.size)).done(), ms(r, 1, 5))

	var d *session
	var dc *conv
	if active {
		sub := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
		d = g.dataSession(s, true, cport, 0)
		dc = g.newConv(d, sub, tRetr+s.rtt+ms(r, 1, 5))
		dc.send(0, fm, ms(r, 1, 5))
		dc.close(0, ms(r, 1, 5), false)
	} else {
		sub := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
		d = g.dataSession(s, false, ephemeral(r), sport)
		dc = g.newConv(d, sub, tRetr+ms(r, 1, 5))
		dc.send(1, fm, ms(r, 1, 5))
		dc.close(1, ms(r, 1, 5), false)
	}
	end := d.pkts[len(d.pkts)-1].t
	c.sendAt(1, lit("226 Transfer complete.\r\n"), end+ms(r, 1, 5))
	c.send(0, lit("QUIT\r\n"), ms(r, 50, 500))
	c.send(1, lit("221 Goodbye.\r\n"), ms(r, 1, 5))
	closeTCP(c, r, 1)
	g.push(s)
	g.push(d)
}
