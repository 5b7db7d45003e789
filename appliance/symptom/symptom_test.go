package symptom

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

func mustParse(t testing.TB, y string) *DB {
	t.Helper()
	db, err := Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top key", "symptoms: []\nfoo: 1\n", []string{`test.yaml:2: key "foo"`, `unknown key "foo"`}},
		{"no symptoms", "symptoms: []\n", []string{"no symptoms"}},
		{"unknown pattern key", "symptoms:\n  - name: A\n    patterns:\n      - {content: abcde, bogus: 1}\n",
			[]string{`test.yaml:4: key "symptoms[0].patterns[0].bogus": symptom "A"`, `pattern 1 ("abcde")`, `unknown key "bogus"`}},
		{"bad hex", "symptoms:\n  - name: A\n    patterns:\n      - abc\n      - {hex: \"FF G0\"}\n",
			[]string{`test.yaml:5: key "symptoms[0].patterns[1].hex"`, `pattern 2 ("FF G0")`, `bad character 'G' at offset 3`}},
		{"unterminated content", "symptoms:\n  - name: B\n    patterns:\n      - \"ab|0d\"\n",
			[]string{"test.yaml:4", `symptom "B"`, "unterminated hex part at offset 2"}},
		{"two kinds", "symptoms:\n  - name: A\n    patterns:\n      - {content: abc, hex: \"00\"}\n", []string{"exactly one"}},
		{"mask length", "symptoms:\n  - name: A\n    patterns:\n      - {value: \"FF E0\", mask: \"FF\"}\n", []string{"value has 2 bytes but mask has 1"}},
		{"weak mask", "symptoms:\n  - name: A\n    patterns:\n      - {value: \"F0 00 0F\", mask: \"F0 00 0F\"}\n", []string{"use a validator"}},
		{"unknown validator", "symptoms:\n  - name: A\n    patterns:\n      - {validate: mp5}\n", []string{`unknown validator "mp5"`, "mpeg-audio"}},
		{"regex without prefix", "symptoms:\n  - name: A\n    patterns:\n      - {regex: \"[a-z]+\"}\n", []string{"no literal prefix"}},
		{"bad regex", "symptoms:\n  - name: A\n    patterns:\n      - {regex: \"ab(\"}\n", []string{"test.yaml:4", "regex"}},
		{"duplicate", "symptoms:\n  - name: A\n    patterns: [abc]\n  - name: A\n    patterns: [abd]\n", []string{"test.yaml:4", "duplicate"}},
		{"window too small", "symptoms:\n  - name: A\n    patterns:\n      - {content: abcdef, depth: 3}\n", []string{`test.yaml:4: key "symptoms[0].patterns[0]"`, "shorter than the pattern"}},
		{"second symptom", "symptoms:\n  - name: A\n    patterns: [abc]\n  - name: B\n    patterns: []\n", []string{`test.yaml:5: key "symptoms[1].patterns"`, "non-empty patterns"}},
		{"bad anchor", "symptoms:\n  - name: A\n    patterns:\n      - {content: abc, anchor: end}\n", []string{"anchor"}},
		{"yaml syntax", "symptoms: [\n", []string{"test.yaml"}},
		{"tls_bypass unknown", "tls_bypass: TLS\nsymptoms:\n  - name: A\n    patterns: [abc]\n", []string{"test.yaml:1", `tls_bypass: no symptom "TLS"`}},
		{"tls_bypass list", "tls_bypass: [A]\nsymptoms:\n  - name: A\n    patterns: [abc]\n", []string{"test.yaml:1", "tls_bypass: want a symptom name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSymptomIDs(t *testing.T) {
	db := mustParse(t, "symptoms:\n  - name: A\n    description: first\n    patterns: [abc]\n  - name: B\n    patterns: [abd]\n")
	s := db.Symptoms()
	if len(s) != 2 || s[0] != (Symptom{1, "A", "first"}) || s[1].ID != 2 || s[1].Name != "B" {
		t.Fatalf("symptoms %+v", s)
	}
	if db.Name(2) != "B" || db.Name(0) != "" || db.Name(3) != "" {
		t.Fatal("Name")
	}
}

const semYAML = `
symptoms:
  - name: LIT
    patterns:
      - "RCPT TO:"
  - name: NOCASE
    patterns:
      - {content: "mail from:", nocase: true}
  - name: HEX
    patterns:
      - "|FF FB|xy"
  - name: LINE
    patterns:
      - {content: "EHLO", anchor: line}
  - name: START
    patterns:
      - {content: "SSH-", anchor: start}
  - name: WINDOW
    patterns:
      - {content: "abc", offset: 10, depth: 10}
  - name: MASK
    patterns:
      - {value: "FF E0 00 AA", mask: "FF E0 00 FF"}
  - name: REGEX
    patterns:
      - {regex: "GET /[a-z]+\\.mp3"}
  - name: SHORT
    patterns:
      - "|00 01|"
`

func TestSemantics(t *testing.T) {
	db := mustParse(t, semYAML)
	id := func(n string) uint16 { s, _ := db.Lookup(n); return s.ID }
	for _, tc := range []struct {
		in   string
		want map[string]uint32
	}{
		{"RCPT TO:<x>", map[string]uint32{"LIT": 1}},
		{"rcpt to:", nil},
		{"MAIL FROM: Mail From: mail from:", map[string]uint32{"NOCASE": 3}},
		{"\xff\xfbxy \xff\xfbx", map[string]uint32{"HEX": 1}},
		{"EHLO a\nEHLO b\r\n xEHLO", map[string]uint32{"LINE": 2}},
		{"SSH-2.0 SSH-", map[string]uint32{"START": 1}},
		{" SSH-2.0", nil},
		{"\xff\xe5\x12\xaa \xff\xc5\x12\xaa", map[string]uint32{"MASK": 1}},
		{"GET /song.mp3 GET /x.mp4", map[string]uint32{"REGEX": 1}},
		{"\x00\x01\x00\x01", map[string]uint32{"SHORT": 2}},
	} {
		c := scanAll(db, []byte(tc.in), 1<<20)
		got := map[string]uint32{}
		for i := 0; i < c.Len(); i++ {
			k, n := c.At(i)
			got[db.Name(k)] = n
		}
		want := tc.want
		if len(got) != len(want) {
			t.Errorf("%q: got %v want %v", tc.in, got, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%q: %s = %d, want %d (%v)", tc.in, k, got[k], v, got)
			}
		}
	}
	// The window [10,20) holds "abc" at 10 and 17, not at 9 or 18.
	c := scanAll(db, []byte(".........abcabc.abcabc...."), 1<<20)
	if n := c.Get(id("WINDOW")); n != 2 {
		t.Errorf("WINDOW: %d, want 2", n)
	}
}

// TestSplitOnce cuts a stream at every position and wants each literal
// found exactly once, also across three packets.
func TestSplitOnce(t *testing.T) {
	db := mustParse(t, semYAML)
	stream := []byte("xx\nEHLO host\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n\xff\xfbxy\r\n")
	want := naiveCounts(db, stream)
	if len(want) != 4 {
		t.Fatalf("oracle %v", want)
	}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			var st State
			var c Counts
			db.Scan(&st, &c, stream[:i], 0)
			db.Scan(&st, &c, stream[i:j], uint64(i))
			db.Scan(&st, &c, stream[j:], uint64(j))
			if got := countsMap(&c); !mapsEqual(got, want) {
				t.Fatalf("split at %d,%d: %v, want %v", i, j, got, want)
			}
		}
	}
}

