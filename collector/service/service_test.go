package service

import (
	"errors"
	"strings"
	"testing"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/yamlnode"
)

func TestLookup(t *testing.T) {
	l, err := Parse("s.yaml", []byte(`version: 1
services:
  Netflix: [netflix.com, nflxvideo.net]
  Google: [google.com, .googleapis.com.]
  YouTube: [youtube.googleapis.com, googlevideo.com]
  Single: example.org
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"netflix.com", "Netflix", true},
		{"www.netflix.com", "Netflix", true},
		{"ipv4-c001-fra001-ix.1.oca.nflxvideo.net", "Netflix", true},
		{"NetFlix.COM.", "Netflix", true},
		{"notnetflix.com", "", false}, // a suffix matches at a label boundary only
		{"netflix.com.evil.org", "", false},
		{"www.googleapis.com", "Google", true},
		{"youtube.googleapis.com", "YouTube", true}, // the longest suffix wins
		{"a.youtube.googleapis.com", "YouTube", true},
		{"rr3---sn-4g5e6nsz.googlevideo.com", "YouTube", true},
		{"example.org", "Single", true},
		{"org", "", false},
		{"", "", false},
		{".", "", false},
	} {
		got, ok := l.Lookup(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if got := l.Services(); strings.Join(got, ",") != "Netflix,Google,YouTube,Single" {
		t.Errorf("Services() = %v", got)
	}
	if l.Len() != 7 {
		t.Errorf("Len() = %d, want 7", l.Len())
	}
}

func TestApp(t *testing.T) {
	l := Default()
	for _, tc := range []struct {
		app  flow.App
		want string
	}{
		{flow.App{ServerName: "www.netflix.com", HTTPHost: "www.google.com"}, "Netflix"}, // the server name first
		{flow.App{HTTPHost: "WWW.YouTube.com:8080"}, "YouTube"},
		{flow.App{HTTPHost: "[2001:db8::1]:80"}, "2001:db8::1"},
		{flow.App{DNSName: "Mail.Example.NET."}, "example.net"},      // not listed: its registered domain
		{flow.App{ServerName: "a.b.example.co.uk"}, "example.co.uk"}, // by the public suffix list
		{flow.App{HTTPHost: "192.0.2.7:8080"}, "192.0.2.7"},          // an address stays whole
		{flow.App{DNSName: "localhost"}, "localhost"},                // no registered domain
		{flow.App{DNSName: "co.uk"}, "co.uk"},                        // a public suffix itself
		{flow.App{ALPN: "h2"}, Unknown},
		{flow.App{}, Unknown},
	} {
		if got := l.App(&tc.app); got != tc.want {
			t.Errorf("App(%+v) = %q, want %q", tc.app, got, tc.want)
		}
	}
	var nilList *List
	if got := nilList.App(&flow.App{ServerName: "r1.googlevideo.com"}); got != "YouTube" {
		t.Errorf("nil list: %q, want YouTube from the default list", got)
	}
}

func TestDefault(t *testing.T) {
	l := Default()
	if len(l.Services()) < 20 {
		t.Errorf("default list has %d services", len(l.Services()))
	}
	// The default list's text parses to the same list.
	m, err := Parse("d.yaml", DefaultYAML())
	if err != nil || m.Len() != l.Len() {
		t.Fatalf("DefaultYAML: %v, %d suffixes, want %d", err, m.Len(), l.Len())
	}
	for _, name := range []string{"nflxvideo.net", "googlevideo.com", "teams.microsoft.com", "fbcdn.net"} {
		if _, ok := l.Lookup(name); !ok {
			t.Errorf("default list lacks %s", name)
		}
	}
	if s, _ := l.Lookup("teams.microsoft.com"); s != "Teams" {
		t.Errorf("teams.microsoft.com: %q, want Teams (longer than microsoft.com)", s)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"", `s.yaml: invalid service list: empty file`},
		{"- a\n", `s.yaml:1: invalid service list: top level is not a mapping`},
		{"version: 2\nservices: {A: a.com}\n", `s.yaml:1: key "version": invalid service list: unsupported version "2"`},
		{"version: 1\nservice: {A: a.com}\n", `s.yaml:2: key "service": invalid service list: unknown key "service"`},
		{"version: 1\n", `s.yaml:1: invalid service list: no services`},
		{"version: 1\nservices:\n  A: [a.com]\n  B: [x.org, A.com.]\n", `s.yaml:4: key "services.B[1]": invalid service list: domain suffix "a.com" given twice (first at line 3, for A)`},
		{"version: 1\nservices:\n  A: [a.com]\n  B: [bad/name.com]\n", `s.yaml:4: key "services.B[0]": invalid service list: service B: domain suffix "bad/name.com": character '/'`},
		{"version: 1\nservices:\n  A: []\n", `s.yaml:3: key "services.A": invalid service list: service A: no domain suffixes`},
		{"version: 1\nservices:\n  A: {x: y}\n", `s.yaml:3: key "services.A": invalid service list: service A: want a list`},
		{"version: 1\nservices:\n  A: [a..com]\n", `s.yaml:3: key "services.A[0]": invalid service list: service A: domain suffix "a..com": empty label`},
		{"version: 1\nservices:\n  unknown: [a.com]\n", `s.yaml:3: key "services.unknown": invalid service list: service name "unknown" is reserved`},
		{"version: 1\nservices:\n  A: [[a.com]]\n", `s.yaml:3: key "services.A[0]": invalid service list: service A: a domain suffix is not a string`},
		{"version: 1\nservices:\n  A: [a.com\n", `s.yaml:2: invalid service list: did not find expected`},
	} {
		_, err := Parse("s.yaml", []byte(tc.src))
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.src, tc.want)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v does not wrap ErrSyntax", tc.src, err)
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s...", tc.src, err, tc.want)
		}
		var ye *yamlnode.Error
		if !errors.As(err, &ye) || ye.File != "s.yaml" {
			t.Errorf("%q: %v is not a *yamlnode.Error naming the file", tc.src, err)
		}
	}
	if _, err := Load("/nonexistent/services.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent/services.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestLookupNoAlloc(t *testing.T) {
	l := Default()
	n := testing.AllocsPerRun(100, func() {
		l.Lookup("Rr3---Sn-4g5e6nsz.GoogleVideo.com")
		l.Lookup("www.example.org")
	})
	if n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\nservices:\n  A: [a.com, b.org]\n  B: c.net\n"))
	f.Add([]byte("version: 1\nservices:\n  A: [a.com]\n  B: [A.COM]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("f.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		// Invariant: every listed suffix names its own service, whatever
		// its case, and so does any name under it.
		for s, svc := range l.suffix {
			if got, ok := l.Lookup(strings.ToUpper(s)); !ok || got != svc {
				t.Fatalf("Lookup(%q) = %q %v, want %q", s, got, ok, svc)
			}
			if got, ok := l.Lookup("x0." + s); !ok || (got != svc && l.suffix["x0."+s] == "") {
				t.Fatalf("Lookup(x0.%s) = %q %v, want %q", s, got, ok, svc)
			}
		}
	})
}
