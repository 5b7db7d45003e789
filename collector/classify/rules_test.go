package classify

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/mira-project/mira/flow"
)

func biflow(syms map[string]uint64) *Input {
	return &Input{Biflow: &flow.Biflow{
		Key:     flow.Key{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), Sport: 40001, Dport: 80, Proto: 6},
		Packets: 10, Octets: 1000, RPackets: 8, ROctets: 9000, First: 1e9, Last: 3e9}, Symptoms: syms}
}

func mustParse(t *testing.T, src string) *Rules {
	t.Helper()
	r, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHelpersAndOrder(t *testing.T) {
	r := mustParse(t, `version: 1
rules:
  - category: Leisure
    when: majority(MP3, VIDEO, SPORTS)
  - category: Half
    when: share(MP3, VIDEO) >= 0.5
  - category: Big
    when: max(WEB, MAIL, 3) > 10 && sum(WEB, MAIL) == WEB + MAIL
  - category: Odd
    when: symptoms["ODD-NAME"] > 0
  - category: Counters
    when: bytes == 10000 && duration == 2.0 && proto == 6 && dport == 80 && rpackets == 8
`)
	for _, tc := range []struct {
		syms map[string]uint64
		want string
	}{
		{map[string]uint64{"MP3": 3, "WEB": 2}, "Leisure"},  // 3 of 5
		{map[string]uint64{"MP3": 2, "WEB": 2}, "Half"},     // not a majority
		{map[string]uint64{"VIDEO": 1, "WEB": 12}, "Big"},   // first match wins
		{map[string]uint64{"ODD-NAME": 1, "WEB": 2}, "Odd"}, // names that are no identifiers
		{map[string]uint64{"WEB": 2}, "Counters"},           // SPORTS, MP3 absent: 0
		{map[string]uint64{}, "Counters"},                   // share of nothing is 0
	} {
		got, ok, err := r.Match(biflow(tc.syms), nil)
		if err != nil || !ok || got != tc.want {
			t.Errorf("%v: got %q %v %v, want %q", tc.syms, got, ok, err, tc.want)
		}
	}
	b := biflow(map[string]uint64{"WEB": 1})
	b.Proto = 17
	if c, ok, _ := r.Match(b, nil); ok {
		t.Errorf("nothing should match, got %q", c)
	}
	if got := r.Func()(b); got != "" {
		t.Errorf("Func without a match: %q", got)
	}
	if want := []string{"Leisure", "Half", "Big", "Odd", "Counters"}; strings.Join(r.Categories(), ",") != strings.Join(want, ",") {
		t.Errorf("categories %v", r.Categories())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", "version: 1\nrules:\n  - category: A\n    when: MAIL > 0\n  - category: B\n    when: MAIL >\n", `t.yaml:6: key "rules[1].when": rule 2 (B): invalid classification rules: when: unexpected token`},
		{"not bool", "version: 1\nrules:\n  - category: A\n    when: MAIL + 1\n", `t.yaml:4: key "rules[0].when": rule 1 (A)`},
		{"type", "version: 1\nrules:\n  - category: A\n    when: aggregate > 1\n", `t.yaml:4: key "rules[0].when": rule 1 (A)`},
		{"no category", "version: 1\nrules:\n  - when: MAIL > 0\n", `t.yaml:3: key "rules[0]": rule 1: invalid classification rules: rule without a category`},
		{"no when", "version: 1\nrules:\n  - category: A\n", "rule 1 (A): invalid classification rules: rule without a \"when\""},
		{"unknown key", "version: 1\nrules:\n  - category: A\n    when: true\n    colour: red\n", `t.yaml:5: key "rules[0].colour": rule 1 (A): invalid classification rules: unknown key "colour"`},
		{"top key", "version: 1\nrulez: []\n", `t.yaml:2: key "rulez": invalid classification rules: unknown key "rulez"`},
		{"empty", "", "empty file"},
		{"no rules", "version: 1\nrules: []\n", `t.yaml:2: key "rules": invalid classification rules: no rules`},
		{"version", "version: 3\nrules: []\n", "unsupported version"},
		{"yaml", "version: [\n", "t.yaml:1: invalid classification rules: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDefaultRules(t *testing.T) {
	r := Default()
	for _, tc := range []struct {
		syms  map[string]uint64
		proto uint8
		dport uint16
		want  string
	}{
		{map[string]uint64{"MAIL": 4, "TLS": 2}, 6, 25, "Mail"}, // STARTTLS
		{map[string]uint64{"FTP": 3}, 6, 21, "FTP"},
		{map[string]uint64{"P2P": 1, "MP3": 40}, 6, 6881, "P2P"},
		{map[string]uint64{"MP3": 200, "WEB": 3}, 6, 80, "Leisure"},
		{map[string]uint64{"VIDEO": 2, "WEB": 4}, 6, 80, "Leisure"},
		{map[string]uint64{"WEB": 4, "EXECUTABLE": 3}, 6, 80, "Web"},
		{map[string]uint64{"CHAT": 3, "FTP": 1}, 6, 6667, "Chat"}, // IRC's USER
		{map[string]uint64{"TLS": 2}, 6, 443, "Secure"},
		{map[string]uint64{"SSH": 2}, 6, 22, "Secure"},
		{map[string]uint64{"DNS": 2}, 17, 53, "DNS"},
		{map[string]uint64{"GAMES": 2}, 17, 27960, "Games"},
		{map[string]uint64{"NETMGMT": 1, "DNS": 40}, 17, 53, "DNS"}, // a stray first-packet match
		{map[string]uint64{"QUIC": 1}, 17, 443, "Secure"},
		{map[string]uint64{"VPN": 1, "TLS": 2}, 17, 1194, "VPN"}, // OpenVPN carries TLS
		{map[string]uint64{"DATABASE": 1, "TLS": 2}, 6, 3306, "Database"},
		{map[string]uint64{"REMOTE": 2}, 6, 3389, "Remote"},
		{map[string]uint64{"NETMGMT": 2}, 17, 161, "Network"},
		{map[string]uint64{"VOIP": 2, "WEB": 1}, 6, 5060, "VoIP"}, // SIP OPTIONS
		{map[string]uint64{"VOIP": 1, "WEB": 6}, 6, 80, "Web"},
		{map[string]uint64{"EXECUTABLE": 2}, 6, 5000, "Executable"},
		{nil, 1, 0x0800, "Network"},
		{nil, 6, 443, "Secure"}, // port fallback without symptoms
		{nil, 6, 12345, ""},
		{map[string]uint64{"ARCHIVE": 1}, 6, 12345, "Archive"},
	} {
		b := biflow(tc.syms)
		b.Proto, b.Dport = tc.proto, tc.dport
		if got := r.Func()(b); got != tc.want {
			t.Errorf("%v proto %d port %d: %q, want %q", tc.syms, tc.proto, tc.dport, got, tc.want)
		}
	}
}

// TestIndexPair: the pair context of a biflow is the symptoms of the
// other biflows between the same addresses within PairWindow, not its
// own.
func TestIndexPair(t *testing.T) {
	ftp := biflow(map[string]uint64{"FTP": 5})
	ftp.Dport = 21
	data := biflow(map[string]uint64{"MP3": 90})
	data.Biflow = &flow.Biflow{Key: data.Key, First: 2e9, Last: 4e9}
	data.Sport, data.Dport = 40001, 30000
	late := biflow(map[string]uint64{"MP3": 90})
	late.Biflow = &flow.Biflow{Key: late.Key, First: 200e9, Last: 201e9}
	late.Dport = 30001
	ix := NewIndex()
	for _, in := range []*Input{ftp, data, late} {
		ix.Add(in)
	}
	if p := ix.Pair(data); p["FTP"] != 5 || p["MP3"] != 0 {
		t.Errorf("pair of the data connection %v, want FTP 5 and not its own MP3", p)
	}
	if p := ix.Pair(late); p != nil {
		t.Errorf("pair beyond PairWindow %v, want none", p)
	}
	r := Default()
	if c := r.Classify(data, ix); c != "FTP" {
		t.Errorf("data connection with pair context: %q, want FTP", c)
	}
	if c := r.Classify(data, nil); c != "Leisure" {
		t.Errorf("data connection without pair context: %q, want Leisure", c)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\nrules:\n  - category: A\n    when: majority(MP3, X) || share(A) > 0.5 || pair.FTP > max(1, B)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) || !strings.HasPrefix(err.Error(), "classify: fuzz.yaml") {
				t.Fatalf("error without name or ErrSyntax: %v", err)
			}
			return
		}
		for _, syms := range []map[string]uint64{nil, {"MP3": 3, "WEB": 1, "A": 1 << 40}} {
			r.Match(biflow(syms), map[string]int{"FTP": 1})
		}
	})
}

func BenchmarkMatchDefault(b *testing.B) {
	r := Default()
	bf := biflow(map[string]uint64{"WEB": 4, "MP3": 120, "AUDIO": 1})
	b.ReportAllocs()
	for b.Loop() {
		r.Match(bf, nil)
	}
}