func TestResetAfterGap(t *testing.T) {
	db := mustParse(t, semYAML)
	var st State
	var c Counts
	db.Scan(&st, &c, []byte("xx RCPT "), 0)
	st.Reset() // bytes lost: the match must not be completed from stale state
	db.Scan(&st, &c, []byte("TO:"), 100)
	if c.Total() != 0 {
		t.Fatalf("after reset: %v", countsMap(&c))
	}
	// After a reset mid-stream a line anchor at the packet start is unknown.
	db.Scan(&st, &c, []byte("EHLO x"), 200)
	if c.Total() != 0 {
		t.Fatalf("line anchor after reset: %v", countsMap(&c))
	}
}

func TestScanLimit(t *testing.T) {
	db := mustParse(t, "scan_limit: 10\nsymptoms:\n  - name: A\n    patterns: [abcd]\n")
	var st State
	var c Counts
	n1 := db.Scan(&st, &c, []byte("..abcd.ab"), 0) // 9 bytes
	n2 := db.Scan(&st, &c, []byte("cd..abcd"), 9)  // only 1 byte scanned
	n3 := db.Scan(&st, &c, []byte("abcd"), 17)
	if n1 != 9 || n2 != 1 || n3 != 0 || c.Get(1) != 1 {
		t.Fatalf("scanned %d %d %d, count %d", n1, n2, n3, c.Get(1))
	}
	if db.WithScanLimit(0).ScanLimit() != 0 || db.ScanLimit() != 10 {
		t.Fatal("WithScanLimit")
	}
}

