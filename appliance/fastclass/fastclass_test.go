package fastclass

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mira-project/mira/flow"
)

const listYAML = `version: 1
categories:
  - category: Web
    description: a CDN
    prefixes: [192.0.2.0/24, "2001:db8:80::/48", 198.51.100.7]
  - category: Backup
    prefixes: [192.0.2.128/25, "::ffff:203.0.113.0/120"]
`

const listCSV = `# prefix,category
10.0.0.0/8, Campus
"2001:db8:1::/64",Campus
192.0.2.1,Web   # a host
`

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	y, c := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.csv")
	os.WriteFile(y, []byte(listYAML), 0o644)
	os.WriteFile(c, []byte(listCSV), 0o644)
	tb, err := Load(y, c)
	if err != nil {
		t.Fatal(err)
	}
	names := tb.Names()
	if len(names) != 3 || names[1] != "Web" || names[2] != "Backup" || names[3] != "Campus" {
		t.Fatalf("names %v", names)
	}
	for _, tc := range []struct {
		addr, want string
	}{
		{"192.0.2.5", "Web"},
		{"192.0.2.200", "Backup"}, // longer prefix wins
		{"192.0.2.1", "Web"},      // host entry from the CSV
		{"198.51.100.7", "Web"},
		{"198.51.100.8", ""},
		{"2001:db8:80:1::1", "Web"},
		{"2001:db8:81::1", ""},
		{"203.0.113.9", "Backup"}, // IPv4-mapped prefix is stored as IPv4
		{"::ffff:192.0.2.5", "Web"},
		{"10.200.1.1", "Campus"},
		{"2001:db8:1::99", "Campus"},
		{"2001:db8:2::99", ""},
	} {
		if got := tb.Name(tb.Lookup(netip.MustParseAddr(tc.addr))); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.addr, got, tc.want)
		}
	}
	k := flow.Key{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("192.0.2.5"), Proto: 6}
	if got := tb.Name(tb.Classify(&k)); got != "Web" {
		t.Errorf("destination first: %q", got)
	}
	k.Dst = netip.MustParseAddr("8.8.8.8")
	if got := tb.Name(tb.Classify(&k)); got != "Campus" {
		t.Errorf("source when the destination is unlisted: %q", got)
	}
	k.Src = netip.MustParseAddr("8.8.4.4")
	if got := tb.Classify(&k); got != 0 {
		t.Errorf("unlisted flow: %d", got)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
		csv              bool
	}{
		{"bad prefix", "version: 1\ncategories:\n  - category: X\n    prefixes: [10.0.0.0/33]\n", `l.yaml:4: key "categories[0].prefixes[0]"`, false},
		{"second category", "version: 1\ncategories:\n  - category: X\n    prefixes: [10.0.0.0/8]\n  - category: Y\n    prefixes:\n      - 10.1.0.0/16\n      - 10.2.0.0/16z\n", `l.yaml:8: key "categories[1].prefixes[1]": invalid fast-class list: category Y: prefix "10.2.0.0/16z"`, false},
		{"unknown key", "version: 1\ncolour: red\n", `l.yaml:2: key "colour": invalid fast-class list: unknown key "colour"`, false},
		{"no category", "version: 1\ncategories:\n  - prefixes: [10.0.0.0/8]\n", `l.yaml:3: key "categories[0]": invalid fast-class list: entry without a category`, false},
		{"version", "version: 2\n", "unsupported version", false},
		{"csv no comma", "10.0.0.0/8 Campus\n", "l.csv:1", true},
		{"csv bad addr", "# x\n10.0.0.300,Campus\n", "l.csv:2", true},
		{"csv empty category", "10.0.0.0/8,\n", "empty category", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.csv {
				err = New().ParseCSV("l.csv", []byte(tc.text))
			} else {
				err = New().ParseYAML("l.yaml", []byte(tc.text))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v, want it to contain %q and wrap ErrSyntax", err, tc.want)
			}
		})
	}
}

func TestClassifyAllocs(t *testing.T) {
	tb := New()
	tb.ParseYAML("l.yaml", []byte(listYAML))
	k4 := flow.Key{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("192.0.2.5")}
	k6 := flow.Key{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:80::1")}
	var sink uint16
	if n := testing.AllocsPerRun(1000, func() { sink += tb.Classify(&k4) + tb.Classify(&k6) }); n != 0 {
		t.Fatalf("Classify allocates %v times", n)
	}
	if sink == 0 {
		t.Fatal("no category found")
	}
}

func BenchmarkClassify(b *testing.B) {
	tb := New()
	for i := range 10000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}), 16)
		tb.Add(p, "C"+string(rune('a'+i%20)))
	}
	k := flow.Key{Src: netip.MustParseAddr("203.0.113.1"), Dst: netip.MustParseAddr("10.20.1.1")}
	b.ReportAllocs()
	for b.Loop() {
		tb.Classify(&k)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(listYAML), false)
	f.Add([]byte(listCSV), true)
	f.Fuzz(func(t *testing.T, data []byte, csv bool) {
		tb := New()
		var err error
		if csv {
			err = tb.ParseCSV("fuzz.csv", data)
		} else {
			err = tb.ParseYAML("fuzz.yaml", data)
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) || !strings.HasPrefix(err.Error(), "fastclass: fuzz.") {
				t.Fatalf("error without name or ErrSyntax: %v", err)
			}
			return
		}
		for id, n := range tb.Names() {
			if id == 0 || n == "" || tb.Name(id) != n {
				t.Fatalf("bad category %d %q", id, n)
			}
		}
	})
}
