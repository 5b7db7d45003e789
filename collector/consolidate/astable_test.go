package consolidate

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/flow"
)

const bgpdumpSample = `TABLE_DUMP2|1732672800|B|192.0.2.254|64500|198.51.100.0/24|64500 3356 64511|IGP|192.0.2.254|0|0||NAG||
TABLE_DUMP2|1732672800|B|192.0.2.253|64501|198.51.100.0/24|64501 64512|IGP|192.0.2.253|0|0||NAG||
TABLE_DUMP2|1732672800|B|192.0.2.254|64500|203.0.113.0/24|64500 {64513,64514}|IGP|192.0.2.254|0|0||NAG||
TABLE_DUMP2|1732672800|B|192.0.2.254|64500|2001:db8::/32|64500 1.10|IGP|192.0.2.254|0|0||NAG||
TABLE_DUMP2|1732672800|B|192.0.2.254|64500|bogus/99|64500 1|IGP|192.0.2.254|0|0||NAG||
`

func TestParseBgpdump(t *testing.T) {
	tb, err := ParseASBytes([]byte(bgpdumpSample), "rib.txt")
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]uint32{
		"198.51.100.9": 64511, // first route for the prefix wins
		"203.0.113.1":  64513,
		"2001:db8::1":  1<<16 | 10,
		"192.0.2.1":    0,
	} {
		if got := tb.Lookup(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: AS %d, want %d", a, got, want)
		}
	}
	if tb.Len() != 3 || tb.Errors[ASReasonPrefix] != 1 {
		t.Fatalf("len %d errors %v", tb.Len(), tb.Errors)
	}
}

func TestParseCSV(t *testing.T) {
	in := "prefix,asn\n# comment\n10.0.0.0/8,AS64496\n10.1.0.0/16,64497\n::ffff:192.0.2.0/120,64498\n2001:db8::/32;64499\nnot-a-prefix,1\n10.2.0.0/16,xyz\n"
	tb, err := ParseASBytes([]byte(in), "as.csv")
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]uint32{"10.9.9.9": 64496, "10.1.2.3": 64497, "192.0.2.7": 64498, "2001:db8::5": 64499, "11.0.0.1": 0} {
		if got := tb.Lookup(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: AS %d, want %d", a, got, want)
		}
	}
	if tb.Errors[ASReasonPrefix] != 1 || tb.Errors[ASReasonASN] != 1 {
		t.Fatalf("errors %v", tb.Errors)
	}
	// The table read, but the skipped lines are said (mira report warns,
	// mira-collector logs): a mistyped prefix's traffic is AS 0.
	if err := tb.Skipped(); err == nil || err.Error() != "2 line(s) skipped, the first: as table as.csv: line 7 (offset 105): bad prefix" {
		t.Fatalf("skipped: %v", err)
	}
	if good, _ := ParseASBytes([]byte("10.0.0.0/8,1\n"), "good.csv"); good.Skipped() != nil {
		t.Fatalf("nothing skipped: %v", good.Skipped())
	}
	_, err = ParseASBytes([]byte("prefix,as\nnope,1\n"), "bad.csv")
	var ae *ASError
	if !errors.As(err, &ae) || ae.Line != 2 || ae.Offset != 10 || !strings.Contains(err.Error(), "bad.csv: line 2 (offset 10): bad prefix") {
		t.Fatalf("error %v", err)
	}
}

// TestASUsage checks per-AS statistics on biflows.
func TestASUsage(t *testing.T) {
	tb, _ := ParseASBytes([]byte("192.0.2.0/24,64496\n198.51.100.0/24,64511\n"), "t")
	c := New(&Config{AS: tb})
	a := rec("192.0.2.1", "198.51.100.7", 40001, 25, 12, 2301, 0, time.Second)
	b := rec("198.51.100.7", "192.0.2.1", 25, 40001, 9, 811, 0, time.Second)
	x := rec("203.0.113.1", "198.51.100.7", 1, 25, 1, 40, 0, time.Second)
	c.Add(Origin{Probe: "p"}, []flow.Record{a, b, x})
	c.Flush()
	rows := c.ASUsage()
	if len(rows) != 2 || rows[0].SrcAS != 0 || rows[0].DstAS != 64511 || rows[1].SrcAS != 64496 || rows[1].Octets != 3112 {
		t.Fatalf("rows %+v", rows)
	}
}

func FuzzParseAS(f *testing.F) {
	f.Add([]byte(bgpdumpSample))
	f.Add([]byte("prefix,asn\n10.0.0.0/8,64496\n2001:db8::/32,AS1.2\n"))
	f.Add([]byte("|||||::/0|{1,2}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ParseASBytes(b, "fuzz")
		if tb == nil {
			t.Fatal("nil table")
		}
		var ae *ASError
		if err != nil && !errors.As(err, &ae) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if err != nil && (ae.Line < 1 || ae.Offset < 0 || ae.Offset > int64(len(b))) {
			t.Fatalf("error position %d/%d of %d bytes", ae.Line, ae.Offset, len(b))
		}
		tb.Lookup(netip.MustParseAddr("10.1.2.3"))
	})
}