func TestCountsOverflow(t *testing.T) {
	var c Counts
	for id := uint16(1); id <= 10; id++ {
		c.Add(id, uint32(id))
	}
	if c.Len() != countSlots || c.Overflow != 9+10 || c.Total() != 55 || c.Get(3) != 3 || c.Get(9) != 0 {
		t.Fatalf("counts %+v", c)
	}
	c.Add(1, ^uint32(0))
	if c.Get(1) != ^uint32(0) {
		t.Fatalf("count does not saturate: %d", c.Get(1))
	}
	recs := c.AppendTo(nil)
	if len(recs) != 8 || recs[7].ID != 8 || recs[7].Count != 8 {
		t.Fatalf("AppendTo %v", recs)
	}
}

func TestStateSize(t *testing.T) {
	if n := unsafeSizeofState(); n > 8 {
		t.Fatalf("State is %d bytes", n)
	}
}

func TestScanNoAlloc(t *testing.T) {
	big := mustParse(t, string(workload.YAML(workload.Patterns(1000)))) // FDR with AVX2
	for name, db := range map[string]*DB{"default": Default(), "semantics": mustParse(t, semYAML), "workload1000": big} {
		r := rand.New(rand.NewPCG(1, 2))
		pkt := make([]byte, 1460)
		for i := range pkt {
			pkt[i] = byte(r.IntN(256))
		}
		copy(pkt[100:], "GET /a.mp3 HTTP/1.1\r\nHost: x\r\nRCPT TO:")
		var st State
		var c Counts
		off := uint64(0)
		n := testing.AllocsPerRun(200, func() {
			db.Scan(&st, &c, pkt, off)
			off += uint64(len(pkt))
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per Scan", name, n)
		}
	}
}

func TestCompile5000Fast(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	// Checked in BenchmarkCompile5000 with timing; here only that it works
	// and stays within the automaton's 16-bit table.
	db, err := Parse("bench.yaml", benchYAML(5000))
	if err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.Patterns != 5000 {
		t.Fatalf("stats %+v", s)
	}
}

// TestConcurrentScan shares one DB between goroutines (run with -race).
func TestConcurrentScan(t *testing.T) {
	db := Default()
	payload := []byte("GET /x HTTP/1.1\r\nHost: a\r\n\r\nSSH-2.0-x\r\n")
	want := scanAll(db, payload, 7).Total()
	done := make(chan uint64)
	for g := 0; g < 4; g++ {
		go func() {
			var total uint64
			for k := 0; k < 200; k++ {
				total += scanAll(db, payload, 1+k%13).Total()
			}
			done <- total
		}()
	}
	for g := 0; g < 4; g++ {
		if got := <-done; got != 200*want {
			t.Errorf("goroutine total %d, want %d", got, 200*want)
		}
	}
}
