package workload

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Kind of a benchmark pattern.
type Kind string

// Pattern kinds, as in the pattern file.
const (
	Lit    Kind = "lit"    // case-sensitive literal
	NoCase Kind = "nocase" // case-insensitive literal
	Hex    Kind = "hex"    // binary literal
	BOL    Kind = "bol"    // literal at the start of a line
)

// Pattern is one benchmark pattern.
type Pattern struct {
	Kind  Kind
	Bytes []byte
}

var keywords = []struct {
	k Kind
	s string
}{
	{BOL, "GET "}, {BOL, "POST "}, {Lit, "HTTP/1.1 "}, {BOL, "Host: "}, {NoCase, "user-agent:"},
	{NoCase, "content-type:"}, {NoCase, "content-length:"}, {Lit, "Accept-Encoding"}, {Lit, "Connection: keep-alive"},
	{Lit, "Set-Cookie: "}, {BOL, "EHLO "}, {BOL, "HELO "}, {NoCase, "mail from:"}, {NoCase, "rcpt to:"},
	{BOL, "DATA\r\n"}, {Lit, "250 OK"}, {Lit, "220 "}, {Lit, "354 "}, {NoCase, "subject:"},
	{Lit, "Message-ID:"}, {BOL, "USER "}, {BOL, "PASS "}, {Lit, "RETR "}, {Lit, "STOR "},
	{Lit, "PASV"}, {Lit, "227 Entering"}, {Lit, "\x13BitTorrent protocol"}, {Lit, "d1:ad2:id20:"},
	{Lit, "info_hash="}, {Lit, "SSH-2.0-"}, {Hex, "\x16\x03\x01"}, {Hex, "\x16\x03\x03"},
	{Lit, "#EXTM3U"}, {Lit, "ftypisom"}, {Hex, "ID3\x04"}, {Lit, "OggS"}, {Lit, "fLaC"},
	{NoCase, "x-forwarded-for:"}, {Lit, "Transfer-Encoding: chunked"}, {Hex, "MZ\x90\x00"},
}

// Patterns returns n patterns: the 40 protocol keywords, then random 6-16
// byte literals (41% plain, 13% case-insensitive, 31% binary, 15% anchored
// at a line start). The first k of Patterns(n) equal Patterns(k).
func Patterns(n int) []Pattern {
	r := rand.New(rand.NewPCG(1, 2))
	var out []Pattern
	for i := 0; i < n; i++ {
		if i < len(keywords) {
			out = append(out, Pattern{keywords[i].k, []byte(keywords[i].s)})
			continue
		}
		l := 6 + r.IntN(11)
		b := make([]byte, l)
		var k Kind
		switch x := r.IntN(100); {
		case x < 41:
			k = Lit
		case x < 54:
			k = NoCase
		case x < 85:
			k = Hex
		default:
			k = BOL
		}
		for j := range b {
			switch k {
			case Hex:
				b[j] = byte(r.IntN(256))
			case NoCase:
				b[j] = byte('a' + r.IntN(26))
				if r.IntN(2) == 0 {
					b[j] -= 'a' - 'A'
				}
			default:
				b[j] = alnum[r.IntN(len(alnum))]
			}
		}
		out = append(out, Pattern{k, b})
	}
	return out
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"

// Format writes patterns one per line as "kind<TAB>hex".
func Format(ps []Pattern) []byte {
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&b, "%s\t%s\n", p.Kind, hex.EncodeToString(p.Bytes))
	}
	return b.Bytes()
}

// ParseFile reads the format written by Format.
func ParseFile(data []byte) ([]Pattern, error) {
	var out []Pattern
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, h, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("pattern file: line %d: no tab", i+1)
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("pattern file: line %d: bad hex", i+1)
		}
		switch Kind(k) {
		case Lit, NoCase, Hex, BOL:
		default:
			return nil, fmt.Errorf("pattern file: line %d: unknown kind %q", i+1, k)
		}
		out = append(out, Pattern{Kind(k), b})
	}
	return out, nil
}

// YAML renders the patterns as a symptom database: pattern i belongs to
// symptom S(i mod 8).
func YAML(ps []Pattern) []byte {
	var b bytes.Buffer
	b.WriteString("symptoms:\n")
	for s := 0; s < 8; s++ {
		fmt.Fprintf(&b, "  - name: S%d\n    description: benchmark\n    patterns:\n", s)
		for i := s; i < len(ps); i += 8 {
			p := ps[i]
			fmt.Fprintf(&b, "      - hex: \"%s\"\n", hex.EncodeToString(p.Bytes))
			switch p.Kind {
			case NoCase:
				b.WriteString("        nocase: true\n")
			case BOL:
				b.WriteString("        anchor: line\n")
			}
		}
	}
	return b.Bytes()
}

var words = strings.Fields(`the of and to in is was that for on with as by at from this are be or
an which have has not but it were they their one all would there been more when will also other into
some time only new these may than its first two after over most such where between through network
traffic flow packet measurement content symptom probe collector usage category`)

// Corpus returns size bytes of packet-sized records (64-1500 bytes):
// about 75% random bytes, 15% HTTP, 5% SMTP and 5% text; one record in 20
// carries a planted pattern.
func Corpus(size int, ps []Pattern) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([]byte, 0, size+2048)
	for len(out) < size {
		l := 64 + r.IntN(1437)
		var rec []byte
		switch x := r.IntN(100); {
		case x < 75:
			rec = make([]byte, l)
			for i := 0; i < l; i += 8 {
				v := r.Uint64()
				for j := 0; j < 8 && i+j < l; j++ {
					rec[i+j] = byte(v >> (8 * j))
				}
			}
		case x < 90:
			rec = textRecord(r, l, httpLines)
		case x < 95:
			rec = textRecord(r, l, smtpLines)
		default:
			rec = textRecord(r, l, nil)
		}
		if r.IntN(20) == 0 && len(ps) > 0 {
			p := ps[r.IntN(len(ps))]
			pos := r.IntN(len(rec))
			if p.Kind == BOL {
				rec = append(rec[:pos:pos], '\n')
			} else {
				rec = rec[:pos:pos]
			}
			rec = append(rec, p.Bytes...)
		}
		out = append(out, rec...)
	}
	return out[:size]
}

var httpLines = []string{"GET /index.html HTTP/1.1", "Host: www.example.com", "User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
	"Accept: text/html,application/xhtml+xml", "Accept-Encoding: gzip, deflate", "Connection: keep-alive",
	"HTTP/1.1 200 OK", "Content-Type: text/html; charset=utf-8", "Content-Length: 5123", "Cache-Control: max-age=0",
	"Set-Cookie: id=a3fWa; Expires=Wed, 21 Oct 2015 07:28:00 GMT"}
var smtpLines = []string{"EHLO mail.example.org", "250-mail.example.com Hello", "MAIL FROM:<alice@example.org>",
	"RCPT TO:<bob@example.com>", "DATA", "354 End data with <CR><LF>.<CR><LF>", "Subject: measurement report",
	"From: Alice <alice@example.org>", "250 OK: queued as 12345", "QUIT", "221 Bye"}

func textRecord(r *rand.Rand, l int, lines []string) []byte {
	var b []byte
	for len(b) < l {
		if lines != nil && r.IntN(3) != 0 {
			b = append(b, lines[r.IntN(len(lines))]...)
			b = append(b, '\r', '\n')
			continue
		}
		for k := 0; k < 8; k++ {
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, ' ')
		}
		b = append(b, '\n')
	}
	return b[:l]
}
