package yamlnode

import (
	"errors"
	"strings"
	"testing"
)

const doc = `top:
  name: x
  list:
    - a
    - {k: 1, v: two}
  block:
    deep: 3
other: [1, 2]
`

func TestFindAndAt(t *testing.T) {
	root, err := Parse("d.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		line int
		ok   bool
	}{
		{"top.name", 2, true},
		{"top.list[0]", 4, true},
		{"top.list[1].v", 5, true},
		{"top.block.deep", 7, true},
		{"other[1]", 8, true},
		{"top.list[2]", 0, false},
		{"top.nothing", 0, false},
		{"other.x", 0, false},
	} {
		n, ok := root.Find(tc.path)
		if ok != tc.ok || (ok && (n.Line != tc.line || n.Path != tc.path)) {
			t.Errorf("Find(%q) = line %d path %q %v, want line %d %v", tc.path, n.Line, n.Path, ok, tc.line, tc.ok)
		}
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{"top.list[1].v", `d.yaml:5: key "top.list[1].v": bad`},
		// A missing key is reported at its nearest ancestor's line.
		{"top.list[1].missing", `d.yaml:5: key "top.list[1].missing": bad`},
		// A block collection is reported at its key's line.
		{"top.block", `d.yaml:6: key "top.block": bad`},
		{"absent.x", `d.yaml: key "absent.x": bad`},
	} {
		if got := root.At(tc.path, errors.New("bad")).Error(); got != tc.want {
			t.Errorf("At(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestWalk(t *testing.T) {
	root, err := Parse("d.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	err = root.Map(func(name string, k, v Node) error {
		if name != "top" {
			return nil
		}
		return v.Map(func(name string, k, v Node) error {
			if name != "list" {
				return nil
			}
			return v.Seq(func(i int, it Node) error {
				seen = append(seen, it.Path)
				if i == 1 {
					return it.Map(func(name string, k, v Node) error {
						if name == "v" {
							return Unknown(k)
						}
						return nil
					})
				}
				return nil
			})
		})
	})
	if strings.Join(seen, ",") != "top.list[0],top.list[1]" {
		t.Errorf("paths %v", seen)
	}
	var e *Error
	if !errors.As(err, &e) || err.Error() != `d.yaml:5: key "top.list[1].v": unknown key` {
		t.Errorf("error %v", err)
	}
	if err := root.Map(func(name string, k, v Node) error {
		if name == "other" {
			return v.Map(nil)
		}
		return nil
	}); err == nil || err.Error() != `d.yaml:8: key "other": want a mapping` {
		t.Errorf("a list walked as a mapping: %v", err)
	}
}

func TestDecodeListsEveryError(t *testing.T) {
	type T struct {
		A struct {
			N int `yaml:"n"`
		} `yaml:"a"`
		B []struct {
			M int `yaml:"m"`
		} `yaml:"b"`
	}
	var v T
	err := Decode("t.yaml", []byte("a:\n  n: x\n  z: 1\nb:\n  - {m: 1, q: 2}\n  - m: y\n"), &v)
	want := []string{
		`t.yaml:2: key "a.n": invalid value "x" (want int)`,
		`t.yaml:3: key "a.z": unknown key`,
		`t.yaml:5: key "b[0].q": unknown key`,
		`t.yaml:6: key "b[1].m": invalid value "y" (want int)`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("Decode error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if err := Decode("t.yaml", []byte("a: [\n"), &v); err == nil || !strings.HasPrefix(err.Error(), "t.yaml:") {
		t.Errorf("syntax error %v", err)
	}
	if err := Decode("t.yaml", []byte("  \n"), &v); err != nil {
		t.Errorf("empty document: %v", err)
	}
}

// TestSyntaxErrorLine: a syntax error names its line even where yaml
// does not (a mark on the document's first line, its reader's errors):
// "probe.yaml: mapping values are not allowed in this context" said
// nothing of where before.
func TestSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"meter: idle_timeout: 30s\n", `t.yaml:1: mapping values are not allowed in this context`},
		{"a: 1\nb: \"x\x01\"\n", `t.yaml:2: control characters are not allowed`},
		{"a: 1\nb: 2\nc: \xff\n", `t.yaml:3: invalid leading UTF-8 octet`},
		// yaml's own line is kept.
		{"meter:\n  idle_timeout: 30s\n   x: 1\n", `t.yaml:3: mapping values are not allowed in this context`},
	} {
		var v any
		if err := Decode("t.yaml", []byte(tc.in), &v); err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%q) = %v, want %s", tc.in, err, tc.want)
		}
	}
}

// FuzzDecode: whatever the document, every error Decode reports is an
// *Error of the file, on a line the document has, and every line of the
// joined message names the file.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(doc))
	f.Add([]byte("a:\n  n: x\n  z: 1\nb:\n  - {m: 1, q: 2}\n  - m: y\n"))
	f.Add([]byte("a: [\n"))
	type T struct {
		A struct {
			N int `yaml:"n"`
		} `yaml:"a"`
		B []struct {
			M int `yaml:"m"`
		} `yaml:"b"`
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		err := Decode("f.yaml", data, &v)
		if err == nil {
			return
		}
		// yaml breaks lines at \n, \r and \r\n (and a few Unicode
		// breaks): an upper bound.
		lines := strings.Count(string(data), "\n") + strings.Count(string(data), "\r") +
			strings.Count(string(data), "\u2028") + strings.Count(string(data), "\u2029") + strings.Count(string(data), "\u0085") + 1
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			var ye *Error
			if !errors.As(e, &ye) || ye.File != "f.yaml" || ye.Line < 0 || ye.Line > lines {
				t.Fatalf("error %v (%+v) not located in the document of %d lines", e, ye, lines)
			}
		}
		for _, l := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(l, "f.yaml") {
				t.Fatalf("error line %q does not name the file", l)
			}
		}
	})
}
