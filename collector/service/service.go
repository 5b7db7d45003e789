// Package service names the application a biflow is about: its
// application name (the TLS or QUIC server name, else the HTTP Host,
// else the DNS question name; flow.App.Host) mapped through a service
// list of domain suffixes (netflix.com, nflxvideo.net -> Netflix). The
// report groups usage by it (mira report --by app).
//
// A service list is YAML:
//
//	version: 1
//	services:
//	  Netflix: [netflix.com, nflxvideo.net]
//	  YouTube: [youtube.com, googlevideo.com]
//
// A name matches a suffix when it equals it or ends in "." and the
// suffix, ignoring case and a trailing dot; the longest matching suffix
// wins. An embedded default list (default.yaml, Default) covers common
// services. Errors name the file, line and key.
//
// A List is immutable and safe for concurrent use.
package service

import (
	"net/netip"

	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"golang.org/x/net/publicsuffix"
	"os"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/yamlnode"
)

// Unknown is the app of a biflow without an application name.
const Unknown = "unknown"

// ErrSyntax is wrapped by every error about the text of a service list.
var ErrSyntax = errors.New("invalid service list")

// List maps domain suffixes to service names.
type List struct {
	file     string
	suffix   map[string]string // lower-case suffix without trailing dot -> service
	services []string          // in file order
}

//go:embed default.yaml
var defaultYAML []byte

var defaultList = sync.OnceValue(func() *List {
	l, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("service: embedded default list: " + err.Error())
	}
	return l
})

// Default returns the embedded default list.
func Default() *List { return defaultList() }

// DefaultYAML returns the text of the embedded default list.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Load reads a service list file.
func Load(path string) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service: load: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a service list; name is used in error messages.
func Parse(name string, data []byte) (*List, error) {
	fail := func(at yamlnode.Node, format string, a ...any) error {
		return at.Wrap(fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, a...)...))
	}
	top, err := yamlnode.Parse(name, data)
	if err != nil {
		var ye *yamlnode.Error
		if errors.As(err, &ye) {
			return nil, &yamlnode.Error{File: ye.File, Line: ye.Line, Key: ye.Key, Err: fmt.Errorf("%w: %w", ErrSyntax, ye.Err)}
		}
		return nil, fmt.Errorf("%s: %w: %w", name, ErrSyntax, err)
	}
	if top.Node == nil {
		return nil, fail(top, "empty file")
	}
	if top.Kind != yaml.MappingNode {
		return nil, fail(top, "top level is not a mapping")
	}
	l := &List{file: name, suffix: map[string]string{}}
	var svcs yamlnode.Node
	err = top.Map(func(key string, k, v yamlnode.Node) error {
		switch key {
		case "version":
			if v.Value != "1" {
				return fail(v, "unsupported version %q (want 1)", v.Value)
			}
		case "services":
			svcs = v
		default:
			return fail(k, "unknown key %q", key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if svcs.Node == nil || svcs.Kind != yaml.MappingNode || len(svcs.Content) == 0 {
		at := svcs
		if at.Node == nil {
			at = top
		}
		return nil, fail(at, "no services (want a mapping of service name to domain suffixes under \"services\")")
	}
	where := map[string]yamlnode.Node{} // suffix -> where it was given
	err = svcs.Map(func(svc string, k, v yamlnode.Node) error {
		if strings.TrimSpace(svc) == "" || svc != strings.TrimSpace(svc) {
			return fail(k, "service name %q: empty or with surrounding space", svc)
		}
		if strings.EqualFold(svc, Unknown) {
			return fail(k, "service name %q is reserved (biflows without a name)", svc)
		}
		var list []yamlnode.Node
		switch v.Kind {
		case yaml.ScalarNode:
			list = []yamlnode.Node{v}
		case yaml.SequenceNode:
			if len(v.Content) == 0 {
				return fail(v, "service %s: no domain suffixes", svc)
			}
			if err := v.Seq(func(_ int, n yamlnode.Node) error {
				list = append(list, n)
				return nil
			}); err != nil {
				return err
			}
		default:
			return fail(v, "service %s: want a list of domain suffixes", svc)
		}
		if slices.Contains(l.services, svc) {
			return fail(k, "service %s listed twice", svc)
		}
		l.services = append(l.services, svc)
		for _, n := range list {
			if n.Kind != yaml.ScalarNode {
				return fail(n, "service %s: a domain suffix is not a string", svc)
			}
			s, err := normSuffix(n.Value)
			if err != nil {
				return fail(n, "service %s: %v", svc, err)
			}
			if prev, ok := where[s]; ok {
				return fail(n, "domain suffix %q given twice (first at line %d, for %s)", s, prev.Line, l.suffix[s])
			}
			where[s] = n
			l.suffix[s] = svc
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// normSuffix checks a domain suffix and returns it in lower case without
// a trailing dot.
func normSuffix(s string) (string, error) {
	t := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "."), "."))
	if t == "" {
		return "", fmt.Errorf("empty domain suffix %q", s)
	}
	if len(t) > 253 {
		return "", fmt.Errorf("domain suffix %.20q... longer than 253 characters", s)
	}
	for _, label := range strings.Split(t, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("domain suffix %q: empty label or one longer than 63 characters", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("domain suffix %q: character %q (want letters, digits, '-', '_' and '.')", s, c)
			}
		}
	}
	return t, nil
}

// Services lists the services in file order.
func (l *List) Services() []string { return append([]string(nil), l.services...) }

// Len returns the number of domain suffixes.
func (l *List) Len() int { return len(l.suffix) }

// Lookup returns the service of host name by its longest listed suffix,
// and false when none matches. Case and a trailing dot are ignored; it
// does not allocate for names of up to 253 characters.
func (l *List) Lookup(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return "", false // no valid name is longer
	}
	var buf [253]byte
	b := buf[:copy(buf[:], name)]
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	for {
		// m[string(b)] does not allocate.
		if svc, ok := l.suffix[string(b)]; ok {
			return svc, true
		}
		i := bytes.IndexByte(b, '.')
		if i < 0 {
			return "", false
		}
		b = b[i+1:]
	}
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// App names what a biflow with application metadata a is about: the
// service of its name (a.Host: server name, else HTTP host, else DNS
// question name), else the name's registered domain (eTLD+1 by the
// public suffix list: pic.1kxun.com and kankan.1kxun.com are one row,
// 1kxun.com; a name that is an address or a public suffix itself
// stays whole), in lower case, else Unknown. A nil list is the
// default list.
func (l *List) App(a *flow.App) string {
	if l == nil {
		l = Default()
	}
	h := strings.TrimSuffix(a.Host(), ".")
	if h == "" {
		return Unknown
	}
	if svc, ok := l.Lookup(h); ok {
		return svc
	}
	if hasUpper(h) {
		h = strings.ToLower(h)
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return h
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(h); err == nil {
		return d
	}
	return h
}
