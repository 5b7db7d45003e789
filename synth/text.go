package synth

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Word lists for text bodies. They hold no marker text, which the
// generator tests check.
var (
	words = strings.Fields(`the of and to in is for on that with as by this at from are be was report
		meeting project budget network traffic quarter team review schedule please find attached
		regards thanks update office campus students course library research results data service
		request week monday friday morning afternoon notes agenda minutes draft final version plan
		lunch coffee room building floor access account password reset support ticket issue fixed`)
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"}
	domains    = []string{"example.org", "example.net", "example.com", "campus.example.edu"}
	sites      = []string{"www", "news", "shop", "static", "cdn", "api", "media", "mail", "portal", "wiki"}
	songs      = []string{"summer_breeze", "night_drive", "blue_horizon", "city_lights", "echoes", "paper_moon"}
	clips      = []string{"holiday", "lecture_week3", "trailer", "match_highlights", "cat_video"}
	programs   = []string{"setup", "installer", "update", "player_setup", "driver"}
	alnum      = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

func pick(r *rand.Rand, l []string) string { return l[r.IntN(len(l))] }

func host(r *rand.Rand) string { return pick(r, sites) + "." + pick(r, domains) }

func itoa(i int) string { return strconv.Itoa(i) }

// sentence returns n random words ending in a full stop.
func sentence(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		w := pick(r, words)
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	b.WriteByte('.')
	return b.String()
}

// text returns about n bytes of lines of prose, CRLF separated.
func text(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(sentence(r, 6+r.IntN(10)))
		b.WriteString("\r\n")
	}
	return b.String()
}

// token returns n random letters and digits.
func token(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	randomFill(b, r.Uint64(), 0)
	return b
}

func httpDate(t int64) string {
	return time.Unix(0, t).UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
}

// ms returns a random duration between lo and hi milliseconds.
func ms(r *rand.Rand, lo, hi float64) int64 {
	return int64((lo + r.Float64()*(hi-lo)) * float64(msec))
}

// bulk returns a transfer size between lo and hi bytes scaled by the
// configuration's BodyScale, at least 1.
func (g *generator) bulk(r *rand.Rand, lo, hi float64) int {
	return max(1, int((lo+r.Float64()*(hi-lo))*g.cfg.BodyScale))
}
