package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
)

//go:embed static
var static embed.FS

// Config configures Handler.
type Config struct {
	// Store is the collector's store (for /api/probes).
	Store *store.Store
	// Before runs before each /api/probes request (the collector commits
	// what it received).
	Before func()
	// Acquire, when set, gives each request its store instead of Store
	// (a cluster's merged snapshot); release is called when the request
	// is answered.
	Acquire func(ctx context.Context) (st *store.Store, release func(), err error)
}

// AcquireStore returns the store a request reads and its release:
// acquire's when set (a snapshot held while the request runs), else st
// with nothing to release.
func AcquireStore(ctx context.Context, st *store.Store, acquire func(context.Context) (*store.Store, func(), error)) (*store.Store, func(), error) {
	if acquire == nil {
		return st, func() {}, nil
	}
	return acquire(ctx)
}

// Handler serves the UI's files at / and /api/probes. Mount it at "/"
// beside the /api/ handler of collector/server.
func Handler(cfg Config) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServer(http.FS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("/api/probes", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		if cfg.Before != nil {
			cfg.Before()
		}
		var sel report.Selection
		sel.From, sel.To = r.URL.Query().Get("from"), r.URL.Query().Get("to")
		sel.Format, sel.Order, sel.Domain, sel.Port = "json", report.OrderTime, -1, -1
		if err := sel.Check(); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		st, release, err := AcquireStore(r.Context(), cfg.Store, cfg.Acquire)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		defer release()
		ps, err := Probes(r.Context(), st, sel.Query)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ps)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self' blob:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
	return mux
}

// readOnly refuses every method but GET and HEAD.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	httpError(w, http.StatusMethodNotAllowed, "method not allowed: the web UI and API are read-only")
	return false
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Probe is one probe's (exporter and observation domain's) health as the
// store shows it.
type Probe struct {
	// Probe is "exporter/domain" as in the report's origins.
	Probe    string `json:"probe"`
	Exporter string `json:"exporter"`
	Domain   uint32 `json:"domain"`
	// Records, Packets and Octets are its stored records in the range
	// and their counters (unscaled); First and Last the earliest record
	// start and the latest record end.
	Records uint64            `json:"records"`
	Packets uint64            `json:"packets"`
	Octets  uint64            `json:"octets"`
	First   *report.Timestamp `json:"first,omitempty"`
	Last    *report.Timestamp `json:"last,omitempty"`
	// Sampling is the latest sampling announcement (absent: none
	// announced) and SamplingChanges how many the store kept: a
	// self-regulating probe announces each change of its selection.
	Sampling        *store.Announcement `json:"sampling,omitempty"`
	SamplingChanges int                 `json:"sampling_changes"`
	// Spool sequences of a spooling exporter (exactly-once delivery):
	// per exporter instance, the numbers stored and the gaps between
	// the first and last stored (not yet delivered, or lost).
	Spool []SpoolSeq `json:"spool,omitempty"`
}

// SpoolSeq summarises one spool instance's stored sequence numbers.
type SpoolSeq struct {
	Instance uint64 `json:"instance"`
	Stored   uint64 `json:"stored"`
	Missing  uint64 `json:"missing"`
	Ranges   int    `json:"ranges"`
}

// Probes lists the store's probes with the records q selects.
func Probes(ctx context.Context, st *store.Store, q store.Query) ([]Probe, error) {
	m := map[store.Origin]*Probe{}
	get := func(o store.Origin) *Probe {
		p := m[o]
		if p == nil {
			e := o.Exporter
			if e == "" {
				e = "-"
			}
			p = &Probe{Probe: e + "/" + itoa(uint64(o.Domain)), Exporter: o.Exporter, Domain: o.Domain}
			m[o] = p
		}
		return p
	}
	n := 0
	err := st.Flows(q, func(f store.StoredFlow) error {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p := get(f.Origin)
		p.Records++
		p.Packets += f.Record.Packets
		p.Octets += f.Record.Octets
		first, last := report.Timestamp(f.Record.First), report.Timestamp(f.Record.Last)
		if p.First == nil || first < *p.First {
			p.First = &first
		}
		if p.Last == nil || last > *p.Last {
			p.Last = &last
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	anns, err := st.Announcements()
	if err != nil {
		return nil, err
	}
	for o, as := range anns {
		if len(as) == 0 {
			continue
		}
		p := get(o)
		a := as[len(as)-1]
		p.Sampling, p.SamplingChanges = &a, len(as)
	}
	seqs, err := st.SeqSets()
	if err != nil {
		return nil, err
	}
	for so, set := range seqs {
		p := get(so.Origin)
		s := SpoolSeq{Instance: so.Instance}
		rs := set.Ranges()
		s.Ranges = len(rs)
		for i, r := range rs {
			s.Stored += uint64(r[1]-r[0]) + 1
			if i > 0 {
				s.Missing += uint64(r[0] - rs[i-1][1] - 1)
			}
		}
		p.Spool = append(p.Spool, s)
	}
	out := make([]Probe, 0, len(m))
	for _, p := range m {
		slices.SortFunc(p.Spool, func(a, b SpoolSeq) int { return cmpU64(a.Instance, b.Instance) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Probe) int { return strings.Compare(a.Probe, b.Probe) })
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// Access are the credentials Protect requires: a bearer token, or a
// user and password (HTTP basic authentication); nothing when both are
// empty.
type Access struct {
	Token          string
	User, Password string
}

// tokenCookie keeps a browser's token after it was given as ?token=.
const tokenCookie = "mira_token"

// Protect requires a's credentials on every request to h: the token as
// "Authorization: Bearer T", as ?token=T (the browser then keeps it in a
// cookie and is sent to the URL without it) or in that cookie; or the
// user and password by basic authentication. Without credentials
// configured it returns h.
func Protect(h http.Handler, a Access) http.Handler {
	if a.Token == "" && a.User == "" && a.Password == "" {
		return h
	}
	eq := func(got, want string) bool {
		g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
		return subtle.ConstantTimeCompare(g[:], w[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Token != "" {
			if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(t, a.Token) {
				h.ServeHTTP(w, r)
				return
			}
			if c, err := r.Cookie(tokenCookie); err == nil && eq(c.Value, a.Token) {
				h.ServeHTTP(w, r)
				return
			}
			if q := r.URL.Query(); q.Has("token") && eq(q.Get("token"), a.Token) {
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: a.Token, Path: "/", HttpOnly: true,
					SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((30 * 24 * time.Hour).Seconds())})
				q.Del("token")
				u := *r.URL
				u.RawQuery = q.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
		}
		if a.User != "" || a.Password != "" {
			if u, p, ok := r.BasicAuth(); ok && eq(u, a.User) && eq(p, a.Password) {
				h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="mira-collector", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mira-collector"`)
		}
		httpError(w, http.StatusUnauthorized, "authentication required")
	})
}
