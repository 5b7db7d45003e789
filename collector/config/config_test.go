package config

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c, err := LoadCollector("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 2 || c.DB != "mira.db" {
		t.Errorf("collector defaults: %+v", c)
	}
}

func TestCollectorErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"listen:\n  - udp://0.0.0.0:4739\n  - htp://0.0.0.0:4739\n", `c.yaml:3: key "listen[1]": listener "htp://0.0.0.0:4739": unsupported scheme "htp"`},
		{"listen: [tcp://0.0.0.0]\n", `c.yaml:1: key "listen[0]": listener "tcp://0.0.0.0": want tcp://host:port`},
		{"forward:\n  - udp//x:9995\n", `c.yaml:2: key "forward[0]": export target "udp//x:9995": unsupported scheme ""`},
		{"log:\n  level: loud\n", `c.yaml:2: key "log.level": invalid value "loud"`},
		{"retention:\n  max_age: soon\n", `c.yaml:2: key "retention.max_age": invalid value "soon"`},
		{"web:\n  cert: /x.pem\n", `c.yaml:2: key "web.cert": cert is set without key`},
		{"web: {user: ops}\n", `c.yaml:1: key "web.user": user is set without password`},
		{"as: /nonexistent/as.csv\n", `c.yaml:1: key "as": stat /nonexistent/as.csv`},
		// Negative retention silently kept everything.
		{"retention:\n  max_age: -1h\n", `c.yaml:2: key "retention.max_age": must not be negative`},
		{"retention: {max_size: -5}\n", `c.yaml:1: key "retention.max_size": must not be negative`},
		{"rollups:\n  hour_retention: -24h\n", `c.yaml:2: key "rollups.hour_retention": must not be negative`},
		// A retry past the flow stream's duplicate window could store a batch twice.
		{"cluster:\n  publish_retry: 5m\n", `c.yaml:2: key "cluster.publish_retry": invalid value 5m0s (want 1s to 1m30s`},
		{"cluster: {publish_retry: 0s}\n", `c.yaml:1: key "cluster.publish_retry": invalid value 0s`},
	} {
		_, err := ParseCollector("c.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCollector(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCollectorAllow(t *testing.T) {
	c, err := ParseCollector("c.yaml", []byte("allow: [192.0.2.9, 10.0.0.0/8, \"2001:db8::/32\", \"::ffff:198.51.100.1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.AllowPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.9/32", "10.0.0.0/8", "2001:db8::/32", "198.51.100.1/32"}
	if len(ps) != len(want) {
		t.Fatalf("prefixes %v", ps)
	}
	for i, p := range ps {
		if p.String() != want[i] {
			t.Errorf("allow[%d] = %v, want %s", i, p, want[i])
		}
	}
	_, err = ParseCollector("c.yaml", []byte("allow: [192.0.2.9, example.org]\n"))
	if err == nil || !strings.Contains(err.Error(), `c.yaml:1: key "allow[1]"`) {
		t.Errorf("bad allow entry: %v", err)
	}
}

func FuzzParseCollector(f *testing.F) {
	f.Add(defaultCollector)
	f.Add([]byte("listen: [htp://x]\nforward: [udp//y]\nallow: [z]\n"))
	f.Add([]byte("retention: {max_age: soon}\nlog: {level: loud, format: xml}\n"))
	// Invariant: every error is located in the file it came from (each
	// line of a joined error is "fuzz.yaml...", and errors.As finds it).
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseCollector("fuzz.yaml", b)
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.File != "fuzz.yaml" {
			t.Fatalf("error without its place: %v", err)
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(l, "fuzz.yaml") {
				t.Fatalf("error line %q does not name the file (%v)", l, err)
			}
		}
	})
}
