package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProtect checks the token (header, ?token= then cookie) and basic
// authentication, and that nothing passes without them.
func TestProtect(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) })
	get := func(h http.Handler, target string, set func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if set != nil {
			set(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := get(Protect(ok, Access{}), "/", nil); w.Code != 200 {
		t.Errorf("no credentials configured: %d", w.Code)
	}
	tok := Protect(ok, Access{Token: "s3cret"})
	for name, set := range map[string]func(*http.Request){
		"none":         nil,
		"wrong bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") },
		"wrong cookie": func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tokenCookie, Value: "s3cre"}) },
		"basic":        func(r *http.Request) { r.SetBasicAuth("s3cret", "s3cret") },
	} {
		if w := get(tok, "/api/report", set); w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "data") {
			t.Errorf("token, %s: %d %q, want 401", name, w.Code, w.Body.String())
		}
	}
	if w := get(tok, "/api/report", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }); w.Code != 200 {
		t.Errorf("bearer token: %d", w.Code)
	}
	// ?token= sets the cookie and sends the browser to the URL without it.
	w := get(tok, "/?view=usage&token=s3cret", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/?view=usage" {
		t.Fatalf("?token=: %d to %q", w.Code, w.Header().Get("Location"))
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != tokenCookie || !c[0].HttpOnly {
		t.Fatalf("?token= cookie: %v", c)
	}
	if w := get(tok, "/?view=usage", func(r *http.Request) { r.AddCookie(c[0]) }); w.Code != 200 {
		t.Errorf("token cookie: %d", w.Code)
	}
	if w := get(tok, "/?token=wrong", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("wrong ?token=: %d", w.Code)
	}

	basic := Protect(ok, Access{User: "ops", Password: "pw"})
	if w := get(basic, "/", nil); w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
		t.Errorf("basic, none: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := get(basic, "/", func(r *http.Request) { r.SetBasicAuth("ops", "wrong") }); w.Code != http.StatusUnauthorized {
		t.Errorf("basic, wrong password: %d", w.Code)
	}
	if w := get(basic, "/", func(r *http.Request) { r.SetBasicAuth("ops", "pw") }); w.Code != 200 {
		t.Errorf("basic: %d", w.Code)
	}
}

// TestHandler checks the embedded files are served (no network needed:
// the chart library is in the binary) and writes are refused.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(Config{}))
	defer srv.Close()
	for path, want := range map[string]string{
		"/":                         `data-view="overview"`,
		"/app.js":                   "/api/report",
		"/vendor/uPlot.iife.min.js": "uPlot",
		"/vendor/uPlot.min.css":     ".uplot",
		"/?view=usage&category=Web": "app.js",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("GET %s: %d, want %q in the body", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", resp.StatusCode)
	}
	// The page loads nothing from elsewhere.
	r, _ := http.Get(srv.URL + "/")
	var b strings.Builder
	io.Copy(&b, r.Body)
	r.Body.Close()
	if strings.Contains(b.String(), "http://") || strings.Contains(b.String(), "https://") {
		t.Error("index.html refers to another site")
	}
}
